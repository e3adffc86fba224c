"""Answering calls and acting on them through the real Call Automation SDK.

The SDK talks HTTPS to a local stand-in of the Call Automation REST API that records what it
receives (``tests/standins/call_automation.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from streaming.models import Call, CallEvent, CallState, Participant, StreamState
from tests.standins.call_automation import CallAutomationStandIn
from tests.standins.jwks import AUDIENCE, JwksServer, SigningKey

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
SECRET = "tests-only-acs-secret-0123456789"
CONNECTION_ID = "06004980-19f4-465a-b630-76c371713dff"
PUBLIC = "https://callsite.example.com"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def incoming_call_event(event_id: str = "d5546be8-227a-4db8-b2c3-4f06fd675fd6") -> list[Any]:
    """The docs' Event Grid envelope around the IncomingCall data ACS recorded."""
    envelope = recorded("eventgrid_incoming_call_acs_user.json")[0]
    envelope["id"] = event_id
    envelope["data"] = recorded("sdk-python-recorded_media_incoming_call_data.json")
    return [envelope]


def deliver(client: Client, url: str, body: Any) -> Any:
    return client.post(
        f"{url}?token={SECRET}", data=json.dumps(body), content_type="application/json"
    )


def answers(standin: CallAutomationStandIn) -> list[Any]:
    return [r for r in standin.requests if r.path.endswith("callConnections:answer")]


def test_recorded_events_drive_a_call_from_ringing_to_ended(
    client: Client, acs: CallAutomationStandIn
) -> None:
    """IncomingCall is answered with unmixed 16 kHz media streaming to /ws/acs/, then the
    recorded callbacks take the call through connected to ended."""
    response = deliver(client, "/acs/events/", incoming_call_event())
    assert response.status_code == 200, response.content
    assert response.json() == {"outcomes": ["answered"]}

    call = Call.objects.get()
    assert call.managed
    assert call.state == CallState.RINGING
    assert call.connection_id == CONNECTION_ID
    assert call.caller.startswith("8:acs:")
    assert call.correlation_id == "b2cc74bf-be72-4a6f-88da-f2107fc6780f"

    (answer,) = answers(acs)
    body = answer.body
    assert body["incomingCallContext"] == "REDACTED"
    callback = f"{PUBLIC}/acs/callbacks/{call.callback_id}/?token={SECRET}"
    assert body["callbackUri"] == callback
    assert body["mediaStreamingOptions"] == {
        "transportUrl": f"wss://callsite.example.com/ws/acs/?token={SECRET}",
        "transportType": "websocket",
        "contentType": "audio",
        "audioChannelType": "unmixed",
        "startMediaStreaming": True,
        "audioFormat": "pcm16KMono",
        "enableDtmfTones": True,
    }
    assert "transcriptionOptions" not in body
    assert answer.headers["authorization"].startswith("HMAC-SHA256")

    url = f"/acs/callbacks/{call.callback_id}/"
    for name, state in [
        ("sdk-python-recorded_media_call_connected.json", CallState.CONNECTED),
        ("sdk-python-recorded_media_participants_updated.json", CallState.CONNECTED),
        ("sdk-python-recorded_media_streaming_started.json", CallState.CONNECTED),
        ("sdk-python-recorded_media_call_disconnected.json", CallState.ENDED),
    ]:
        assert deliver(client, url, [recorded(name)]).json() == {"applied": 1, "duplicates": 0}
        call.refresh_from_db()
        assert call.state == state, name
    assert call.media_state == StreamState.STARTED
    assert Participant.objects.filter(call=call).count() == 2
    assert call.ended_at is not None


def test_a_redelivered_incoming_call_is_answered_once(
    client: Client, acs: CallAutomationStandIn
) -> None:
    """Event Grid retries: the same IncomingCall event id answers one call, once."""
    deliver(client, "/acs/events/", incoming_call_event())
    again = deliver(client, "/acs/events/", incoming_call_event())
    assert again.json() == {"outcomes": ["duplicate"]}
    assert len(answers(acs)) == 1
    assert Call.objects.count() == 1


def test_transcription_options_when_a_locale_is_set(
    client: Client, acs: CallAutomationStandIn, settings: Any
) -> None:
    """With a locale, ACS transcription with intermediate results goes to the same socket."""
    settings.CALLSITE_TRANSCRIPTION_LOCALE = "en-US"
    settings.ACS_COGNITIVE_SERVICES_ENDPOINT = "https://speech.example.cognitiveservices.azure.com/"
    deliver(client, "/acs/events/", incoming_call_event())
    body = answers(acs)[0].body
    assert body["transcriptionOptions"] == {
        "transportUrl": f"wss://callsite.example.com/ws/acs/?token={SECRET}",
        "transportType": "websocket",
        "locale": "en-US",
        "startTranscription": True,
        "enableIntermediateResults": True,
    }
    assert body["callIntelligenceOptions"] == {
        "cognitiveServicesEndpoint": "https://speech.example.cognitiveservices.azure.com/"
    }


