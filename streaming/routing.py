from django.urls import path

from streaming.consumers import AcsIngestConsumer

websocket_urlpatterns = [
    path("ws/acs/", AcsIngestConsumer.as_asgi()),
]
