"""Malformed and hostile bodies on the ACS webhooks: ``/acs/events/`` and the callbacks.

Each is answered with a 4xx and its reason in the body (never a 5xx), is logged, changes
nothing, and a valid delivery right after it is still processed.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.acs.webhooks import MAX_DEPTH, MAX_EVENTS_PER_REQUEST
from streaming.models import Call, CallEvent, CallState
from tests.helpers import field_paths
from tests.standins.call_automation import CallAutomationStandIn

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
SECRET = "tests-only-acs-secret-0123456789"
JSON = "application/json"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def callback_event(**fields: Any) -> dict[str, Any]:
    """The recorded CallConnected event with a fresh id, top-level fields replaced."""
    event = recorded("sdk-python-recorded_media_call_connected.json")
    event["id"] = str(uuid.uuid4())
    event.update(fields)
    return event


def callback_data(**fields: Any) -> list[dict[str, Any]]:
    """A callback body: one recorded CallConnected event with ``data`` fields replaced."""
    event = callback_event()
    event["data"].update(fields)
    return [event]


def incoming_call(**data: Any) -> list[dict[str, Any]]:
    """The docs' Event Grid envelope around recorded IncomingCall data, fields replaced."""
    envelope = recorded("eventgrid_incoming_call_acs_user.json")[0]
    envelope["id"] = str(uuid.uuid4())
    envelope["data"] = {**recorded("sdk-python-recorded_media_incoming_call_data.json"), **data}
    return [envelope]


