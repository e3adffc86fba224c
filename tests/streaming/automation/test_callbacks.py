"""Call Automation callbacks and Event Grid deliveries over HTTP, with the recorded events."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from streaming.models import Call, CallEvent, CallState, Participant, StreamState

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
SECRET_QUERY = "?token=tests-only-acs-secret-0123456789"
CONNECTION_ID = "06004980-19f4-465a-b630-76c371713dff"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def post(client: Client, url: str, body: Any, query: str = SECRET_QUERY) -> Any:
    return client.post(f"{url}{query}", data=json.dumps(body), content_type="application/json")


@pytest.fixture
def managed_call() -> Call:
    """A call answered through Call Automation, waiting for its callbacks."""
    return Call.objects.create(
        managed=True, callback_id=uuid.uuid4(), state=CallState.RINGING, caller="+15550001"
    )


def callback_url(call: Call) -> str:
    return f"/acs/callbacks/{call.callback_id}/"


def test_validation_handshake_echoes_the_code(client: Client) -> None:
    """Event Grid's subscription validation gets its code back with HTTP 200."""
    response = post(
        client, "/acs/events/", recorded("eventgrid_subscription_validation_event.json")
    )
    assert response.status_code == 200
    assert response.json() == recorded("eventgrid_subscription_validation_response.json")


