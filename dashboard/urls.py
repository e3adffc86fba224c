from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.call_wall, name="wall"),
    path("history/", views.call_history, name="history"),
    path("agents/", views.live_agents_page, name="agents"),
    path("reports/", views.agent_reports, name="reports"),
    path("reports/agents.csv", views.agent_reports, {"fmt": "csv"}, name="reports-csv"),
    path("calls/<int:call_id>/", views.call_detail, name="call"),
    path("calls/<int:call_id>/actions/<slug:action>/", views.call_action, name="call-action"),
    path("calls/<int:call_id>/secure-pause/", views.call_secure_pause, name="call-secure-pause"),
    path("calls/new/<slug:how>/", views.call_new, name="call-new"),
    path("alerts/<int:alert_id>/<slug:step>/", views.alert_triage, name="alert-triage"),
]
