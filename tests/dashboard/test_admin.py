"""Call history in the Django admin: columns, filters, search, cost, visibility, downloads,
and the team admin."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import srt  # type: ignore[import-untyped]  # no type hints
import webvtt
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.models import Team, TeamAddress
from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from streaming import services
from streaming.models import (
    Alert,
    AlertKind,
    Call,
    CallAnalytics,
    CallEvent,
    Participant,
    ParticipantRole,
    TranscriptSource,
    Utterance,
)
from tests import factories
from tests.factories import Said, make_recording

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/streaming/call/"
NORTH_AGENT = "8:acs:north-agent-0001"
SOUTH_AGENT = "8:acs:south-agent-0002"
CUSTOMER = "4:+15555550123"
OTHER_CUSTOMER = "4:+15555550199"
MARCH_4 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
MARCH_5 = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------- data


def make_call(
    connection_id: str,
    *,
    people: Iterable[str] = (),
    lines: Iterable[tuple[str, str, float | None]] = (),
    talk_ratio: float | None = None,
    alerts: Iterable[str] = (),
    started: datetime | None = None,
    length: timedelta | None = None,
) -> int:
    """A call as ingest stores it: participants, finals (two seconds apart, 1.5 s long),
    analytics, alerts; ``length`` ends it that long after ``started``."""
    return factories.make_call(
        connection_id,
        people=people,
        said=[
            Said(speaker, text, 2.0 * index, 1.5, confidence, source=TranscriptSource.ACS)
            for index, (speaker, text, confidence) in enumerate(lines)
        ],
        alerts=list(alerts),
        analytics=(
            None
            if talk_ratio is None
            else {"source": CallAnalytics.Source.AUDIO, "agent_talk_ratio": talk_ratio}
        ),
        started=started,
        length=length,
    )


@pytest.fixture
def history() -> dict[str, int]:
    """Two calls of the north agent (one with a customer who was charged twice) and one of
    the south agent, still live."""
    return {
        "north-1": make_call(
            "north-1",
            people=[NORTH_AGENT, CUSTOMER],
            lines=[
                (NORTH_AGENT, "Hello, thanks for calling.", 0.8),
                (CUSTOMER, "Hi. I was charged twice for the same order.", 0.9),
            ],
            talk_ratio=0.62,
            alerts=[AlertKind.KEYWORD, AlertKind.DEAD_AIR],
            started=MARCH_4,
            length=timedelta(minutes=5, seconds=30),
        ),
        "south-1": make_call(
            "south-1",
            people=[SOUTH_AGENT, OTHER_CUSTOMER],
            lines=[(SOUTH_AGENT, "Your parcel is on its way.", 0.7)],
            started=MARCH_5,
        ),
        "north-2": make_call(
            "north-2",
            people=[NORTH_AGENT, CUSTOMER],
            lines=[(NORTH_AGENT, "Let me check the order status.", 0.95)],
            talk_ratio=0.5,
            alerts=[AlertKind.OVERTALK],
            started=MARCH_5 + timedelta(hours=2),
            length=timedelta(minutes=1),
        ),
    }


@pytest.fixture
def supervisors_group() -> Group:
    """The Supervisors group that ``migrate`` keeps (recreated if a flush removed it)."""
    group, _ = Group.objects.get_or_create(name=SUPERVISORS_GROUP)
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="streaming",
            codename__in=["view_call", "view_participant", "view_utterance", "view_alert"],
        )
    )
    return group


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="root-password-123"))
    return client


@pytest.fixture
def north_client(supervisors_group: Group) -> Client:
    """Admin staff in the Supervisors group (not Staff), member of the north team only."""
    user = User.objects.create_user("north", password="north-password-123", is_staff=True)
    user.groups.add(supervisors_group)
    team = Team.objects.create(name="North")
    team.members.add(user)
    TeamAddress.objects.create(team=team, address=NORTH_AGENT)
    client = Client()
    client.force_login(user)
    return client


# ------------------------------------------------------------------------- reading pages


class ResultTable(HTMLParser):
    """The changelist's rows as ``{column: text}``, columns named by their ``field-*`` class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._in_table = False
        self._row: dict[str, str] = {}
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "result_list":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._row = {}
        elif self._in_table and tag in ("td", "th"):
            classes = (attributes.get("class") or "").split()
            self._cell = next((c[len("field-") :] for c in classes if c.startswith("field-")), None)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag in ("td", "th") and self._cell:
            self._row[self._cell] = " ".join("".join(self._text).split())
            self._cell = None
        elif self._in_table and tag == "tr" and self._row:
            self.rows.append(self._row)

    def handle_data(self, data: str) -> None:
        if self._cell:
            self._text.append(data)


