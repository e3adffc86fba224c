from django.urls import path

from streaming.ingest.consumer import AcsIngestConsumer

websocket_urlpatterns = [
    path("ws/acs/", AcsIngestConsumer.as_asgi()),
]