@pytest.mark.parametrize("query", ["", "?token=wrong-secret-value-123"])
def test_event_grid_refuses_without_the_secret(client: Client, query: str) -> None:
    """Without the shared secret in the subscription URL, nothing is answered or stored."""
    response = post(
        client, "/acs/events/", recorded("eventgrid_incoming_call_acs_user.json"), query
    )
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert not Call.objects.exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('"a string"', "JSON array"),
        ("[1, 2]", "event 0 is not a JSON object"),
    ],
)
def test_event_grid_rejects_malformed_bodies(client: Client, body: str, reason: str) -> None:
    """Malformed deliveries get 400 with the reason."""
    response = client.post(
        f"/acs/events/{SECRET_QUERY}", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_event_grid_ignores_other_event_types(client: Client) -> None:
    """Events Callsite does not handle are acknowledged (so Event Grid stops retrying)."""
    event = {
        "id": "x",
        "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
        "data": {},
    }
    response = post(client, "/acs/events/", [event])
    assert response.status_code == 200
    assert response.json() == {"outcomes": ["ignored"]}


def test_recorded_callbacks_drive_the_call_to_its_end(client: Client, managed_call: Call) -> None:
    """CallConnected, ParticipantsUpdated, MediaStreamingStarted/Stopped and
    CallDisconnected, as ACS recorded them, move the call from ringing to ended."""
    url = callback_url(managed_call)
    steps = [
        ("sdk-python-recorded_media_call_connected.json", CallState.CONNECTED, StreamState.OFF),
        (
            "sdk-python-recorded_media_participants_updated.json",
            CallState.CONNECTED,
            StreamState.OFF,
        ),
        (
            "sdk-python-recorded_media_streaming_started.json",
            CallState.CONNECTED,
            StreamState.STARTED,
        ),
        (
            "sdk-python-recorded_media_streaming_stopped.json",
            CallState.CONNECTED,
            StreamState.STOPPED,
        ),
        ("sdk-python-recorded_media_call_disconnected.json", CallState.ENDED, StreamState.STOPPED),
    ]
    for name, state, media in steps:
        response = post(client, url, [recorded(name)])
        assert response.status_code == 200, response.content
        assert response.json() == {"applied": 1, "duplicates": 0}
        managed_call.refresh_from_db()
        assert (managed_call.state, managed_call.media_state) == (state, media), name
    assert managed_call.connection_id == CONNECTION_ID
    assert managed_call.started_at is not None
    assert managed_call.ended_at is not None
    raw_ids = set(Participant.objects.filter(call=managed_call).values_list("raw_id", flat=True))
    assert len(raw_ids) == 2
    assert all(raw.startswith("8:acs:") for raw in raw_ids)
    assert CallEvent.objects.filter(call=managed_call).count() == 5


def test_transcription_callbacks_track_transcription_state(
    client: Client, managed_call: Call
) -> None:
    """TranscriptionStarted, Updated and Stopped (recorded) set the transcription state."""
    url = callback_url(managed_call)
    for name, expected in [
        ("sdk-python-recorded_transcription_started.json", StreamState.STARTED),
        ("sdk-python-recorded_transcription_updated.json", StreamState.STARTED),
        ("sdk-python-recorded_transcription_stopped.json", StreamState.STOPPED),
    ]:
        assert post(client, url, [recorded(name)]).status_code == 200
        managed_call.refresh_from_db()
        assert managed_call.transcription_state == expected, name


def test_java_recorded_bodies_are_arrays_with_escaped_times(
    client: Client, managed_call: Call
) -> None:
    """Raw recorded HTTP bodies (arrays, ``\\u002B`` in times) are taken as they are."""
    body = (FIXTURES / "sdk-java-recorded_callback_body_call_connected.json").read_text()
    assert "\\u002B" in body
    response = client.post(
        f"{callback_url(managed_call)}{SECRET_QUERY}", data=body, content_type="application/json"
    )
    assert response.status_code == 200
    event = CallEvent.objects.get(call=managed_call)
    assert event.time is not None
    assert event.time.utcoffset() is not None


def test_redelivered_events_are_applied_once(client: Client, managed_call: Call) -> None:
    """The same event id twice (ACS retries) is recorded once and reported as a duplicate."""
    event = recorded("sdk-python-recorded_media_call_connected.json")
    assert post(client, callback_url(managed_call), [event]).json()["applied"] == 1
    again = post(client, callback_url(managed_call), [event, event])
    assert again.json() == {"applied": 0, "duplicates": 2}
    assert CallEvent.objects.count() == 1


def test_out_of_order_events_do_not_move_state_back(client: Client, managed_call: Call) -> None:
    """A late CallConnected after CallDisconnected, a stale participant list, and a streaming
    status older than the last one seen are recorded but change nothing."""
    url = callback_url(managed_call)
    participants = recorded("sdk-python-recorded_media_participants_updated.json")
    newer = copy.deepcopy(participants)
    newer["id"] = "newer-participants"
    newer["data"]["sequenceNumber"] = 5
    newer["data"]["participants"] = newer["data"]["participants"][:1]
    newer["data"]["participants"][0]["isMuted"] = True
    stopped = recorded("sdk-python-recorded_media_streaming_stopped.json")
    started = recorded("sdk-python-recorded_media_streaming_started.json")
    started["time"] = "2025-05-06T16:31:00+00:00"  # older than the stop
    body = [
        recorded("sdk-python-recorded_media_call_disconnected.json"),
        recorded("sdk-python-recorded_media_call_connected.json"),
        newer,
        participants,  # sequence 1 < 5: stale
        stopped,
        started,
    ]
    assert post(client, url, body).json() == {"applied": 6, "duplicates": 0}
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.ENDED
    assert managed_call.media_state == StreamState.STOPPED
    assert managed_call.participants_sequence == 5
    in_call = Participant.objects.filter(call=managed_call, in_call=True)
    assert in_call.count() == 1
    assert in_call.get().is_muted is True


def test_a_disconnect_delivered_before_its_connect_keeps_the_calls_length(
    client: Client, managed_call: Call
) -> None:
    """CallDisconnected first, then the earlier CallConnected: the call starts at the
    connect, not at the end (a zero-length call)."""
    connected = recorded("sdk-python-recorded_media_call_connected.json")
    disconnected = recorded("sdk-python-recorded_media_call_disconnected.json")
    connected["time"] = "2025-05-06T16:30:00+00:00"
    disconnected["time"] = "2025-05-06T16:34:30+00:00"
    assert post(client, callback_url(managed_call), [disconnected, connected]).status_code == 200
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.ENDED
    assert managed_call.ended_at is not None
    assert managed_call.started_at is not None
    assert (managed_call.ended_at - managed_call.started_at).total_seconds() == 270


def test_failures_are_stored_with_result_information(client: Client, managed_call: Call) -> None:
    """MediaStreamingFailed keeps its resultInformation and shows up among the call's problems."""
    from streaming.selectors import call_get

    failed = recorded("sdk-python-recorded_media_streaming_started.json")
    failed["id"] = "failed-1"
    failed["type"] = "Microsoft.Communication.MediaStreamingFailed"
    failed["data"]["mediaStreamingUpdate"]["mediaStreamingStatus"] = "mediaStreamingFailed"
    failed["data"]["resultInformation"] = {
        "code": 400,
        "subCode": 8581,
        "message": "Action failed, Transport url is not valid or web socket server is not "
        "operational.",
    }
    assert post(client, callback_url(managed_call), [failed]).status_code == 200
    managed_call.refresh_from_db()
    assert managed_call.media_state == StreamState.FAILED
    problems = call_get(call_id=managed_call.pk)["problems"]  # type: ignore[index]
    assert problems == [
        {
            "type": "MediaStreamingFailed",
            "code": 400,
            "subcode": 8581,
            "message": failed["data"]["resultInformation"]["message"],
            "at": problems[0]["at"],
        }
    ]


def test_unknown_event_types_are_recorded(client: Client, managed_call: Call) -> None:
    """PlayCompleted and types Callsite has never heard of are stored and acknowledged."""
    events = [
        {"id": "p1", "type": "Microsoft.Communication.PlayCompleted", "data": {}},
        {"id": "u1", "type": "Microsoft.Communication.SomethingNew", "data": {"x": 1}},
    ]
    assert post(client, callback_url(managed_call), events).json()["applied"] == 2
    assert set(CallEvent.objects.values_list("type", flat=True)) == {
        "PlayCompleted",
        "SomethingNew",
    }
    managed_call.refresh_from_db()
    assert managed_call.state == CallState.RINGING


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([{"type": "Microsoft.Communication.CallConnected", "data": {}}], "event 0.id"),
        ([{"id": "a", "data": {}}], "event 0.type"),
        ([{"id": "a", "type": "Microsoft.Communication.CallConnected", "data": []}], "data"),
        ({"not": "an event"}, "event 0.data"),
    ],
)
def test_malformed_callbacks_are_rejected_whole(
    client: Client, managed_call: Call, body: Any, reason: str
) -> None:
    """A malformed event fails the delivery with 400 and a reason; nothing is applied."""
    response = post(client, callback_url(managed_call), body)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not CallEvent.objects.exists()


def test_unknown_callback_id_is_404(client: Client) -> None:
    """Callbacks for a call Callsite did not answer are refused."""
    response = post(client, f"/acs/callbacks/{uuid.uuid4()}/", [])
    assert response.status_code == 404


@pytest.mark.parametrize("query", ["", "?token=nope-nope-nope-nope"])
def test_callbacks_refuse_without_authentication(
    client: Client, managed_call: Call, query: str
) -> None:
    """No shared secret and no ACS token: 401, and the event is not applied."""
    event = recorded("sdk-python-recorded_media_call_connected.json")
    response = post(client, callback_url(managed_call), [event], query)
    assert response.status_code == 401
    assert not CallEvent.objects.exists()


def test_callbacks_only_accept_post(client: Client, managed_call: Call) -> None:
    """GET on a callback URL is 405."""
    assert client.get(f"{callback_url(managed_call)}{SECRET_QUERY}").status_code == 405
