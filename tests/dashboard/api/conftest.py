"""Users, tokens and calls for the API tests.

Calls are made the way ingest makes them (``streaming.services``), so what the API reads is
what production stores. ``TEAM_LINE`` belongs to the team of ``team_supervisor``;
``OTHER_LINE`` to nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from streaming.models import CallAnalytics
from tests import factories
from tests.factories import AGENT, Said, user_in
from tests.helpers import clear_cache

TEAM_LINE = "+15551230000"
OTHER_LINE = "+15559990000"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts() -> Iterator[None]:
    """Throttle counts live in the default cache: each test starts with none."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def staff(db: Any) -> User:
    """Sees every call (the Staff group)."""
    return user_in("staff", SUPERVISORS_GROUP, STAFF_GROUP)


@pytest.fixture
def team_supervisor(db: Any) -> User:
    """Sees the calls of TEAM_LINE only."""
    return factories.team_supervisor("teamsup", TEAM_LINE)


@pytest.fixture
def outsider(db: Any) -> User:
    """Logged in, but not a supervisor."""
    return User.objects.create_user("outsider", password="outsider-password-123")


def token_client(user: User) -> Client:
    """A client that authenticates every request with the user's API token."""
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.fixture
def staff_api(staff: User) -> Client:
    return token_client(staff)


@pytest.fixture
def team_api(team_supervisor: User) -> Client:
    return token_client(team_supervisor)


def make_call(
    connection_id: str,
    *,
    line: str = TEAM_LINE,
    said: list[Said] | None = None,
    ended: bool = True,
    started_at: Any = None,
    duration: timedelta = timedelta(minutes=3),
    alerts: int = 0,
    agent_ratio: float | None = None,
) -> int:
    """A call between AGENT and the phone ``line``, three minutes long; returns its id."""
    start = started_at or timezone.now() - duration
    call_id = factories.make_call(
        connection_id,
        people=[AGENT, f"4:{line}"],
        said=said or [],
        alerts=alerts,
        analytics=None if agent_ratio is None else _figures(line, agent_ratio, final=ended),
        started=start,
        length=duration if ended else None,
    )
    return call_id


def _figures(line: str, agent_ratio: float, *, final: bool) -> dict[str, Any]:
    return {
        "source": CallAnalytics.Source.AUDIO,
        "final": final,
        "duration_ms": 180_000,
        "talk_ms": 150_000,
        "silence_ms": 30_000,
        "overlap_ms": 4_000,
        "longest_silence_ms": 7_000,
        "longest_monologue_ms": 20_000,
        "interruptions": 3,
        "agent_talk_ratio": agent_ratio,
        "speakers": [
            {
                "key": AGENT,
                "label": "Agent",
                "role": "agent",
                "talk_ms": round(150_000 * agent_ratio),
                "share": 0.5,
                "ratio": agent_ratio,
                "longest_monologue_ms": 20_000,
                "current_monologue_ms": 0,
                "interruptions": 1,
                "words": 120,
                "wpm": 140.5,
            },
            {
                "key": f"4:{line}",
                "label": line,
                "role": "customer",
                "talk_ms": round(150_000 * (1 - agent_ratio)),
                "share": 0.3,
                "ratio": round(1 - agent_ratio, 4),
                "longest_monologue_ms": 9_000,
                "current_monologue_ms": 0,
                "interruptions": 2,
                "words": 60,
                "wpm": None,
            },
        ],
    }


CONVERSATION = [
    Said(AGENT, "Hello, thanks for calling. How can I help?", 1.0, 3.0, 0.95),
    Said(f"4:{TEAM_LINE}", "I was charged twice for my order.", 4.5, 2.5, 0.8),
    Said(AGENT, "Let me refund the second charge.", 7.2, 2.0, 0.85),
    Said(None, "(crosstalk)", None, 1.0, None),
]


@pytest.fixture
def team_call(db: Any) -> int:
    """An ended call on TEAM_LINE: four utterances, two alerts and analytics."""
    return make_call("team-call", said=CONVERSATION, alerts=2, agent_ratio=0.625)


@pytest.fixture
def other_call(db: Any) -> int:
    """An ended call on OTHER_LINE, which no team looks after."""
    return make_call(
        "other-call",
        line=OTHER_LINE,
        said=[Said(f"4:{OTHER_LINE}", "Please cancel my subscription.", 1.0)],
        alerts=1,
        agent_ratio=0.4,
    )
