"""Sentiment in the call list: the sentiment and "ended negative" filters, on the API and
the history page alike."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import AGENT, Said, make_call

pytestmark = pytest.mark.django_db

CUSTOMER = "4:+15550001111"


@pytest.fixture
def calls(db: Any) -> dict[str, int]:
    return {
        "soured": make_call(
            "soured",
            said=[
                Said(CUSTOMER, "Fine.", 1, sentiment="positive"),
                Said(CUSTOMER, "This is awful.", 5, sentiment="negative"),
                Said(AGENT, "Goodbye.", 9),  # no sentiment: the last one that has one counts
            ],
        ),
        "recovered": make_call(
            "recovered",
            said=[
                Said(CUSTOMER, "This is awful.", 1, sentiment="negative"),
                Said(CUSTOMER, "Thanks, that helps.", 5, sentiment="positive", language="en-GB"),
            ],
        ),
        "plain": make_call("plain", said=[Said(CUSTOMER, "Hello.", 1)]),
    }


def _ids(client: Client, query: str) -> list[str]:
    response = client.get(f"/api/calls/?{query}")
    assert response.status_code == 200, response.content
    return sorted(c["connection_id"] for c in response.json()["results"])


def test_the_api_filters_by_sentiment_and_by_how_a_call_ended(
    calls: dict[str, int], staff: User
) -> None:
    client = Client()
    client.force_login(staff)
    assert _ids(client, "sentiment=negative") == ["recovered", "soured"]
    assert _ids(client, "sentiment=positive") == ["recovered", "soured"]
    assert _ids(client, "sentiment=mixed") == []
    assert _ids(client, "ended_negative=true") == ["soured"]
    assert _ids(client, "ended_negative=false") == ["plain", "recovered"]
    rows = {c["connection_id"]: c for c in client.get("/api/calls/").json()["results"]}
    assert rows["soured"]["ended_sentiment"] == "negative"
    assert rows["recovered"]["ended_sentiment"] == "positive"
    assert rows["plain"]["ended_sentiment"] is None


def test_the_history_page_offers_the_same_filters(calls: dict[str, int], staff: User) -> None:
    client = Client()
    client.force_login(staff)
    page = client.get("/history/?ended_negative=true").content.decode()
    assert "soured" in page
    assert "recovered" not in page
    assert 'data-sentiment="negative">negative</span>' in page
    page = client.get("/history/?sentiment=positive").content.decode()
    assert "soured" in page
    assert "recovered" in page
    assert "plain" not in page
