"""What the Call Automation stand-in remembers of its calls, and the callbacks it sends.

ACS answers most mid-call requests at once (202) and reports their outcome later, as
CloudEvents POSTed to the call's callback URL (or the request's ``operationCallbackUri``).
:class:`CallBook` plays that part for ``tests/standins/call_automation.py``: it keeps each
call connection's callback URL, participants (muted, on hold) and recordings, and turns each
request into the events ACS documents for it, in the shape of the recorded fixtures
(``resultInformation``, ``operationContext``, ``ParticipantsUpdated`` with a sequence number).

Events wait in :attr:`CallBook.pending` until a test delivers them (``deliver``), or are
POSTed at once by a thread when ``auto_deliver`` is on (for a live server).
"""

from __future__ import annotations

import datetime
import json
import queue
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2026-03-12"
OK = (200, 0, "Action completed successfully.")


@dataclass(frozen=True)
class Callback:
    """One callback delivery: a JSON array of CloudEvents for ``url``."""

    url: str
    events: list[dict[str, Any]]

    @property
    def types(self) -> list[str]:
        return [e["type"].removeprefix("Microsoft.Communication.") for e in self.events]


@dataclass
class _Participant:
    raw_id: str
    muted: bool = False
    on_hold: bool = False


@dataclass
class _Connection:
    id: str
    callback_url: str
    server_call_id: str
    correlation_id: str
    participants: dict[str, _Participant] = field(default_factory=dict)
    sequence: int = 0
    last_play: str | None = None


