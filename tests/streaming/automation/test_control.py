"""Supervisors acting on calls through the real Call Automation SDK and the stand-in.

Every action goes from the call page's endpoint through ``streaming.acs.control`` to the
stand-in (HMAC-signed HTTPS, recorded bodies); the callbacks the stand-in sends come back
through the real callback endpoint, and the call's state is read as the page gets it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from dashboard.models import SupervisorProfile, Team, TeamAddress
from streaming.models import (
    ActionStatus,
    Call,
    CallEndReason,
    CallEvent,
    CallState,
    ControlAction,
    Invitation,
    Participant,
    RecordingState,
)
from streaming.selectors import call_get
from tests.standins.call_automation import CallAutomationStandIn
from tests.streaming.automation.test_lifecycle import (
    CONNECTION_ID,
    PUBLIC,
    SECRET,
    deliver,
    incoming_call_event,
)

pytestmark = pytest.mark.django_db

CUSTOMER = "4:+15555550123"
AGENT = "8:acs:6d889502-3d7a-41a8-befa-d21fd80e8767_00000027-4651-bfa5-2c8a-084822002c21"
CALLER_ID = "+15550000000"
ALL_KINDS = ["control_call", "manage_participants", "control_recording", "place_calls"]


def flush(client: Client, standin: CallAutomationStandIn) -> list[Any]:
    """Deliver the stand-in's pending callbacks to the callback endpoint; their answers."""

    def post(url: str, events: list[Any]) -> Any:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC
        response = client.post(
            f"{parts.path}?{parts.query}", data=json.dumps(events), content_type="application/json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    return standin.book.deliver(post)


def granted(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def boss(supervisor: User) -> User:
    """A supervisor who may take every kind of action."""
    return granted(supervisor, *ALL_KINDS)


@pytest.fixture
def call(client: Client, acs: CallAutomationStandIn, settings: Any) -> Call:
    """A call Callsite answered, connected, with a customer and an agent in it."""
    settings.CALLSITE_ACS_CALLER_ID = CALLER_ID
    acs.book.first_participants = [CUSTOMER, AGENT]
    deliver(client, "/acs/events/", incoming_call_event())
    flush(client, acs)
    found = Call.objects.get()
    assert found.state == CallState.CONNECTED
    assert set(found.participants.values_list("raw_id", flat=True)) == {CUSTOMER, AGENT}
    return found


def act(client: Client, call: Call, action: str, **data: str) -> Any:
    return client.post(f"/calls/{call.pk}/actions/{action}/", data, HTTP_ACCEPT="application/json")


def sent(standin: CallAutomationStandIn, route: str) -> Any:
    (request,) = [r for r in standin.requests if r.route == route]
    assert request.signature_valid
    assert "api-version" in request.query
    return request


def only_action(call: Call) -> ControlAction:
    return ControlAction.objects.get(call=call)


# --- each action sends the request ACS documents -----------------------------------------------

# Identifiers built from raw ids (identifier_from_raw_id) say a phone number is not anonymous.
CUSTOMER_ID = {"rawId": CUSTOMER, "phoneNumber": {"value": "+15555550123", "isAnonymous": False}}
AGENT_ID = {"rawId": AGENT, "communicationUser": {"id": AGENT}}
NEWCOMER = {
    "rawId": "4:+15551230000",
    "phoneNumber": {"value": "+15551230000", "isAnonymous": False},
}

REQUESTS: list[tuple[str, dict[str, str], str, dict[str, Any]]] = [
    (
        "add-participant",
        {"address": "+1 555 123-0000"},
        "addParticipant",
        {"participantToAdd": NEWCOMER, "sourceCallerIdNumber": {"value": CALLER_ID}},
    ),
    (
        "remove",
        {"participant": AGENT, "confirm": "yes"},
        "removeParticipant",
        {"participantToRemove": AGENT_ID},
    ),
    ("mute", {"participant": AGENT}, "mute", {"targetParticipants": [AGENT_ID]}),
    ("hold", {"participant": CUSTOMER}, "hold", {"targetParticipant": CUSTOMER_ID}),
    ("unhold", {"participant": CUSTOMER}, "unhold", {"targetParticipant": CUSTOMER_ID}),
    (
        "transfer",
        {"participant": CUSTOMER, "address": "+15551230000", "confirm": "yes"},
        "transferToParticipant",
        {"targetParticipant": NEWCOMER, "transferee": CUSTOMER_ID},
    ),
    (
        "send-dtmf",
        {"participant": CUSTOMER, "tones": "12*#"},
        "sendDtmfTones",
        {"tones": ["one", "two", "asterisk", "pound"], "targetParticipant": CUSTOMER_ID},
    ),
    (
        "play-prompt",
        {"participant": AGENT, "text": "Offer the discount."},
        "play",
        {
            "playSources": [
                {
                    "kind": "text",
                    "text": {"text": "Offer the discount.", "voiceName": "en-US-JennyNeural"},
                }
            ],
            "playTo": [AGENT_ID],
        },
    ),
    (
        "play-prompt",
        {"file_url": "https://media.example.com/notice.wav"},
        "play",
        {
            "playSources": [
                {"kind": "file", "file": {"uri": "https://media.example.com/notice.wav"}}
            ],
            "playTo": [],
        },
    ),
    (
        "start-recording",
        {"channel": "unmixed", "format": "wav"},
        "startRecording",
        {
            "callConnectionId": CONNECTION_ID,
            "recordingContentType": "audio",
            "recordingChannelType": "unmixed",
            "recordingFormatType": "wav",
        },
    ),
]


@pytest.mark.parametrize(
    ("action", "data", "route", "body"), REQUESTS, ids=[f"{r[0]}-{r[2]}" for r in REQUESTS]
)
def test_each_action_sends_the_documented_request(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    action: str,
    data: dict[str, str],
    route: str,
    body: dict[str, Any],
) -> None:
    """The body ACS receives names the targets, tones, play sources and recording options,
    and carries the action's operation context (recordings: the call's callback URL)."""
    client.force_login(boss)
    response = act(client, call, action, **data)
    assert response.status_code == 200, response.content
    request = sent(acs, route)
    for key, value in body.items():
        assert request.body[key] == value, key
    stored = only_action(call)
    assert stored.username == boss.username
    assert stored.action == action
    if route == "startRecording":
        callback = f"{PUBLIC}/acs/callbacks/{call.callback_id}/?token={SECRET}"
        assert request.body["recordingStateCallbackUri"] == callback
        assert "externalStorage" not in request.body
    else:
        assert request.body["operationContext"] == stored.operation_context
    assert request.call_connection_id in (CONNECTION_ID, None)


def test_recording_goes_to_the_operators_blob_container(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    settings: Any,
) -> None:
    settings.CALLSITE_RECORDING_CONTAINER_URL = "https://store.blob.core.windows.net/calls"
    client.force_login(boss)
    assert act(client, call, "start-recording", channel="mixed", format="mp3").status_code == 200
    body = sent(acs, "startRecording").body
    assert body["recordingChannelType"] == "mixed"
    assert body["recordingFormatType"] == "mp3"
    assert body["externalStorage"] == {
        "recordingStorageKind": "azureBlobStorage",
        "recordingDestinationContainerUrl": "https://store.blob.core.windows.net/calls",
    }


# --- outcomes ----------------------------------------------------------------------------------


def test_an_added_participant_appears_as_they_join(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    """Invited at once (shown as such), joined on AddParticipantSucceeded and the
    ParticipantsUpdated that follows; the action succeeds."""
    client.force_login(boss)
    act(client, call, "add-participant", address="+15551230000")
    invited = Participant.objects.get(call=call, raw_id="4:+15551230000")
    assert (invited.invitation, invited.in_call) == (Invitation.INVITED, False)
    assert invited.invitation_id
    assert only_action(call).status == ActionStatus.ACCEPTED
    answers = flush(client, acs)
    assert answers == [{"applied": 2, "duplicates": 0}]
    invited.refresh_from_db()
    assert (invited.invitation, invited.in_call) == (Invitation.JOINED, True)
    assert only_action(call).status == ActionStatus.SUCCEEDED
    payload = call_get(call_id=call.pk)
    assert payload is not None
    shown = {p["raw_id"]: p for p in payload["participants"]}
    assert shown["4:+15551230000"]["invitation"] == "joined"


def test_a_failed_add_is_shown_and_the_invitation_fails(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    acs.book.fail_outcome("addParticipant", code=408, subcode=8525, message="No answer.")
    act(client, call, "add-participant", address="+15551230000")
    flush(client, acs)
    action = only_action(call)
    assert action.status == ActionStatus.FAILED
    assert action.outcome == "AddParticipantFailed 408/8525: No answer."
    invited = Participant.objects.get(call=call, raw_id="4:+15551230000")
    assert invited.invitation == Invitation.FAILED
    problem = CallEvent.objects.get(call=call, type="AddParticipantFailed")
    assert problem.is_failure


def test_a_pending_invitation_can_be_cancelled(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    act(client, call, "add-participant", address="8:acs:newcomer_1")
    invitation_id = Participant.objects.get(call=call, raw_id="8:acs:newcomer_1").invitation_id
    acs.book.pending.clear()  # the invitee has not answered yet
    assert act(client, call, "cancel-add", participant="8:acs:newcomer_1").status_code == 200
    assert sent(acs, "cancelAddParticipant").body["invitationId"] == invitation_id
    flush(client, acs)
    invited = Participant.objects.get(call=call, raw_id="8:acs:newcomer_1")
    assert invited.invitation == Invitation.CANCELLED
    cancel = ControlAction.objects.get(call=call, action="cancel-add")
    assert cancel.status == ActionStatus.SUCCEEDED


def test_hold_and_unhold_move_the_participant_and_settle(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    """Hold has no success callback: the ParticipantsUpdated that shows it settles it."""
    client.force_login(boss)
    act(client, call, "hold", participant=CUSTOMER)
    assert only_action(call).status == ActionStatus.ACCEPTED
    flush(client, acs)
    customer = Participant.objects.get(call=call, raw_id=CUSTOMER)
    assert customer.is_on_hold
    assert only_action(call).status == ActionStatus.SUCCEEDED
    act(client, call, "unhold", participant=CUSTOMER)
    flush(client, acs)
    customer.refresh_from_db()
    assert not customer.is_on_hold
    unhold = ControlAction.objects.get(call=call, action="unhold")
    assert unhold.status == ActionStatus.SUCCEEDED


def test_hold_failed_fails_the_action(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    acs.book.fail_outcome("hold", code=400, subcode=8579, message="Hold failed.")
    act(client, call, "hold", participant=CUSTOMER)
    flush(client, acs)
    assert only_action(call).status == ActionStatus.FAILED
    assert not Participant.objects.get(call=call, raw_id=CUSTOMER).is_on_hold


@pytest.mark.parametrize(
    ("action", "data", "route", "success", "failure"),
    [
        (
            "remove",
            {"participant": AGENT, "confirm": "yes"},
            "removeParticipant",
            "RemoveParticipantSucceeded",
            "RemoveParticipantFailed",
        ),
        (
            "transfer",
            {"participant": CUSTOMER, "address": "+15551230000", "confirm": "yes"},
            "transferToParticipant",
            "CallTransferAccepted",
            "CallTransferFailed",
        ),
        (
            "send-dtmf",
            {"participant": CUSTOMER, "tones": "1"},
            "sendDtmfTones",
            "SendDtmfTonesCompleted",
            "SendDtmfTonesFailed",
        ),
        ("play-prompt", {"text": "Hello"}, "play", "PlayCompleted", "PlayFailed"),
    ],
)
@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_outcome_callbacks_settle_the_action(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    action: str,
    data: dict[str, str],
    route: str,
    success: str,
    failure: str,
    fails: bool,
) -> None:
    client.force_login(boss)
    if fails:
        acs.book.fail_outcome(route)
    assert act(client, call, action, **data).status_code == 200
    assert only_action(call).status == ActionStatus.ACCEPTED
    flush(client, acs)
    types = [t for c in acs.book.sent for t in c.types]
    assert (failure if fails else success) in types
    stored = only_action(call)
    assert stored.status == (ActionStatus.FAILED if fails else ActionStatus.SUCCEEDED)
    assert stored.settled_at is not None
    if action == "remove" and not fails:
        assert not Participant.objects.get(call=call, raw_id=AGENT).in_call


def test_a_redelivered_outcome_is_applied_once_and_never_moves_back(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    act(client, call, "send-dtmf", participant=CUSTOMER, tones="5")
    flush(client, acs)
    (callback,) = [c for c in acs.book.sent if "SendDtmfTonesCompleted" in c.types]
    again = deliver(client, urlsplit(callback.url).path, callback.events)
    assert again.json() == {"applied": 0, "duplicates": 1}
    late_failure = json.loads(json.dumps(callback.events))
    late_failure[0]["id"] = "late-failure"
    late_failure[0]["type"] = "Microsoft.Communication.SendDtmfTonesFailed"
    deliver(client, urlsplit(callback.url).path, late_failure)
    assert only_action(call).status == ActionStatus.SUCCEEDED


def test_recording_state_follows_the_callbacks_and_stop_is_final(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    act(client, call, "start-recording")
    call.refresh_from_db()
    recording_id = call.recording_id
    assert recording_id.startswith("recording-")
    flush(client, acs)
    call.refresh_from_db()
    assert call.recording_state == RecordingState.ACTIVE
    act(client, call, "pause-recording")
    assert sent(acs, "pauseRecording").recording_id == recording_id
    flush(client, acs)
    call.refresh_from_db()
    assert call.recording_state == RecordingState.PAUSED
    act(client, call, "resume-recording")
    flush(client, acs)
    call.refresh_from_db()
    assert call.recording_state == RecordingState.ACTIVE
    assert act(client, call, "stop-recording", confirm="yes").status_code == 200
    assert sent(acs, "stopRecording").method == "DELETE"
    call.refresh_from_db()
    assert call.recording_state == RecordingState.STOPPED
    flush(client, acs)
    (resumed,) = [c for c in acs.book.sent if c.events[0]["data"].get("state") == "active"][-1:]
    late = json.loads(json.dumps(resumed.events))
    late[0]["id"] = "late-active"
    deliver(client, urlsplit(resumed.url).path, late)
    call.refresh_from_db()
    assert call.recording_state == RecordingState.STOPPED
    statuses = ControlAction.objects.filter(call=call).values_list("action", "status")
    assert set(statuses) == {
        ("start-recording", "succeeded"),
        ("pause-recording", "succeeded"),
        ("resume-recording", "succeeded"),
        ("stop-recording", "succeeded"),
    }


def test_acs_refusing_an_action_is_stored_and_shown(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    acs.fail_next(status=400, code="8523", message="Participant not found.")
    response = act(client, call, "mute", participant=AGENT)
    assert response.status_code == 502
    assert "Participant not found." in response.json()["error"]
    action = only_action(call)
    assert (action.status, action.result_code) == (ActionStatus.REFUSED, 400)
    problem = CallEvent.objects.get(call=call, is_failure=True)
    assert problem.type == "Mute failed"
    page = client.get(f"/calls/{call.pk}/", follow=True)
    assert page.status_code == 200


def test_join_this_call_adds_the_supervisors_own_identity(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
) -> None:
    client.force_login(boss)
    refused = act(client, call, "join-call")
    assert refused.status_code == 400
    assert "profile" in refused.json()["error"]
    SupervisorProfile.objects.create(user=boss, phone_number="+15550001111", acs_id="8:acs:boss_1")
    assert b"Adds 8:acs:boss_1" in client.get(f"/calls/{call.pk}/").content
    assert act(client, call, "join-call").status_code == 200
    body = sent(acs, "addParticipant").body
    assert body["participantToAdd"] == {
        "rawId": "8:acs:boss_1",
        "communicationUser": {"id": "8:acs:boss_1"},
    }
    assert "sourceCallerIdNumber" not in body


@pytest.mark.parametrize(
    ("action", "data", "reason"),
    [
        ("send-dtmf", {"participant": CUSTOMER, "tones": "12x"}, "not DTMF keys"),
        ("hold", {"participant": "4:+19999999999"}, "not on this call"),
        ("play-prompt", {"text": "a", "file_url": "https://x/y.wav"}, "not both"),
        ("play-prompt", {"file_url": "http://x/y.wav"}, "https://"),
        ("add-participant", {"address": "bob"}, "neither a phone number"),
        ("start-recording", {"channel": "unmixed", "format": "mp3"}, "WAV only"),
        ("pause-recording", {}, "cannot do that now"),
        ("announce", {}, "bidirectional"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_sent(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    action: str,
    data: dict[str, str],
    reason: str,
) -> None:
    client.force_login(boss)
    before = len(acs.requests)
    response = act(client, call, action, **data)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert len(acs.requests) == before
    assert not ControlAction.objects.filter(call=call).exists()


def test_adding_a_phone_number_needs_an_acs_caller_id(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    settings: Any,
) -> None:
    settings.CALLSITE_ACS_CALLER_ID = ""
    client.force_login(boss)
    response = act(client, call, "add-participant", address="+15551230000")
    assert response.status_code == 502
    assert "CALLSITE_ACS_CALLER_ID" in response.json()["error"]
    assert not [r for r in acs.requests if r.route == "addParticipant"]


# --- rules: permissions, teams, CSRF, confirmation ---------------------------------------------

KINDS = {
    "start-transcription": "control_call",
    "stop-transcription": "control_call",
    "start-media": "control_call",
    "stop-media": "control_call",
    "hang-up": "control_call",
    "play-prompt": "control_call",
    "stop-prompts": "control_call",
    "send-dtmf": "control_call",
    "announce": "control_call",
    "stop-announcement": "control_call",
    "add-participant": "manage_participants",
    "join-call": "manage_participants",
    "cancel-add": "manage_participants",
    "remove": "manage_participants",
    "mute": "manage_participants",
    "hold": "manage_participants",
    "unhold": "manage_participants",
    "transfer": "manage_participants",
    "start-recording": "control_recording",
    "pause-recording": "control_recording",
    "resume-recording": "control_recording",
    "stop-recording": "control_recording",
}


def test_every_action_has_its_permission_listed_here() -> None:
    from streaming.automation.control import ACTIONS

    assert set(ACTIONS) == set(KINDS)


@pytest.mark.parametrize("action", sorted(KINDS))
def test_without_the_permission_every_action_is_403(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    supervisor: User,
    action: str,
) -> None:
    """Granted every other kind but this one's: 403, and nothing reaches ACS."""
    others = [kind for kind in ALL_KINDS if kind != KINDS[action]]
    client.force_login(granted(supervisor, *others))
    before = len(acs.requests)
    response = act(client, call, action, participant=CUSTOMER, confirm="yes")
    assert response.status_code == 403
    assert len(acs.requests) == before
    assert not ControlAction.objects.exists()


@pytest.mark.parametrize("action", sorted(KINDS))
def test_outside_the_calls_team_every_action_is_404(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    action: str,
) -> None:
    """A supervisor of another team, with every permission, cannot find the call."""
    from django.contrib.auth.models import Group

    from dashboard.permissions import SUPERVISORS_GROUP

    outsider = User.objects.create_user("outsider", password="outsider-password-123")
    outsider.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
    team = Team.objects.create(name="Elsewhere")
    team.members.add(outsider)
    TeamAddress.objects.create(team=team, address="+15559999999")
    client.force_login(granted(outsider, *ALL_KINDS))
    before = len(acs.requests)
    response = act(client, call, action, participant=CUSTOMER, confirm="yes")
    assert response.status_code == 404
    assert len(acs.requests) == before


def test_a_team_member_may_act_on_their_teams_call(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
) -> None:
    from django.contrib.auth.models import Group

    from dashboard.permissions import SUPERVISORS_GROUP

    member = User.objects.create_user("member", password="member-password-123")
    member.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
    team = Team.objects.create(name="Billing")
    team.members.add(member)
    TeamAddress.objects.create(team=team, address=CUSTOMER)
    client.force_login(granted(member, "manage_participants"))
    assert act(client, call, "mute", participant=AGENT).status_code == 200


def test_unknown_actions_are_404(client: Client, call: Call, boss: User) -> None:
    client.force_login(boss)
    assert act(client, call, "self-destruct").status_code == 404


@pytest.mark.parametrize("action", ["hang-up", "remove", "transfer", "stop-recording"])
def test_destructive_actions_need_a_confirmation(
    client: Client,
    acs: CallAutomationStandIn,
    call: Call,
    boss: User,
    action: str,
) -> None:
    client.force_login(boss)
    before = len(acs.requests)
    response = act(client, call, action, participant=CUSTOMER, address="+15551230000")
    assert response.status_code == 400
    assert "confirm" in response.json()["error"]
    assert len(acs.requests) == before
    page = client.get(f"/calls/{call.pk}/").content.decode()
    if action in ("hang-up", "stop-recording"):
        assert 'data-confirm="' in page.split(f"actions/{action}/")[1].split(">")[0]


def test_actions_need_the_csrf_token(call: Call, boss: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(boss)
    response = act(browser, call, "mute", participant=AGENT)
    assert response.status_code == 403
    page = browser.get(f"/calls/{call.pk}/")
    token = page.cookies["csrftoken"].value
    response = browser.post(
        f"/calls/{call.pk}/actions/mute/",
        {"participant": AGENT},
        HTTP_ACCEPT="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200


def test_the_page_shows_only_the_controls_the_user_may_use(
    client: Client, call: Call, supervisor: User
) -> None:
    client.force_login(granted(supervisor, "control_recording"))
    page = client.get(f"/calls/{call.pk}/").content.decode()
    assert 'data-kinds="recording"' in page
    assert 'id="recording-actions"' in page
    assert 'id="participant-actions"' not in page
    assert 'data-action="hang-up"' not in page


# --- room calls and placed calls ---------------------------------------------------------------


def test_connecting_to_a_room_asks_acs_with_the_room_and_streaming(
    client: Client,
    acs: CallAutomationStandIn,
    boss: User,
) -> None:
    acs.book.first_participants = [CUSTOMER, AGENT]
    client.force_login(boss)
    assert b'id="connect-room"' in client.get("/").content
    response = client.post("/calls/new/room/", {"room_id": "99466898241024408"})
    call = Call.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/calls/{call.pk}/"
    body = sent(acs, "connect").body
    assert body["callLocator"] == {"roomId": "99466898241024408", "kind": "roomCallLocator"}
    assert body["callbackUri"] == f"{PUBLIC}/acs/callbacks/{call.callback_id}/?token={SECRET}"
    assert body["mediaStreamingOptions"]["transportUrl"] == (
        f"wss://callsite.example.com/ws/acs/?token={SECRET}"
    )
    assert (call.origin, call.room_id, call.placed_by_id) == ("room", "99466898241024408", boss.pk)
    assert call.connection_id == CONNECTION_ID
    flush(client, acs)
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
    assert call.participants.count() == 2
    connect = only_action(call)
    assert (connect.action, connect.status) == ("connect-room", ActionStatus.SUCCEEDED)


def test_a_room_that_cannot_be_joined_ends_the_call(
    client: Client,
    acs: CallAutomationStandIn,
    boss: User,
) -> None:
    client.force_login(boss)
    acs.book.fail_outcome("connect", code=400, subcode=8508, message="Room not found.")
    client.post("/calls/new/room/", {"room_id": "no-such-room"})
    flush(client, acs)
    call = Call.objects.get()
    assert (call.state, call.end_reason) == (CallState.ENDED, CallEndReason.NOT_CONNECTED)
    assert only_action(call).status == ActionStatus.FAILED


def test_placing_a_call_uses_the_caller_id_and_streams_like_an_answered_call(
    client: Client,
    acs: CallAutomationStandIn,
    boss: User,
    settings: Any,
) -> None:
    settings.CALLSITE_ACS_CALLER_ID = CALLER_ID
    settings.CALLSITE_TRANSCRIPTION_LOCALE = "en-US"
    client.force_login(boss)
    response = client.post(
        "/calls/new/place/", {"address": "+1 555 555 0123"}, HTTP_ACCEPT="application/json"
    )
    call = Call.objects.get()
    assert response.json() == {"call_id": call.pk}
    body = sent(acs, "createCall").body
    assert body["targets"] == [CUSTOMER_ID]
    assert body["sourceCallerIdNumber"] == {"value": CALLER_ID}
    assert body["mediaStreamingOptions"]["audioChannelType"] == "unmixed"
    assert body["transcriptionOptions"]["locale"] == "en-US"
    assert (call.origin, call.callee, call.caller) == ("placed", "+15555550123", CALLER_ID)
    flush(client, acs)
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
    assert list(call.participants.values_list("raw_id", flat=True)) == [CUSTOMER]


def test_a_refused_placed_call_is_kept_ended_with_the_reason(
    client: Client,
    acs: CallAutomationStandIn,
    boss: User,
    settings: Any,
) -> None:
    settings.CALLSITE_ACS_CALLER_ID = CALLER_ID
    client.force_login(boss)
    acs.fail_next(status=403, code="Forbidden", message="Caller id not owned.")
    response = client.post("/calls/new/place/", {"address": "+15555550123"}, follow=True)
    assert b"Caller id not owned." in response.content
    call = Call.objects.get()
    assert (call.state, call.end_reason) == (CallState.ENDED, CallEndReason.NOT_CONNECTED)
    assert only_action(call).status == ActionStatus.REFUSED


def test_placing_calls_needs_its_permission(
    client: Client,
    acs: CallAutomationStandIn,
    supervisor: User,
) -> None:
    client.force_login(granted(supervisor, "control_call", "manage_participants"))
    assert b'id="place-call"' not in client.get("/").content
    for how, data in (("place", {"address": "+15555550123"}), ("room", {"room_id": "r1"})):
        assert client.post(f"/calls/new/{how}/", data).status_code == 403
    assert acs.requests == []
    assert client.post("/calls/new/teleport/", {}).status_code == 404


def test_a_team_supervisor_sees_the_call_they_placed(
    client: Client,
    acs: CallAutomationStandIn,
    settings: Any,
) -> None:
    from django.contrib.auth.models import Group

    from dashboard.permissions import SUPERVISORS_GROUP

    settings.CALLSITE_ACS_CALLER_ID = CALLER_ID
    member = User.objects.create_user("caller", password="caller-password-123")
    member.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
    client.force_login(granted(member, "place_calls"))
    client.post("/calls/new/place/", {"address": "+15555550123"})
    call = Call.objects.get()
    assert client.get(f"/calls/{call.pk}/").status_code == 200