def test_transcription_settings_ask_for_what_the_sdk_cannot_yet(
    client: Client, acs: CallAutomationStandIn, settings: Any
) -> None:
    """CALLSITE_TRANSCRIPTION_* add sentiment, PII redaction, an end-of-call summary and the
    locales to identify to the transcription options, in the signed body the stand-in took."""
    settings.CALLSITE_TRANSCRIPTION_LOCALE = "en-US"
    settings.CALLSITE_TRANSCRIPTION_SENTIMENT = True
    settings.CALLSITE_TRANSCRIPTION_PII_REDACTION = "maskWithCharacter"
    settings.CALLSITE_TRANSCRIPTION_SUMMARIZATION = True
    settings.CALLSITE_TRANSCRIPTION_LOCALES = ["en-US", "es-ES"]
    deliver(client, "/acs/events/", incoming_call_event())
    (answer,) = answers(acs)
    assert answer.signature_valid
    assert answer.body["transcriptionOptions"] == {
        "transportUrl": f"wss://callsite.example.com/ws/acs/?token={SECRET}",
        "transportType": "websocket",
        "locale": "en-US",
        "startTranscription": True,
        "enableIntermediateResults": True,
        "enableSentimentAnalysis": True,
        "piiRedactionOptions": {"enable": True, "redactionType": "maskWithCharacter"},
        "summarizationOptions": {"enableEndCallSummary": True, "locale": "en-US"},
        "locales": ["en-US", "es-ES"],
    }
    assert answer.body["mediaStreamingOptions"]["enableDtmfTones"] is True


@pytest.mark.parametrize(
    ("rules", "outcome"),
    [
        (["none"], "ignored"),
        (["+15550000000"], "ignored"),
        (
            ["8:acs:6d889502-3d7a-41a8-befa-d21fd80e8767_00000027-4651-bfa5-2c8a-084822002c21"],
            "answered",
        ),
    ],
)
def test_answer_rules(
    client: Client, acs: CallAutomationStandIn, settings: Any, rules: list[str], outcome: str
) -> None:
    """CALLSITE_ANSWER_CALLS picks which calls are answered: none, or the listed callees."""
    settings.CALLSITE_ANSWER_CALLS = rules
    assert deliver(client, "/acs/events/", incoming_call_event()).json() == {"outcomes": [outcome]}
    assert len(answers(acs)) == (1 if outcome == "answered" else 0)


def test_a_failed_answer_is_stored_and_ends_the_call(
    client: Client, acs: CallAutomationStandIn
) -> None:
    """ACS refusing the answer leaves an ended call whose problem says why."""
    acs.fail_next(status=400, code="BadRequest", message="Invalid incoming call context.")
    response = deliver(client, "/acs/events/", incoming_call_event())
    assert response.json() == {"outcomes": ["failed"]}
    call = Call.objects.get()
    assert call.state == CallState.ENDED
    problem = CallEvent.objects.get(call=call, is_failure=True)
    assert problem.type == "AnswerFailed"
    assert problem.result_code == 400
    assert "Invalid incoming call context" in problem.result_message


def test_callbacks_with_an_acs_token(
    client: Client, acs: CallAutomationStandIn, settings: Any
) -> None:
    """With the resource id set, a callback carrying a valid ACS JWT is applied without the
    secret, and one with a token for another resource is refused."""
    from streaming.acs import tokens

    key = SigningKey()
    server = JwksServer()
    server.publish(key)
    try:
        settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE
        settings.CALLSITE_ACS_JWKS_URL = server.url
        tokens._verifier_for.cache_clear()
        deliver(client, "/acs/events/", incoming_call_event())
        call = Call.objects.get()
        # With tokens verified, the URLs given to ACS carry no secret.
        assert answers(acs)[0].body["callbackUri"] == f"{PUBLIC}/acs/callbacks/{call.callback_id}/"
        url = f"/acs/callbacks/{call.callback_id}/"
        event = json.dumps([recorded("sdk-python-recorded_media_call_connected.json")])
        wrong = client.post(
            url,
            data=event,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key.sign({'aud': 'another-resource'})}",
        )
        assert wrong.status_code == 401
        right = client.post(
            url,
            data=event,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key.sign()}",
        )
        assert right.status_code == 200
        call.refresh_from_db()
        assert call.state == CallState.CONNECTED
    finally:
        server.stop()
        tokens._verifier_for.cache_clear()


@pytest.fixture
def controller(supervisor: User) -> User:
    supervisor.user_permissions.add(Permission.objects.get(codename="control_call"))
    return User.objects.get(pk=supervisor.pk)