def identifier_model(raw_id: str) -> dict[str, Any]:
    """A raw id as ACS writes an identifier in events and responses."""
    if raw_id.startswith("4:"):
        return {"rawId": raw_id, "kind": "phoneNumber", "phoneNumber": {"value": raw_id[2:]}}
    if raw_id.startswith("8:acs:"):
        return {
            "rawId": raw_id,
            "kind": "communicationUser",
            "communicationUser": {"id": raw_id},
        }
    return {"rawId": raw_id, "kind": "unknown"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass
class CallBook:
    """Calls, recordings and the callbacks ACS would send about them."""

    auto_deliver: bool = False
    # Participants a call has when answered or connected (a room's members, the caller).
    first_participants: list[str] = field(default_factory=list)
    pending: list[Callback] = field(default_factory=list)
    sent: list[Callback] = field(default_factory=list)
    connections: dict[str, _Connection] = field(default_factory=dict)
    recordings: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (call, url)
    _outcome_failures: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One sender, so deliveries arrive in the order ACS would send them.
    _outbox: queue.Queue[Callback] = field(default_factory=queue.Queue)
    _sender: threading.Thread | None = None

    def _send_loop(self) -> None:
        while True:
            _post(self._outbox.get())

    # --- what tests use -----------------------------------------------------------------------

    def fail_outcome(
        self, route: str, *, code: int = 400, subcode: int = 8523, message: str = "Failed."
    ) -> None:
        """The next request of ``route`` is accepted, and its outcome callback is a failure
        (``AddParticipantFailed``, ``HoldFailed``, ``ConnectFailed``...)."""
        with self._lock:
            self._outcome_failures[route] = (code, subcode, message)

    def deliver(self, post: Callable[[str, list[dict[str, Any]]], Any]) -> list[Any]:
        """Hand every pending callback to ``post(url, events)`` in order; their results."""
        with self._lock:
            batch, self.pending = self.pending, []
            self.sent.extend(batch)
        return [post(callback.url, callback.events) for callback in batch]

    def participants(self, call_connection_id: str) -> dict[str, tuple[bool, bool]]:
        """``raw id -> (muted, on hold)`` of a call as the stand-in has it."""
        found = self.connections[call_connection_id].participants
        return {p.raw_id: (p.muted, p.on_hold) for p in found.values()}

    # --- called by the stand-in ---------------------------------------------------------------

    def connection_opened(
        self, *, connection_id: str, callback_url: str, route: str, targets: list[str]
    ) -> _Connection:
        connection = _Connection(
            id=connection_id,
            callback_url=callback_url,
            server_call_id=f"server-call-{uuid.uuid4()}",
            correlation_id=str(uuid.uuid4()),
        )
        for raw_id in [*self.first_participants, *targets]:
            connection.participants[raw_id] = _Participant(raw_id)
        with self._lock:
            self.connections[connection_id] = connection
        return connection

    def outcome(self, route: str, body: dict[str, Any], connection: _Connection | None) -> None:
        """Queue the callbacks of a request the stand-in accepted."""
        with self._lock:
            failure = self._outcome_failures.pop(route, None)
        if connection is None:
            return
        handler = getattr(self, f"_on_{route}", None)
        if handler is not None:
            handler(connection, body, failure)

    # --- the events ---------------------------------------------------------------------------

    def _event(
        self,
        connection: _Connection,
        name: str,
        data: dict[str, Any],
        result: tuple[int, int, str] = OK,
        context: Any = None,
    ) -> dict[str, Any]:
        code, subcode, message = result
        body = {
            **data,
            "version": API_VERSION,
            "resultInformation": {"code": code, "subCode": subcode, "message": message},
            "callConnectionId": connection.id,
            "serverCallId": connection.server_call_id,
            "correlationId": connection.correlation_id,
            "publicEventType": f"Microsoft.Communication.{name}",
        }
        if context:
            body["operationContext"] = context
        source = f"calling/callConnections/{connection.id}"
        return {
            "id": str(uuid.uuid4()),
            "source": source,
            "type": f"Microsoft.Communication.{name}",
            "data": body,
            "time": _now(),
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "subject": source,
        }

    def _participants_updated(self, connection: _Connection) -> dict[str, Any]:
        connection.sequence += 1
        participants = [
            {"identifier": identifier_model(p.raw_id), "isMuted": p.muted, "isOnHold": p.on_hold}
            for p in connection.participants.values()
        ]
        data = {"participants": participants, "sequenceNumber": connection.sequence}
        return self._event(connection, "ParticipantsUpdated", data)

    def _queue(self, url: str, events: list[dict[str, Any]]) -> None:
        callback = Callback(url, events)
        if self.auto_deliver:
            with self._lock:
                self.sent.append(callback)
                if self._sender is None:
                    self._sender = threading.Thread(target=self._send_loop, daemon=True)
                    self._sender.start()
            self._outbox.put(callback)
        else:
            with self._lock:
                self.pending.append(callback)

    def _url(self, connection: _Connection, body: dict[str, Any]) -> str:
        return str(body.get("operationCallbackUri") or connection.callback_url)

    def _connected(
        self, connection: _Connection, body: dict[str, Any], failure: Any, failed_name: str
    ) -> None:
        context = body.get("operationContext")
        if failure:
            events = [self._event(connection, failed_name, {}, failure, context)]
        else:
            events = [
                self._event(connection, "CallConnected", {}, context=context),
                self._participants_updated(connection),
            ]
        self._queue(connection.callback_url, events)

    def _on_answer(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        self._connected(connection, body, failure, "CallDisconnected")

    def _on_connect(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        self._connected(connection, body, failure, "ConnectFailed")

    def _on_createCall(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        self._connected(connection, body, failure, "CreateCallFailed")

    def _simple(
        self,
        connection: _Connection,
        body: dict[str, Any],
        failure: Any,
        names: tuple[str, str],
        data: dict[str, Any],
        change: Callable[[], object] | None = None,
    ) -> None:
        context = body.get("operationContext")
        if failure:
            events = [self._event(connection, names[1], data, failure, context)]
        else:
            events = [self._event(connection, names[0], data, context=context)]
            if change is not None:
                change()
                events.append(self._participants_updated(connection))
        self._queue(self._url(connection, body), events)

    def _on_addParticipant(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        raw_id = body["participantToAdd"]["rawId"]
        self._simple(
            connection,
            body,
            failure,
            ("AddParticipantSucceeded", "AddParticipantFailed"),
            {"participant": identifier_model(raw_id)},
            lambda: connection.participants.setdefault(raw_id, _Participant(raw_id)),
        )

    def _on_cancelAddParticipant(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        self._simple(
            connection,
            body,
            failure,
            ("CancelAddParticipantSucceeded", "CancelAddParticipantFailed"),
            {"invitationId": body.get("invitationId")},
        )

    def _on_removeParticipant(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        raw_id = body["participantToRemove"]["rawId"]
        self._simple(
            connection,
            body,
            failure,
            ("RemoveParticipantSucceeded", "RemoveParticipantFailed"),
            {"participant": identifier_model(raw_id)},
            lambda: connection.participants.pop(raw_id, None),
        )

    def _changed(self, connection: _Connection, raw_id: str, **state: bool) -> None:
        participant = connection.participants.setdefault(raw_id, _Participant(raw_id))
        for name, value in state.items():
            setattr(participant, name, value)
        self._queue(connection.callback_url, [self._participants_updated(connection)])

    def _on_mute(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        for target in body.get("targetParticipants") or []:
            self._changed(connection, target["rawId"], muted=True)

    def _on_hold(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        raw_id = body["targetParticipant"]["rawId"]
        if failure:
            event = self._event(connection, "HoldFailed", {}, failure, body.get("operationContext"))
            self._queue(self._url(connection, body), [event])
        else:
            self._changed(connection, raw_id, on_hold=True)

    def _on_unhold(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        self._changed(connection, body["targetParticipant"]["rawId"], on_hold=False)

    def _on_transferToParticipant(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        target = body["targetParticipant"]["rawId"]
        transferee = (body.get("transferee") or {}).get("rawId")

        def change() -> None:
            if transferee:
                connection.participants.pop(transferee, None)
            connection.participants.setdefault(target, _Participant(target))

        data = {"transferTarget": identifier_model(target)}
        if transferee:
            data["transferee"] = identifier_model(transferee)
        self._simple(
            connection, body, failure, ("CallTransferAccepted", "CallTransferFailed"), data, change
        )

    def _on_sendDtmfTones(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        self._simple(
            connection, body, failure, ("SendDtmfTonesCompleted", "SendDtmfTonesFailed"), {}
        )

    def _on_play(self, connection: _Connection, body: dict[str, Any], failure: Any) -> None:
        context = body.get("operationContext")
        connection.last_play = context
        if failure:
            events = [self._event(connection, "PlayFailed", {}, failure, context)]
        else:
            events = [
                self._event(connection, "PlayStarted", {}, context=context),
                self._event(connection, "PlayCompleted", {}, context=context),
            ]
        self._queue(self._url(connection, body), events)

    def _on_cancelAllMediaOperations(
        self, connection: _Connection, body: dict[str, Any], failure: Any
    ) -> None:
        if connection.last_play:
            event = self._event(connection, "PlayCanceled", {}, context=connection.last_play)
            self._queue(connection.callback_url, [event])

    # --- recordings ---------------------------------------------------------------------------

    def recording_started(self, body: dict[str, Any]) -> str:
        recording_id = f"recording-{uuid.uuid4()}"
        connection_id = str(body.get("callConnectionId") or "")
        connection = self.connections.get(connection_id)
        url = body.get("recordingStateCallbackUri") or (
            connection.callback_url if connection else ""
        )
        with self._lock:
            self.recordings[recording_id] = (connection_id, str(url))
        self.recording_state(recording_id, "active")
        return recording_id

    def recording_state(self, recording_id: str, state: str) -> None:
        connection_id, url = self.recordings[recording_id]
        connection = self.connections.get(connection_id)
        if connection is None or not url:
            return
        data = {"recordingId": recording_id, "state": state, "startDateTime": _now()}
        if state == "active":
            data["recordingKind"] = "AzureCommunicationServices"
        self._queue(url, [self._event(connection, "RecordingStateChanged", data)])


def _post(callback: Callback) -> None:
    """POST one delivery the way ACS does: a JSON array, ``application/json``."""
    request = urllib.request.Request(
        callback.url,
        data=json.dumps(callback.events).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError:
        pass  # ACS retries; a test waiting for the outcome says what is missing
