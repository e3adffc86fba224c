from django.urls import path

from streaming.automation import views

app_name = "acs"

urlpatterns = [
    path("events/", views.event_grid, name="events"),
    path("callbacks/<uuid:callback_id>/", views.callbacks, name="callbacks"),
]