def post(client: Client, url: str, body: Any, content_type: str | None = JSON) -> Any:
    """POST ``body`` (bytes or text as is, anything else as JSON) with the shared secret."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    # CONTENT_TYPE is set even for an empty body, which the test client would send without.
    return client.generic("POST", f"{url}?token={SECRET}", body, CONTENT_TYPE=content_type or "")


@pytest.fixture
def acs(settings: Any, call_automation_standin: CallAutomationStandIn) -> CallAutomationStandIn:
    """Callsite answering every call through the Call Automation stand-in."""
    call_automation_standin.call_connection_id = "06004980-19f4-465a-b630-76c371713dff"
    settings.ACS_CONNECTION_STRING = call_automation_standin.connection_string
    settings.CALLSITE_PUBLIC_URL = "https://callsite.example.com"
    settings.CALLSITE_ANSWER_CALLS = ["all"]
    settings.CALLSITE_ACS_RESOURCE_ID = ""
    return call_automation_standin


@pytest.fixture
def managed_call() -> Call:
    """A call answered through Call Automation, waiting for its callbacks."""
    return Call.objects.create(managed=True, callback_id=uuid.uuid4(), state=CallState.RINGING)


# --- The corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadBody:
    """A bad delivery to ``endpoint`` ("events", "callbacks" or "both")."""

    name: str
    endpoint: str
    body: Any
    status: int
    reason: str
    content_type: str | None = JSON


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


LIMIT = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
INT32 = "must be an integer between -2147483648 and 2147483647"

CORPUS = [
    # Not JSON at all.
    BadBody("bad_json", "both", "{not json", 400, "not valid JSON"),
    BadBody("truncated_json", "both", '[{"id": "a", "type": ', 400, "not valid JSON"),
    BadBody("empty_body", "both", b"", 400, "not valid JSON"),
    BadBody("invalid_utf8", "both", b'[{"id": "\xff\xfe"}]', 400, "not valid JSON"),
    BadBody("nan", "both", '[{"id": "a", "data": {"x": NaN}}]', 400, "NaN is not a JSON number"),
    BadBody("infinity", "both", "[-Infinity]", 400, "-Infinity is not a JSON number"),
    BadBody("float_overflow", "both", '[{"data": {"x": 1e400}}]', 400, "1e400 is out of range"),
    BadBody("too_many_digits", "both", "[" + "9" * 5000 + "]", 400, "not valid JSON"),
    BadBody("deeply_nested", "both", deep(100_000), 400, "nested more than"),
    BadBody("nested_past_the_limit", "both", deep(MAX_DEPTH + 1), 400, "nested more than"),
    BadBody("nul", "both", callback_data(message="a\x00b"), 400, "NUL character"),
    BadBody("surrogate", "both", '[{"id": "\\ud800"}]', 400, "unpaired surrogate"),
    # JSON of the wrong shape.
    BadBody("a_string", "both", '"a string"', 400, "must be a JSON array of events"),
    BadBody("a_number", "both", "42", 400, "must be a JSON array of events"),
    BadBody("null", "both", "null", 400, "must be a JSON array of events"),
    BadBody("array_of_numbers", "both", "[1, 2]", 400, "event 0 is not a JSON object"),
    BadBody("nested_array", "both", [[callback_event()]], 400, "event 0 is not a JSON object"),
    BadBody(
        "too_many_events",
        "both",
        [{} for _ in range(MAX_EVENTS_PER_REQUEST + 1)],  # counted before they are read
        400,
        f"at most {MAX_EVENTS_PER_REQUEST} events",
    ),
    # Callback events: wrong types, missing fields, huge numbers.
    BadBody("id_number", "callbacks", [callback_event(id=7)], 400, "event 0.id must be"),
    BadBody("type_list", "callbacks", [callback_event(type=["x"])], 400, "event 0.type must be"),
    BadBody("data_string", "callbacks", [callback_event(data="{}")], 400, "event 0.data must be"),
    BadBody(
        "result_string",
        "callbacks",
        callback_data(resultInformation="ok"),
        400,
        "resultInformation must be an object",
    ),
    BadBody(
        "code_string",
        "callbacks",
        callback_data(resultInformation={"code": "200", "subCode": 0}),
        400,
        f"resultInformation.code {INT32}",
    ),
    BadBody(
        "code_bool",
        "callbacks",
        callback_data(resultInformation={"code": True}),
        400,
        f"resultInformation.code {INT32}",
    ),
    BadBody(
        "participants_number",
        "callbacks",
        callback_data(participants=5),
        400,
        "data.participants must be an array",
    ),
    BadBody("no_id", "callbacks", [{"type": "Microsoft.X", "data": {}}], 400, "0.id must be"),
    BadBody("no_type", "callbacks", [{"id": "a", "data": {}}], 400, "event 0.type must be"),
    BadBody("no_data", "callbacks", [{"id": "a", "type": "Microsoft.X"}], 400, "0.data must be"),
    BadBody(
        "second_event_bad",
        "callbacks",
        [callback_event(), callback_event(id="")],
        400,
        "event 1.id must be",
    ),
    BadBody(
        "code_2_80",
        "callbacks",
        callback_data(resultInformation={"code": 2**80}),
        400,
        f"resultInformation.code {INT32}",
    ),
    BadBody(
        "subcode_2_40",
        "callbacks",
        callback_data(resultInformation={"code": 200, "subCode": -(2**40)}),
        400,
        f"resultInformation.subCode {INT32}",
    ),
    BadBody(
        "sequence_2_70",
        "callbacks",
        callback_data(sequenceNumber=2**70, participants=[]),
        400,
        "sequenceNumber must be an integer",
    ),
    BadBody(
        "sequence_float",
        "callbacks",
        callback_data(sequenceNumber=1e308),
        400,
        "sequenceNumber must be an integer",
    ),
    # Event Grid events.
    BadBody(
        "event_type_number",
        "events",
        [{"id": "a", "eventType": 5, "data": {}}],
        400,
        "event 0.eventType must be a non-empty string",
    ),
    BadBody(
        "no_event_type", "events", [{"id": "a", "data": {}}], 400, "0.eventType must be a non-empty"
    ),
    BadBody(
        "validation_without_code",
        "events",
        [{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {}}],
        400,
        "no data.validationCode",
    ),
    BadBody(
        "validation_code_number",
        "events",
        [
            {
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": 1e308},
            }
        ],
        400,
        "no data.validationCode",
    ),
    BadBody(
        "incoming_data_list",
        "events",
        [{**incoming_call()[0], "data": []}],
        400,
        "IncomingCall.data must be an object",
    ),
    BadBody(
        "incoming_without_context",
        "events",
        [{**incoming_call()[0], "data": {"from": {}, "to": {}}}],
        400,
        "incomingCallContext must be a non-empty string",
    ),
    BadBody(
        "incoming_context_number",
        "events",
        incoming_call(incomingCallContext=2**80),
        400,
        "incomingCallContext must be a non-empty string",
    ),
    BadBody(
        "incoming_then_garbage",
        "events",
        [*incoming_call(), {"id": "b", "eventType": None}],
        400,
        "event 1.eventType must be",
    ),
    # Not JSON by its Content-Type, or too large to read.
    BadBody("text_plain", "both", callback_data(), 415, "not 'text/plain'", "text/plain"),
    BadBody(
        "form",
        "both",
        "a=1",
        415,
        "not 'application/x-www-form-urlencoded'",
        "application/x-www-form-urlencoded",
    ),
    BadBody("xml", "both", "<events/>", 415, "not 'application/xml'", "application/xml"),
    BadBody("no_content_type", "both", callback_data(), 415, "not none", None),
    BadBody(
        "too_large", "both", "[" + " " * LIMIT + "]", 413, f"the body is larger than {LIMIT} bytes"
    ),
]


def cases_for(endpoint: str) -> list[Any]:
    return [
        pytest.param(case, id=case.name) for case in CORPUS if case.endpoint in (endpoint, "both")
    ]


def assert_refused(response: Any, case: BadBody, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code == case.status, response.content[:300]
    reason = response.json()["error"]
    assert case.reason in reason
    assert len(reason) < 300  # what the sender sent is never echoed at length
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "streaming.automation.views" and r.levelno == logging.WARNING
    ]
    assert len(logged) == 1
    assert reason in logged[0]


@pytest.mark.parametrize("case", cases_for("callbacks"))
def test_bad_callbacks_are_refused_with_a_reason(
    client: Client, managed_call: Call, case: BadBody, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad callback body is answered 4xx with its reason and logged; nothing of it is
    applied, and the recorded CallConnected posted next is."""
    url = f"/acs/callbacks/{managed_call.callback_id}/"
    with caplog.at_level(logging.INFO, logger="streaming.automation"):
        assert_refused(post(client, url, case.body, case.content_type), case, caplog)
    assert not CallEvent.objects.exists()
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.RINGING

    response = post(client, url, [callback_event()])
    assert response.status_code == 200
    assert response.json() == {"applied": 1, "duplicates": 0}
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.CONNECTED


