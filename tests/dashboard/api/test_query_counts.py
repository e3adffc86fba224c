"""Query counts of the call list and the transcript exports that must hold whatever the data.

``bench/history.py`` measures these requests at 10,000 calls on PostgreSQL; these tests keep
their query counts fixed with a few dozen rows, on both backends. Already checked elsewhere and
not repeated here: a list page costs the same for 5 and 60 rows a page (``test_calls.py``), a
short transcript at most 8 queries (``test_transcripts.py``), ``transcript_for_call`` 4 queries
whatever its length (``tests/streaming/history/test_exports.py``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.test import Client

from streaming import services
from streaming.history.exports import FORMATS
from streaming.models import Participant, TranscriptSource, Utterance
from streaming.units import TICKS_PER_SECOND
from tests.dashboard.api.conftest import AGENT, OTHER_LINE, TEAM_LINE, Said, make_call

pytestmark = pytest.mark.django_db

# Token and user, the user's permissions (2), then count, page and participants.
LIST_QUERIES = 6
# Token and user, the user's permissions (2), the call's visibility, then the transcript's
# call, participants, utterances and DTMF tones.
TRANSCRIPT_QUERIES = 8
LONG_CALL_LINES = 2000

# Who else may be on a call: a bot that answered first, a second agent (a transfer).
EXTRAS = ("28:acs:ivr-bot-0001", "8:acs:resource_agent-2", "8:acs:resource_agent-3")


def add_calls(count: int, start: int = 0) -> None:
    """Calls on both lines with 2 to 5 participants, a few finals, alerts and analytics."""
    for n in range(start, start + count):
        line = TEAM_LINE if n % 3 else OTHER_LINE
        call_id = make_call(
            f"counted-{n}",
            line=line,
            said=[
                Said(AGENT, f"Thanks for calling, this is call {n}.", 1.0),
                Said(f"4:{line}", "I was charged twice for my order.", 3.0),
            ],
            alerts=n % 3,
            agent_ratio=0.5 if n % 2 else None,
        )
        for raw_id in EXTRAS[: n % 4]:
            services.participant_ensure(call_id=call_id, raw_id=raw_id)


LIST_URLS = (
    "/api/calls/?page_size=5",
    "/api/calls/?page_size=5&page=2",
    "/api/calls/?page_size=5&q=charged+twice",
    "/api/calls/?page_size=5&state=ended&has_alerts=true",
    f"/api/calls/?page_size=5&participant={EXTRAS[0]}",
)


@pytest.mark.parametrize("who", ["staff_api", "team_api"])
def test_a_list_page_costs_the_same_queries_whatever_the_calls_and_their_participants(
    request: pytest.FixtureRequest, who: str, django_assert_num_queries: Any
) -> None:
    api: Client = request.getfixturevalue(who)
    add_calls(12)
    for url in LIST_URLS:
        with django_assert_num_queries(LIST_QUERIES):
            assert api.get(url).status_code == 200, url
    add_calls(24, start=12)  # three times the calls, as many with three to five people
    assert Participant.objects.count() > 2 * 36
    for url in (*LIST_URLS, "/api/calls/?page_size=5&page=4"):
        with django_assert_num_queries(LIST_QUERIES):
            page = api.get(url).json()
        assert page["results"], url
        people = {len(row["participants"]) for row in page["results"]}
        assert len(people) > 1 or "participant=" in url, (url, people)


def long_call(lines: int) -> int:
    """A call of ``lines`` finals with words, stored in one go: the ingest path's rows."""
    call_id = make_call("long-call", said=[Said(AGENT, "Hello, José — ¿qué tal?", 0.5)])
    services.participant_ensure(call_id=call_id, raw_id=EXTRAS[1])
    people = list(Participant.objects.filter(call_id=call_id))
    rows = []
    for n in range(1, lines):
        start = n * 36 * TICKS_PER_SECOND // 10
        text = f'Line {n}, with "quotes", commas & Grüße'
        rows.append(
            Utterance(
                call_id=call_id,
                participant=people[n % len(people)] if n % 50 else None,
                text=text,
                confidence=0.5 + (n % 50) / 100,
                offset_ticks=start,
                duration_ticks=2 * TICKS_PER_SECOND,
                words=[
                    {"text": word, "offset": start + i, "duration": 1000, "confidence": 0.9}
                    for i, word in enumerate(text.split())
                ],
                source=TranscriptSource.ACS,
                seq=n + 1,
                dedupe_key=f"acs|t{start}|{n}",
            )
        )
    Utterance.objects.bulk_create(rows, batch_size=500)
    return call_id


def lines_in(fmt: str, body: str) -> int:
    if fmt == "json":
        return len(json.loads(body)["lines"])
    if fmt == "csv":
        return len(list(csv.reader(io.StringIO(body)))) - 1
    if fmt in ("srt", "vtt"):
        return body.count(" --> ")
    return sum(1 for line in body.splitlines() if line.startswith("["))


@pytest.mark.parametrize("who", ["staff_api", "team_api"])
def test_a_2000_line_transcript_costs_the_same_queries_as_a_short_one_in_every_format(
    request: pytest.FixtureRequest, who: str, django_assert_num_queries: Any
) -> None:
    api: Client = request.getfixturevalue(who)
    short = make_call("short-call", said=[Said(AGENT, "Hello.", 1.0)])
    long = long_call(LONG_CALL_LINES)
    for fmt in FORMATS:
        for call_id, lines in ((short, 1), (long, LONG_CALL_LINES)):
            with django_assert_num_queries(TRANSCRIPT_QUERIES):
                response = api.get(f"/api/calls/{call_id}/transcript.{fmt}")
            assert response.status_code == 200
            assert lines_in(fmt, response.content.decode("utf-8")) == lines, fmt