def rows(client: Client, query: str = "") -> dict[str, dict[str, str]]:
    """The changelist (with ``query``) as ``{connection id: {column: text}}``."""
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, response
    table = ResultTable()
    table.feed(response.content.decode())
    return {row["connection_id"]: row for row in table.rows}


class FormFields(HTMLParser):
    """What a browser would submit for the form with ``form_id`` (no submit buttons)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._in_form = a.get("id") == self.form_id
        if not self._in_form or (not a.get("name") and tag != "option"):
            return
        name = a.get("name") or ""
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._add(name, a.get("value") or ("on" if kind in ("checkbox", "radio") else ""))
        elif tag == "select":
            self._select, self._options = name, []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value") or "", "selected" in a))
        elif tag == "textarea":
            self._textarea = name
            self._add(name, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            for value in chosen or [value for value, _ in self._options[:1]]:
                self._add(self._select, value)
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea][-1] += data.removeprefix("\n")


def form_data(html: bytes, form_id: str) -> dict[str, Any]:
    parser = FormFields(form_id)
    parser.feed(html.decode())
    return {name: values if len(values) > 1 else values[0] for name, values in parser.data.items()}


# ------------------------------------------------------------------------------ the list


def test_changelist_shows_each_calls_figures(
    superuser_client: Client, history: dict[str, int]
) -> None:
    table = rows(superuser_client)
    assert set(table) == {"north-1", "south-1", "north-2"}
    empty = admin.site.empty_value_display

    north = table["north-1"]
    assert north["state"] == "Ended"
    assert north["started_at"]
    assert north["duration"] == "5:30"
    assert north["participant_labels"] == "Agent 0001, +15555550123"
    assert north["agent_talk"] == "62%"
    assert north["mean_confidence"] == "0.85"
    assert north["alert_total"] == "2"

    live = table["south-1"]
    assert live["state"] == "Connected"
    assert live["duration"].endswith(" so far")
    assert live["agent_talk"] == empty  # no analytics yet
    assert live["mean_confidence"] == "0.70"
    assert live["alert_total"] == "0"

    assert table["north-2"]["duration"] == "1:00"
    assert table["north-2"]["agent_talk"] == "50%"
    assert table["north-2"]["alert_total"] == "1"


def test_columns_sort_by_their_figures(superuser_client: Client, history: dict[str, int]) -> None:
    response = superuser_client.get(CHANGELIST)
    columns = list(response.context["cl"].list_display)
    by = {name: columns.index(name) for name in ("duration", "alert_total", "mean_confidence")}
    alerts_desc = list(rows(superuser_client, f"?o=-{by['alert_total']}"))
    assert alerts_desc == ["north-1", "north-2", "south-1"]
    confidence_asc = list(rows(superuser_client, f"?o={by['mean_confidence']}"))
    assert confidence_asc == ["south-1", "north-1", "north-2"]
    ended_by_length = list(rows(superuser_client, f"?state__exact=ended&o={by['duration']}"))
    assert ended_by_length == ["north-2", "north-1"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?state__exact=connected", {"south-1"}),
        ("?state__exact=ended", {"north-1", "north-2"}),
        (
            "?started_at__gte=2025-03-04+00:00:00%2B00:00&started_at__lt=2025-03-05+00:00:00%2B00:00",
            {"north-1"},
        ),
        (
            "?started_at__gte=2025-03-05+00:00:00%2B00:00&started_at__lt=2025-03-06+00:00:00%2B00:00",
            {"south-1", "north-2"},
        ),
        (f"?participant={NORTH_AGENT}", {"north-1", "north-2"}),
        ("?participant=%2B1+555+555-0199", {"south-1"}),  # a phone number as people type it
        ("?participant=agent+0002", {"south-1"}),  # a label
        ("?has_alerts=yes", {"north-1", "north-2"}),
        ("?has_alerts=no", {"south-1"}),
        ("?alert_kind=dead_air", {"north-1"}),
        ("?alert_kind=overtalk", {"north-2"}),
        ("?alert_kind=monologue", set()),
        ("?has_alerts=yes&alert_kind=keyword&state__exact=ended", {"north-1"}),
    ],
)
def test_filters(
    superuser_client: Client, history: dict[str, int], query: str, expected: set[str]
) -> None:
    assert set(rows(superuser_client, query)) == expected


def test_participant_filter_lists_agents_not_customers(
    superuser_client: Client, history: dict[str, int]
) -> None:
    response = superuser_client.get(CHANGELIST)
    spec = next(s for s in response.context["cl"].filter_specs if s.title == "participant")
    assert [raw_id for raw_id, _ in spec.lookup_choices] == [NORTH_AGENT, SOUTH_AGENT]
    assert [label for _, label in spec.lookup_choices] == ["Agent 0001", "Agent 0002"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("charged twice", {"north-1"}),  # said in north-1
        ("order", {"north-1", "north-2"}),
        ("PARCEL", {"south-1"}),
        ("cancel my subscription", set()),  # said in no call
        ("refund", set()),
        ("north-", {"north-1", "north-2"}),  # connection id
        ("5555550199", {"south-1"}),  # a participant's number
    ],
)
def test_search_by_what_was_said(
    superuser_client: Client, history: dict[str, int], term: str, expected: set[str]
) -> None:
    assert set(rows(superuser_client, f"?q={term}")) == expected


def _populate(count: int, start: int) -> None:
    for index in range(start, start + count):
        make_call(
            f"bulk-{index:03d}",
            people=[NORTH_AGENT, f"4:+1555000{index:04d}"],
            lines=[
                (NORTH_AGENT, f"Good morning, caller {index}.", 0.9),
                (f"4:+1555000{index:04d}", "I need help with my order.", 0.8),
            ],
            talk_ratio=0.5,
            alerts=[AlertKind.KEYWORD],
            started=MARCH_4 + timedelta(minutes=index),
            length=timedelta(minutes=3),
        )


@pytest.mark.parametrize("user", ["superuser", "team supervisor"])
def test_changelist_costs_the_same_queries_for_5_and_30_calls(
    request: pytest.FixtureRequest, user: str
) -> None:
    client = request.getfixturevalue("superuser_client" if user == "superuser" else "north_client")

    def count_queries(query: str = "") -> int:
        client.get(CHANGELIST + query)  # warm caches (session, content types)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(CHANGELIST + query)
        assert response.status_code == 200
        return len(captured.captured_queries)

    _populate(5, 0)
    few = count_queries(), count_queries("?has_alerts=yes&q=order")
    assert len(rows(client)) == 5
    _populate(25, 5)
    many = count_queries(), count_queries("?has_alerts=yes&q=order")
    assert len(rows(client)) == 30
    assert few == many
    assert many[0] <= 12, many


@pytest.fixture
def staff_client(supervisors_group: Group) -> Client:
    """Admin staff in the Staff group: every call, through the permission (not a superuser)."""
    staff, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    staff.permissions.add(
        *supervisors_group.permissions.all(),
        Permission.objects.get(content_type__app_label="streaming", codename="view_all_calls"),
    )
    user = User.objects.create_user("staff", password="staff-password-123", is_staff=True)
    user.groups.add(supervisors_group, staff)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("user", ["staff", "team supervisor"])
def test_later_pages_and_filters_cost_what_the_first_page_costs(
    request: pytest.FixtureRequest, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten calls a page; calls with two to five participants; 5 calls, then 30."""
    client = request.getfixturevalue("staff_client" if user == "staff" else "north_client")
    monkeypatch.setattr(admin.site._registry[Call], "list_per_page", 10)
    extras = ("28:acs:ivr-bot-0001", SOUTH_AGENT, "8:acs:north-agent-0003")

    def populate(count: int, start: int) -> None:
        _populate(count, start)
        for index in range(start, start + count):
            call_id = Call.objects.get(connection_id=f"bulk-{index:03d}").pk
            for raw_id in extras[: index % 4]:
                services.participant_ensure(call_id=call_id, raw_id=raw_id)

    def count_queries(query: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(CHANGELIST + query)
        assert response.status_code == 200
        assert response.context["cl"].result_list, query
        return len(captured.captured_queries)

    march = (
        "?started_at__gte=2025-03-01+00:00:00%2B00:00&started_at__lt=2025-04-01+00:00:00%2B00:00"
    )
    queries = ("", march, "?q=order", "?has_alerts=yes")
    populate(5, 0)
    client.get(CHANGELIST)  # warm caches (content types)
    few = [count_queries(q) for q in queries]
    populate(25, 5)
    assert [count_queries(q) for q in queries] == few
    assert count_queries("?p=3") == few[0]
    assert count_queries("?p=2&q=order&participant=8:acs:north-agent-0001") == few[2]


# ------------------------------------------------------------------------------ one call


def test_inlines_show_records_read_only(superuser_client: Client, history: dict[str, int]) -> None:
    call_id = history["north-1"]
    CallEvent.objects.create(call_id=call_id, event_id="ev-1", type="CallConnected")
    mix = make_recording(call_id, {CUSTOMER: [500, -500] * 8000})
    url = f"{CHANGELIST}{call_id}/change/"
    page = superuser_client.get(url)
    assert page.status_code == 200
    inlines = {f.formset.prefix: f for f in page.context["inline_admin_formsets"]}
    assert set(inlines) == {
        "analytics",
        "participants",
        "alerts",
        "utterances",
        "events",
        "actions",
        "recordings",
    }
    for prefix in ("analytics", "alerts", "utterances", "events", "actions", "recordings"):
        inline = inlines[prefix]
        assert not inline.has_add_permission, prefix
        assert not inline.has_change_permission, prefix
        assert not inline.has_delete_permission, prefix
        assert not inline.formset.can_delete, prefix
    people = inlines["participants"]
    assert not people.has_add_permission
    assert not people.has_delete_permission
    assert "role" in people.formset.forms[0].fields
    html = page.content.decode()
    assert "charged twice" in html
    # Its recordings, the mix and the customer's track, each with a player.
    assert f'src="/api/calls/{call_id}/recordings/{mix}.flac"' in html
    assert html.count("<audio controls") == 2
    assert 'name="utterances-0-text"' not in html
    assert 'name="participants-0-DELETE"' not in html

    # Submitting the page as a browser would, with a role corrected and records tampered with.
    data = form_data(page.content, "call_form")
    customer = Participant.objects.get(call_id=call_id, raw_id=CUSTOMER)
    index = next(i for i in range(2) if data[f"participants-{i}-id"] == str(customer.pk))
    data[f"participants-{index}-role"] = ParticipantRole.BOT
    data["participants-0-DELETE"] = "on"
    data["utterances-0-text"] = "tampered"
    data["alerts-0-message"] = "tampered"
    data["_save"] = "Save"
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context and [
        f.formset.errors for f in response.context["inline_admin_formsets"]
    ]
    customer.refresh_from_db()
    assert customer.role == ParticipantRole.BOT
    assert Participant.objects.filter(call_id=call_id).count() == 2
    assert not Utterance.objects.filter(text="tampered").exists()
    assert not Alert.objects.filter(message="tampered").exists()
    assert Utterance.objects.filter(call_id=call_id).count() == 2


def test_calls_cannot_be_added_in_the_admin(superuser_client: Client) -> None:
    assert superuser_client.get(f"{CHANGELIST}add/").status_code == 403


# ----------------------------------------------------------------------------- visibility


def test_team_supervisor_sees_only_their_teams_calls(
    north_client: Client, history: dict[str, int]
) -> None:
    assert set(rows(north_client)) == {"north-1", "north-2"}
    assert set(rows(north_client, "?q=parcel")) == set()
    assert set(rows(north_client, "?has_alerts=no")) == set()

    own = north_client.get(f"{CHANGELIST}{history['north-1']}/change/")
    assert own.status_code == 200
    assert b"charged twice" in own.content
    other = north_client.get(f"{CHANGELIST}{history['south-1']}/change/")
    assert other.status_code in (302, 404)
    if other.status_code == 302:
        assert other["Location"] == "/admin/"
    assert b"parcel" not in north_client.get("/admin/", follow=True).content

    # The other records are scoped the same way.
    utterances = north_client.get("/admin/streaming/utterance/")
    assert utterances.status_code == 200
    assert b"charged twice" in utterances.content
    assert b"parcel" not in utterances.content
    south_line = Utterance.objects.get(call_id=history["south-1"])
    assert north_client.get(f"/admin/streaming/utterance/{south_line.pk}/change/").status_code in (
        302,
        404,
    )
    participants = north_client.get("/admin/streaming/participant/")
    assert b"5555550199" not in participants.content


def test_staff_without_the_supervisor_permission_sees_no_calls(
    client: Client, history: dict[str, int]
) -> None:
    user = User.objects.create_user("clerk", password="clerk-password-123", is_staff=True)
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 403


# ------------------------------------------------------------------------------ download


def _download(client: Client, call_ids: list[int], fmt: str) -> Any:
    """Choose the action on the list, then the format on the page it shows."""
    chooser = client.post(
        CHANGELIST,
        {"action": "download_transcripts", "_selected_action": call_ids, "index": "0"},
    )
    assert chooser.status_code == 200
    assert b'name="format"' in chooser.content
    data = form_data(chooser.content, "download-transcripts")
    assert data["action"] == "download_transcripts"
    assert data["format"] == "txt"  # the default
    data["format"] = fmt
    return client.post(CHANGELIST, data)


def _check_body(fmt: str, body: str, said: list[str]) -> None:
    if fmt == "json":
        texts = [line["text"] for line in json.loads(body)["lines"]]
    elif fmt == "csv":
        texts = [row["text"] for row in csv.DictReader(io.StringIO(body))]
    elif fmt == "srt":
        texts = [sub.content.split(": ", 1)[1] for sub in srt.parse(body)]
    elif fmt == "vtt":
        texts = [caption.text for caption in webvtt.from_string(body, strict=True).captions]
    else:
        texts = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("[")]
    assert texts == said