@pytest.mark.parametrize("case", cases_for("events"))
def test_bad_event_grid_deliveries_are_refused_with_a_reason(
    client: Client, acs: CallAutomationStandIn, case: BadBody, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad Event Grid delivery is answered 4xx with its reason and logged; no call is
    answered or stored for it, and the IncomingCall posted next is answered."""
    with caplog.at_level(logging.INFO, logger="streaming.automation"):
        assert_refused(post(client, "/acs/events/", case.body, case.content_type), case, caplog)
    assert not Call.objects.exists()
    assert acs.requests == []

    response = post(client, "/acs/events/", incoming_call())
    assert response.status_code == 200, response.content
    assert response.json() == {"outcomes": ["answered"]}
    assert Call.objects.get().connection_id == acs.call_connection_id


def test_unknown_event_types_are_acknowledged_and_logged(
    client: Client, managed_call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """ACS and Event Grid add event types: an unknown one is not an error (a 4xx would only
    make them retry it). Event Grid's is logged and ignored; a callback's is stored."""
    with caplog.at_level(logging.INFO, logger="streaming.automation"):
        events = post(client, "/acs/events/", [{"id": "e1", "eventType": "Microsoft.New"}])
        url = f"/acs/callbacks/{managed_call.callback_id}/"
        callback = post(client, url, [callback_event(type="Microsoft.Communication.NewThing")])
    assert events.status_code == 200
    assert events.json() == {"outcomes": ["ignored"]}
    assert callback.json() == {"applied": 1, "duplicates": 0}
    assert CallEvent.objects.get().type == "NewThing"
    messages = [r.getMessage() for r in caplog.records]
    assert "ignoring Event Grid event of type 'Microsoft.New'" in messages
    assert any("NewThing" in message and "recorded" in message for message in messages)


@pytest.mark.parametrize(
    "time", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "not a time", 1e308]
)
def test_an_unusable_event_time_is_dropped_not_fatal(
    client: Client, managed_call: Call, time: Any
) -> None:
    """A time with no UTC equivalent is unusable like any other bad time: the event is
    applied without it."""
    url = f"/acs/callbacks/{managed_call.callback_id}/"
    response = post(client, url, [callback_event(time=time)])
    assert response.status_code == 200, response.content
    assert CallEvent.objects.get().time is None
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.CONNECTED


def test_json_media_types_with_parameters_are_accepted(client: Client, managed_call: Call) -> None:
    """``application/json; charset=utf-8`` and CloudEvents' ``application/*+json`` are JSON."""
    url = f"/acs/callbacks/{managed_call.callback_id}/"
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/cloudevents-batch+json; charset=utf-8",
    ):
        response = post(client, url, [callback_event()], content_type)
        assert response.json() == {"applied": 1, "duplicates": 0}, content_type