@pytest.fixture
def live_call(client: Client, acs: CallAutomationStandIn) -> Call:
    deliver(client, "/acs/events/", incoming_call_event())
    call = Call.objects.get()
    deliver(
        client,
        f"/acs/callbacks/{call.callback_id}/",
        [recorded("sdk-python-recorded_media_call_connected.json")],
    )
    call.refresh_from_db()
    return call


@pytest.mark.parametrize(
    ("action", "route"),
    [
        ("start-transcription", "startTranscription"),
        ("stop-transcription", "stopTranscription"),
        ("start-media", "startMediaStreaming"),
        ("stop-media", "stopMediaStreaming"),
        ("hang-up", "terminate"),
    ],
)
def test_supervisor_actions_reach_call_automation(
    client: Client,
    acs: CallAutomationStandIn,
    live_call: Call,
    controller: User,
    action: str,
    route: str,
    settings: Any,
) -> None:
    """Each button on the call page sends the matching request for this call connection."""
    settings.CALLSITE_TRANSCRIPTION_LOCALE = "en-US"
    client.force_login(controller)
    page = client.get(f"/calls/{live_call.pk}/")
    assert f'data-action="{action}"'.encode() in page.content
    data = {"confirm": "yes"} if action == "hang-up" else {}
    response = client.post(f"/calls/{live_call.pk}/actions/{action}/", data, follow=True)
    assert response.status_code == 200
    assert b"requested" in response.content
    sent = [r for r in acs.requests if r.path.endswith(f":{route}")]
    assert len(sent) == 1
    assert sent[0].path == f"/calling/callConnections/{CONNECTION_ID}:{route}"


def test_failed_actions_are_shown_and_stored(
    client: Client, acs: CallAutomationStandIn, live_call: Call, controller: User
) -> None:
    """ACS refusing an action is reported on the page and kept among the call's problems."""
    client.force_login(controller)
    acs.fail_next(status=400, code="BadRequest", message="Call is not established.")
    response = client.post(f"/calls/{live_call.pk}/actions/stop-media/", follow=True)
    assert b"Call is not established." in response.content
    problem = CallEvent.objects.get(call=live_call, is_failure=True)
    assert problem.type == "Stop media streaming failed"
    assert problem.result_code == 400


def test_actions_need_the_control_permission(
    client: Client, acs: CallAutomationStandIn, live_call: Call, supervisor: User
) -> None:
    """A supervisor who may only watch sees no buttons and gets 403 on a forged POST."""
    client.force_login(supervisor)
    assert b"data-action=" not in client.get(f"/calls/{live_call.pk}/").content
    assert client.post(f"/calls/{live_call.pk}/actions/hang-up/").status_code == 403
    assert not [r for r in acs.requests if r.path.endswith(":terminate")]


def test_actions_refuse_calls_callsite_does_not_control(
    client: Client, acs: CallAutomationStandIn, controller: User
) -> None:
    """A call that only streamed to Callsite (never answered by it) cannot be acted on."""
    call = Call.objects.create(connection_id="streamed-only", state=CallState.CONNECTED)
    client.force_login(controller)
    response = client.post(f"/calls/{call.pk}/actions/hang-up/", {"confirm": "yes"}, follow=True)
    assert b"not answered through Call Automation" in response.content
    assert acs.requests == []


def test_a_stream_that_beats_the_answer_response_is_folded_in(
    client: Client, acs: CallAutomationStandIn
) -> None:
    """If ACS opens the media socket before the answer returns, the socket's call and the
    ringing call become one managed call with everything each had."""
    from streaming import services
    from streaming.acs.packets import Word

    early = services.call_stream_opened(connection_id=CONNECTION_ID)
    services.utterance_record(
        call_id=early["id"],
        participant_raw_id="4:+15555550123",
        text="Hello?",
        confidence=0.9,
        offset_ticks=1,
        duration_ticks=2,
        words=[Word("hello", 1, 2)],
        source="acs",
    )
    assert deliver(client, "/acs/events/", incoming_call_event()).json() == {
        "outcomes": ["answered"]
    }
    call = Call.objects.get()
    assert call.pk == early["id"]
    assert call.managed
    assert call.callback_id is not None
    assert call.caller.startswith("8:acs:")
    assert list(call.utterances.values_list("text", flat=True)) == ["Hello?"]
    assert list(call.events.values_list("type", flat=True)) == ["IncomingCall"]


def test_a_managed_call_outlives_its_stream(client: Client, acs: CallAutomationStandIn) -> None:
    """Closing the media socket does not end a call Call Automation owns; CallDisconnected does."""
    from streaming import services

    deliver(client, "/acs/events/", incoming_call_event())
    call = Call.objects.get()
    services.call_stream_opened(connection_id=CONNECTION_ID)
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
    services.call_stream_closed(call_id=call.pk)
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
    assert call.ended_at is None