@pytest.mark.parametrize("fmt", ["json", "csv", "txt", "srt", "vtt"])
def test_download_transcripts_as_a_zip(
    superuser_client: Client, history: dict[str, int], fmt: str
) -> None:
    chosen = [history["north-1"], history["south-1"]]
    response = _download(superuser_client, chosen, fmt)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith(f'attachment; filename="transcripts-{fmt}-')
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    north, south = history["north-1"], history["south-1"]
    assert sorted(archive.namelist()) == sorted(
        [f"call-{north}-north-1.{fmt}", f"call-{south}-south-1.{fmt}"]
    )
    _check_body(
        fmt,
        archive.read(f"call-{north}-north-1.{fmt}").decode("utf-8"),
        ["Hello, thanks for calling.", "Hi. I was charged twice for the same order."],
    )
    _check_body(
        fmt,
        archive.read(f"call-{south}-south-1.{fmt}").decode("utf-8"),
        ["Your parcel is on its way."],
    )


def test_download_one_call_returns_its_file(
    superuser_client: Client, history: dict[str, int]
) -> None:
    call_id = history["north-2"]
    response = _download(superuser_client, [call_id], "vtt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/vtt; charset=utf-8"
    disposition = f'attachment; filename="call-{call_id}-north-2.vtt"'
    assert response["Content-Disposition"] == disposition
    _check_body("vtt", response.content.decode(), ["Let me check the order status."])


def test_download_refuses_an_unknown_format(
    superuser_client: Client, history: dict[str, int]
) -> None:
    response = superuser_client.post(
        CHANGELIST,
        {
            "action": "download_transcripts",
            "_selected_action": [history["north-1"]],
            "post": "yes",
            "format": "docx",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["format"]


def test_download_only_includes_visible_calls(
    north_client: Client, history: dict[str, int]
) -> None:
    own, other = history["north-1"], history["south-1"]
    response = _download(north_client, [own, other], "txt")
    assert response["Content-Disposition"] == f'attachment; filename="call-{own}-north-1.txt"'
    assert b"parcel" not in response.content

    nothing = north_client.post(
        CHANGELIST,
        {"action": "download_transcripts", "_selected_action": [other], "index": "0"},
    )
    assert nothing.status_code == 302
    assert b"parcel" not in north_client.get(nothing["Location"]).content


# ---------------------------------------------------------------------------------- teams


def _team_form(name: str, addresses: list[str], members: list[int]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "members": members,
        "addresses-TOTAL_FORMS": str(len(addresses)),
        "addresses-INITIAL_FORMS": "0",
        "addresses-MIN_NUM_FORMS": "0",
        "addresses-MAX_NUM_FORMS": "1000",
    }
    for index, address in enumerate(addresses):
        data[f"addresses-{index}-address"] = address
    return data


def test_team_admin_saves_members_and_addresses(superuser_client: Client) -> None:
    page = superuser_client.get("/admin/dashboard/team/add/")
    assert page.status_code == 200
    assert b"selectfilter" in page.content.lower()  # filter_horizontal for members
    member = User.objects.create_user("east", password="east-password-123", is_staff=True)
    response = superuser_client.post(
        "/admin/dashboard/team/add/",
        _team_form("East", ["+1 (555) 123-0000", f"  {NORTH_AGENT} "], [member.pk]),
    )
    assert response.status_code == 302
    team = Team.objects.get(name="East")
    assert list(team.members.all()) == [member]
    assert sorted(team.addresses.values_list("raw_id", "number")) == [
        ("4:+15551230000", "+15551230000"),
        (NORTH_AGENT, ""),
    ]
    listing = superuser_client.get("/admin/dashboard/team/")
    assert b"East" in listing.content


@pytest.mark.parametrize(
    ("addresses", "bad"),
    [
        (["not an address"], 0),
        (["+"], 0),
        (["+15551230000", "4:+1 555 123 0000"], 1),  # the same number twice
    ],
)
def test_team_admin_rejects_a_malformed_address_on_its_field(
    superuser_client: Client, addresses: list[str], bad: int
) -> None:
    response = superuser_client.post(
        "/admin/dashboard/team/add/", _team_form("West", addresses, [])
    )
    assert response.status_code == 200
    forms = response.context["inline_admin_formsets"][0].formset.forms
    assert forms[bad].errors["address"]
    assert "__all__" not in forms[bad].errors
    assert not Team.objects.filter(name="West").exists()


def test_participant_filter_tells_agents_with_one_label_apart(
    superuser_client: Client, history: dict[str, int]
) -> None:
    twin = "8:acs:east-agent-0001"  # labelled "Agent 0001" too
    make_call("east-1", people=[twin])
    response = superuser_client.get(CHANGELIST)
    spec = next(s for s in response.context["cl"].filter_specs if s.title == "participant")
    assert dict(spec.lookup_choices) == {
        NORTH_AGENT: f"Agent 0001 ({NORTH_AGENT})",
        twin: f"Agent 0001 ({twin})",
        SOUTH_AGENT: "Agent 0002",
    }
    assert set(rows(superuser_client, f"?participant={twin}")) == {"east-1"}
