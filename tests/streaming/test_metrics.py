"""Ingest metrics and the /metrics endpoint."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client

from streaming.metrics import IngestMetrics


def test_lag_lands_in_its_bucket_and_renders_cumulatively() -> None:
    metrics = IngestMetrics()
    now = datetime.fromtimestamp(time.time(), UTC)
    metrics.observe_lag(now - timedelta(milliseconds=75))
    metrics.observe_lag(now - timedelta(seconds=30))
    text = metrics.render()
    assert 'callsite_ingest_frame_lag_seconds_bucket{le="0.07"} 0' in text
    assert 'callsite_ingest_frame_lag_seconds_bucket{le="0.08"} 1' in text
    assert 'callsite_ingest_frame_lag_seconds_bucket{le="10.0"} 1' in text
    assert 'callsite_ingest_frame_lag_seconds_bucket{le="+Inf"} 2' in text
    assert "callsite_ingest_frame_lag_seconds_count 2" in text


def test_metrics_are_served_to_loopback_and_to_the_token(settings: Any) -> None:
    settings.CALLSITE_METRICS_TOKEN = "metrics-token-0123456789"
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    wrong = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    right = client.get(
        "/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789"
    )
    assert right.status_code == 200
    assert b"callsite_ingest_frames_total" in right.content
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_without_a_token_only_loopback_is_served(settings: Any) -> None:
    settings.CALLSITE_METRICS_TOKEN = ""
    response = Client().get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403
