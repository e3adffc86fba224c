"""Call Automation requests a supervisor makes: joining calls, participants, media, recording.

The companion of :mod:`streaming.acs.client` (which answers calls and holds the SDK client):
each function makes one REST call through ``azure-communication-callautomation`` and reports
any failure as :class:`~streaming.acs.client.CallAutomationError`. Participants are named by
their ACS raw id (``4:+15551230000``, ``8:acs:...``), the form every event carries.

Most of these are accepted at once and settled later by a callback carrying the
``operation_context`` given here (``AddParticipantSucceeded``, ``PlayCompleted``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from azure.communication.callautomation import (
    AzureBlobContainerRecordingStorage,
    CallAutomationClient,
    CallConnectionClient,
    CommunicationIdentifier,
    FileSource,
    PhoneNumberIdentifier,
    RecordingChannel,
    RecordingContent,
    RecordingFormat,
    TextSource,
)
from azure.communication.callautomation._shared.models import identifier_from_raw_id

from streaming.acs.client import (
    AnswerResult,
    CallAutomationError,
    CallAutomationNotConfigured,
    connection_result,
    on_call,
    on_client,
    streaming_options,
)

__all__ = [
    "DTMF_TONES",
    "RecordingStarted",
    "StreamingRequest",
    "call_create",
    "call_transfer",
    "dtmf_send",
    "identifier",
    "media_cancel",
    "participant_add",
    "participant_add_cancel",
    "participant_hold",
    "participant_mute",
    "participant_remove",
    "participant_unhold",
    "prompt_play",
    "recording_pause",
    "recording_resume",
    "recording_start",
    "recording_stop",
    "room_connect",
]

# The keys a supervisor types, and the tone names ACS takes (DtmfTone).
DTMF_TONES = {
    **{
        str(digit): name
        for digit, name in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        )
    },
    "*": "asterisk",
    "#": "pound",
    "A": "a",
    "B": "b",
    "C": "c",
    "D": "d",
}
MAX_DTMF_TONES = 18  # ACS's limit per request


def identifier(raw_id: str) -> CommunicationIdentifier:
    """The SDK identifier for an ACS raw id (phone ``4:+...``, ACS user ``8:acs:...``...)."""
    return identifier_from_raw_id(raw_id)


def _caller_id(caller_id: str | None, target: str) -> PhoneNumberIdentifier | None:
    """ACS requires a caller id (an ACS number) to reach the phone network."""
    if not target.startswith("4:"):
        return None
    if not caller_id:
        raise CallAutomationNotConfigured(
            "calling a phone number needs CALLSITE_ACS_CALLER_ID, an ACS phone number"
        )
    return PhoneNumberIdentifier(caller_id)


@dataclass(frozen=True)
class StreamingRequest:
    """Where ACS calls back and streams to, for a call Callsite joins or places."""

    callback_url: str
    media_url: str | None
    transcription_url: str | None
    locale: str | None
    cognitive_services_endpoint: str | None
    bidirectional: bool = False


def room_connect(
    *, room_id: str, streaming: StreamingRequest, operation_context: str
) -> AnswerResult:
    """Join an ACS room call by its room id (``POST /calling/callConnections:connect``).

    ACS then reports ``CallConnected`` (or ``ConnectFailed``) to the callback URL.
    """
    media, transcription = streaming_options(
        media_url=streaming.media_url,
        transcription_url=streaming.transcription_url,
        locale=streaming.locale,
        bidirectional=streaming.bidirectional,
    )
    properties = on_client(
        "connecting to the room",
        lambda client: client.connect_call(
            streaming.callback_url,
            room_id=room_id,
            operation_context=operation_context,
            cognitive_services_endpoint=streaming.cognitive_services_endpoint or None,
            media_streaming=media,
            transcription=transcription,
        ),
    )
    return connection_result(properties, "connecting to the room")


def call_create(
    *,
    target: str,
    caller_id: str | None,
    streaming: StreamingRequest,
    operation_context: str,
) -> AnswerResult:
    """Place a call to ``target`` (``POST /calling/callConnections``).

    ACS reports ``CallConnected`` once it is answered, or ``CreateCallFailed``.
    """
    media, transcription = streaming_options(
        media_url=streaming.media_url,
        transcription_url=streaming.transcription_url,
        locale=streaming.locale,
        bidirectional=streaming.bidirectional,
    )
    source = _caller_id(caller_id, target)

    def create(client: CallAutomationClient) -> AnswerResult:
        properties = client.create_call(
            identifier(target),
            streaming.callback_url,
            source_caller_id_number=source,
            operation_context=operation_context,
            cognitive_services_endpoint=streaming.cognitive_services_endpoint or None,
            media_streaming=media,
            transcription=transcription,
        )
        return connection_result(properties, "placing the call")

    return on_client("placing the call", create)


def participant_add(
    call_connection_id: str,
    *,
    target: str,
    caller_id: str | None,
    operation_context: str,
    invitation_timeout: int = 60,
) -> str:
    """Invite ``target`` into the call; returns the invitation id (to cancel it with)."""
    source = _caller_id(caller_id, target)

    def add(call: CallConnectionClient) -> str:
        result = call.add_participant(
            identifier(target),
            source_caller_id_number=source,
            invitation_timeout=invitation_timeout,
            operation_context=operation_context,
        )
        return str(result.invitation_id or "")

    return on_call("adding the participant", call_connection_id, add)


def participant_add_cancel(
    call_connection_id: str, *, invitation_id: str, operation_context: str
) -> None:
    """Withdraw a pending invitation (``CancelAddParticipantSucceeded`` / ``...Failed``)."""
    on_call(
        "cancelling the invitation",
        call_connection_id,
        lambda call: call.cancel_add_participant_operation(
            invitation_id, operation_context=operation_context
        ),
    )


def participant_remove(call_connection_id: str, *, target: str, operation_context: str) -> None:
    """Remove a participant (``RemoveParticipantSucceeded`` / ``...Failed``)."""
    on_call(
        "removing the participant",
        call_connection_id,
        lambda call: call.remove_participant(
            identifier(target), operation_context=operation_context
        ),
    )


def participant_mute(call_connection_id: str, *, target: str, operation_context: str) -> None:
    """Mute a participant (ACS mutes ACS users only; ``ParticipantsUpdated`` shows it)."""
    on_call(
        "muting the participant",
        call_connection_id,
        lambda call: call.mute_participant(identifier(target), operation_context=operation_context),
    )


def participant_hold(
    call_connection_id: str, *, target: str, music_url: str | None, operation_context: str
) -> None:
    """Put a participant on hold, with music from ``music_url`` if given (``HoldFailed``)."""
    on_call(
        "putting the participant on hold",
        call_connection_id,
        lambda call: call.hold(
            identifier(target),
            play_source=FileSource(music_url) if music_url else None,
            operation_context=operation_context,
        ),
    )


def participant_unhold(call_connection_id: str, *, target: str, operation_context: str) -> None:
    """Take a participant off hold."""
    on_call(
        "taking the participant off hold",
        call_connection_id,
        lambda call: call.unhold(identifier(target), operation_context=operation_context),
    )


def call_transfer(
    call_connection_id: str,
    *,
    target: str,
    transferee: str | None,
    caller_id: str | None,
    operation_context: str,
) -> None:
    """Transfer ``transferee`` (the other party of a 1:1 call when None) to ``target``
    (``CallTransferAccepted`` / ``CallTransferFailed``)."""
    source = _caller_id(caller_id, target)
    on_call(
        "transferring the call",
        call_connection_id,
        lambda call: call.transfer_call_to_participant(
            identifier(target),
            transferee=identifier(transferee) if transferee else None,
            source_caller_id_number=source,
            operation_context=operation_context,
        ),
    )


def dtmf_tones(keys: str) -> list[str]:
    """ACS tone names for the keys typed (``12#`` → one, two, pound); ValueError if not keys."""
    text = keys.replace(" ", "").upper()
    if not text or len(text) > MAX_DTMF_TONES:
        raise ValueError(f"give 1 to {MAX_DTMF_TONES} keys (0-9, *, #, A-D)")
    unknown = sorted({key for key in text if key not in DTMF_TONES})
    if unknown:
        raise ValueError(f"not DTMF keys: {' '.join(unknown)}")
    return [DTMF_TONES[key] for key in text]


def dtmf_send(
    call_connection_id: str, *, tones: Sequence[str], target: str, operation_context: str
) -> None:
    """Send DTMF tones to a participant (``SendDtmfTonesCompleted`` / ``...Failed``)."""
    on_call(
        "sending DTMF tones",
        call_connection_id,
        lambda call: call.send_dtmf_tones(
            list(tones), identifier(target), operation_context=operation_context
        ),
    )


def prompt_play(
    call_connection_id: str,
    *,
    text: str | None,
    file_url: str | None,
    voice: str | None,
    play_to: Sequence[str],
    operation_context: str,
) -> None:
    """Play a text-to-speech prompt or an audio file to ``play_to`` (everyone when empty).

    ``PlayCompleted`` / ``PlayFailed`` / ``PlayCanceled`` follow. A prompt to one participant
    is heard by them alone: a coaching prompt the customer does not hear.
    """
    if bool(text) == bool(file_url):
        raise ValueError("a prompt is either a text or a file URL")
    source = TextSource(text=text, voice_name=voice or None) if text else FileSource(str(file_url))
    on_call(
        "playing the prompt",
        call_connection_id,
        lambda call: call.play_media(
            source,
            play_to=[identifier(raw_id) for raw_id in play_to] if play_to else "all",
            operation_context=operation_context,
        ),
    )


def media_cancel(call_connection_id: str) -> None:
    """Stop every prompt playing or queued (each reports ``PlayCanceled``)."""
    on_call(
        "stopping the prompts",
        call_connection_id,
        lambda call: call.cancel_all_media_operations(),
    )


@dataclass(frozen=True)
class RecordingStarted:
    recording_id: str
    state: str  # "active" or "inactive", as ACS says


RECORDING_CHANNELS = {"mixed": RecordingChannel.MIXED, "unmixed": RecordingChannel.UNMIXED}
RECORDING_FORMATS = {"wav": RecordingFormat.WAV, "mp3": RecordingFormat.MP3}


def recording_start(
    *,
    call_connection_id: str,
    callback_url: str,
    channel: str,
    file_format: str,
    container_url: str | None,
) -> RecordingStarted:
    """Start recording the call's audio (``POST /calling/recordings``).

    ``channel`` is ``mixed`` or ``unmixed`` (one channel per participant, WAV only);
    ``container_url`` an Azure Blob container ACS writes to, or None for ACS's own storage.
    ``RecordingStateChanged`` events go to ``callback_url``.
    """
    if channel not in RECORDING_CHANNELS or file_format not in RECORDING_FORMATS:
        raise ValueError("recording channel must be mixed or unmixed, format wav or mp3")
    if channel == "unmixed" and file_format != "wav":
        raise ValueError("unmixed recordings are WAV only")

    def start(client: CallAutomationClient) -> RecordingStarted:
        properties = client.start_recording(
            call_connection_id=call_connection_id,
            recording_state_callback_url=callback_url,
            recording_content_type=RecordingContent.AUDIO,
            recording_channel_type=RECORDING_CHANNELS[channel],
            recording_format_type=RECORDING_FORMATS[file_format],
            recording_storage=(
                AzureBlobContainerRecordingStorage(container_url) if container_url else None
            ),
        )
        if not properties.recording_id:
            raise CallAutomationError(
                "starting the recording failed: ACS returned no recording id", status=200
            )
        return RecordingStarted(str(properties.recording_id), str(properties.recording_state))

    return on_client("starting the recording", start)


def recording_pause(recording_id: str) -> None:
    on_client("pausing the recording", lambda client: client.pause_recording(recording_id))


def recording_resume(recording_id: str) -> None:
    on_client("resuming the recording", lambda client: client.resume_recording(recording_id))


def recording_stop(recording_id: str) -> None:
    on_client("stopping the recording", lambda client: client.stop_recording(recording_id))