# --- Property-based: arbitrary JSON and mutated recorded events --------------------------------

CALLBACK_BODIES = [
    [recorded(path.name)] if path.name.startswith("sdk-python") else recorded(path.name)
    for path in sorted(FIXTURES.glob("sdk-*recorded_*.json"))
    if "incoming_call_data" not in path.name
]
EVENT_GRID_BODIES = [
    recorded("eventgrid_incoming_call_acs_user.json"),
    recorded("eventgrid_subscription_validation_event.json"),
    incoming_call(),
]


REMOVE = object()


def mutated(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if value is REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return body


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\x00", "a\ud800b", "\udfff", "", "Microsoft.Communication.CallConnected"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


# Numbers at and past the edges of the columns they may end up in.
edge_numbers = (
    st.sampled_from(
        [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**80, 1e308, -1e308, float("nan"), float("inf")]
    )
    | st.integers()
)


def mutations(bodies: list[Any]) -> st.SearchStrategy[Any]:
    sites = [(body, path) for body in bodies for path in field_paths(body)]
    return st.sampled_from(sites).flatmap(
        lambda site: (st.just(REMOVE) | edge_numbers | json_values).map(
            lambda value: mutated(site[0], site[1], value)
        )
    )


@settings(max_examples=400, deadline=None)
@given(
    callback=mutations(CALLBACK_BODIES) | json_values,
    event_grid=mutations(EVENT_GRID_BODIES) | json_values,
)
def test_arbitrary_deliveries_never_cause_a_server_error(callback: Any, event_grid: Any) -> None:
    """Any JSON value, and any recorded delivery with one field replaced or removed, is
    answered 200 or 4xx with a reason; never 5xx (the test client re-raises any exception)."""
    call, _ = Call.objects.get_or_create(
        connection_id="fuzzed-callbacks",
        defaults={"managed": True, "callback_id": uuid.uuid4()},
    )
    client = Client()
    for body in (callback, event_grid):
        # Fresh ids, or every delivery after the first would be a duplicate and not applied.
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, dict) and isinstance(event.get("id"), str):
                event["id"] = str(uuid.uuid4())
    for url, body in (
        (f"/acs/callbacks/{call.callback_id}/", callback),
        ("/acs/events/", event_grid),
    ):
        response = post(client, url, json.dumps(body))
        assert response.status_code in (200, 400), (url, response.status_code)
        if response.status_code == 400:
            assert response.json()["error"]
