"""Daphne with a graceful stop and Callsite's WebSocket limits.

    python -m callsite.server [daphne's options] callsite.asgi:application

It takes every option ``daphne`` does (``manage.py serve`` starts its workers with it). Two
things differ from plain Daphne:

**Stopping.** On SIGTERM (or SIGINT) Daphne cancels every open connection's consumer at once:
an ACS stream's last words, still in the recognizer, and its talk time are never stored. This
server drains instead:

1. it stops listening, so new connections go to the other workers (nginx moves on to the next
   upstream when a connection is refused);
2. it closes every open WebSocket with code 1012 (service restart). ACS reconnects the call's
   stream and supervisors' pages reconnect and resume, on another worker;
3. each ACS consumer's ``disconnect()`` stores what its stream still holds: the recognizer's
   pending finals, the talk time, the stream's end;
4. when every connection has finished, or after ``CALLSITE_DRAIN_SECONDS`` (default 20), the
   server stops; what is still running then is cancelled, as Daphne does.

A second signal during the drain stops at once.

**Limits.** A WebSocket message or frame over ``CALLSITE_WS_MAX_MESSAGE_BYTES`` (default
256 KiB; the largest ACS packets are a few KiB) fails the connection with close code 1009
(message too big) before the consumer sees it, unless ``--websocket-max-message-size`` or
``--websocket-max-frame-size`` is given. The limit is on what peers send; what the server
sends (a long call's snapshot) is not limited.

**Over capacity** (``callsite/load.py``): while the event loop is busy more than
``CALLSITE_SHED_LOOP_BUSY_PERCENT`` of the time or runs more than
``CALLSITE_SHED_LOOP_LAG_MS`` late, new ACS streams are refused at the handshake with 503,
before any of the application runs; ``/readyz`` says "over capacity".

**Event loop.** Twisted's reactor runs on uvloop (libuv) instead of asyncio's own loop, unless
``CALLSITE_EVENT_LOOP=asyncio``: the same asyncio API, a cheaper loop under thousands of
socket reads a second (docs/benchmarks.md).

**Access log.** Daphne's access log writes each request's query string, and Event Grid
deliveries and some callbacks carry the ACS shared secret there (``?token=``): this server
writes the path alone (``/acs/events/?…``).

**Slow readers.** What a socket's peer has not read yet waits in the worker's memory, and
Twisted buffers it without limit. A socket whose unsent backlog passes
``CALLSITE_WS_MAX_BACKLOG_BYTES`` (default 1 MiB: messages sent while Twisted's 64 KiB send
buffer stays full), with the buffer full for at least 2 s, is dropped (aborted: a close frame would
only queue behind the backlog) and counted in ``callsite_websocket_slow_readers_dropped_total``.
Nothing is lost by it: a supervisor's page reconnects and resumes from the database with
``?after=<seq>``, and the call wall starts again from a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Any

from callsite.loop import install_event_loop_policy

# Before Daphne is imported: it creates the event loop Twisted's reactor runs on at import.
EVENT_LOOP = install_event_loop_policy()

from autobahn.websocket.types import ConnectionDeny  # noqa: E402
from daphne.cli import CommandLineInterface  # noqa: E402
from daphne.server import Server  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402
from twisted.internet import reactor as _reactor  # noqa: E402
from twisted.internet.interfaces import IPushProducer  # noqa: E402
from zope.interface import implementer  # noqa: E402

from callsite.env import env_int  # noqa: E402
from callsite.load import LOAD  # noqa: E402
from callsite.wsframes import FastFrameReader  # noqa: E402
from streaming.metrics import INGEST  # noqa: E402

logger = logging.getLogger("callsite.server")

reactor: Any = _reactor  # Twisted's global reactor (the asyncio one Daphne installs)

SERVICE_RESTART = 1012
ACS_PATH = "/ws/acs/"
DEFAULT_DRAIN_SECONDS = 20
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
DEFAULT_MAX_BACKLOG_BYTES = 1024 * 1024
MIN_BACKLOG_BYTES = 64 * 1024
# How long the send buffer must have stayed full before a socket counts as slow: a burst (a
# snapshot and its analytics) to a peer that reads drains well within it.
BACKLOG_GRACE_SECONDS = 2.0


@implementer(IPushProducer)
class SendBacklog:
    """Whether one WebSocket's send buffer is full, and how much was sent on top of it.

    Registered as the connection's streaming producer, so Twisted says when its send buffer
    fills (``pauseProducing``: more than its ``bufferSize``, 64 KiB, waits for the kernel)
    and when it has emptied (``resumeProducing``). The backlog is what the socket sent in
    between: messages queued behind a full buffer, for a peer that has not caught up.
    """

    def __init__(self) -> None:
        self.paused = False
        self.paused_at = 0.0
        self.backlog = 0

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self.paused_at = time.monotonic()

    def resumeProducing(self) -> None:
        self.paused = False
        self.backlog = 0

    def stopProducing(self) -> None:
        self.resumeProducing()


class BoundedWebSocketProtocol(FastFrameReader, WebSocketProtocol):
    """Daphne's WebSocket protocol, dropping a peer that lets its backlog pass the limit,
    refusing new ACS streams while the worker is over capacity, and reading common frames
    without Autobahn's per-frame machinery (``callsite.wsframes``)."""

    max_backlog = DEFAULT_MAX_BACKLOG_BYTES
    send_backlog: SendBacklog | None = None
    dropped_slow = False

    def onConnect(self, request: Any) -> Any:
        if request.path.startswith(ACS_PATH):
            reason = LOAD.refusal(INGEST.sockets_open)
            if reason:
                INGEST.streams_shed += 1
                logger.warning(
                    "ACS stream from %s refused (503): this worker is over capacity, %s",
                    request.peer,
                    reason,
                )
                raise ConnectionDeny(503, "over capacity: try another worker")
            LOAD.took()
        return super().onConnect(request)

    def connectionMade(self) -> None:
        super().connectionMade()
        transport = self.transport
        backlog = SendBacklog()
        try:
            # The HTTP channel that upgraded the connection is still its producer.
            transport.unregisterProducer()
            transport.registerProducer(backlog, True)
        except Exception:  # a transport without producers: the backlog goes unwatched
            logger.warning("WebSocket backlog not watched on %r", transport, exc_info=True)
            return
        self.send_backlog = backlog

    def serverSend(self, content: str | bytes, binary: bool = False) -> None:
        backlog = self.send_backlog
        # Only what is sent while the buffer is already full counts: one large message (a
        # snapshot) to a peer that reads is not a slow reader.
        waiting = backlog is not None and backlog.paused
        # Autobahn applies the message size limit to what is sent too; it is meant for what
        # peers send (a call page's snapshot of a long call is larger).
        limit = int(getattr(self, "maxMessagePayloadSize", 0))
        self.maxMessagePayloadSize = 0
        try:
            super().serverSend(content, binary)
        finally:
            self.maxMessagePayloadSize = limit
        if backlog is None or not waiting or not backlog.paused or self.dropped_slow:
            return
        backlog.backlog += len(content)
        if (
            backlog.backlog > self.max_backlog
            and time.monotonic() - backlog.paused_at >= BACKLOG_GRACE_SECONDS
        ):
            self.dropped_slow = True
            INGEST.slow_readers_dropped += 1
            logger.warning(
                "WebSocket %s from %s dropped: its peer is not reading; %d bytes queued behind "
                "its full send buffer (CALLSITE_WS_MAX_BACKLOG_BYTES %d); a page resumes "
                "from the database",
                getattr(getattr(self, "request", None), "path", "?"),
                self.client_addr,
                backlog.backlog,
                self.max_backlog,
            )
            self.dropConnection(abort=True)


class DrainingServer(Server):
    """Daphne's server, stopping by draining its connections first (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Twisted's own handlers stop the reactor at once; this server installs its own.
        self.install_drain_handlers = bool(kwargs.get("signal_handlers", True))
        self.signal_handlers = False
        self.drain_seconds = env_int("CALLSITE_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS, minimum=0)
        self.ports: list[Any] = []
        self.draining = False
        self.stopping = False

    def run(self) -> None:
        loop = reactor._asyncioEventloop
        logger.info(
            "event loop: %s.%s (CALLSITE_EVENT_LOOP=%s)",
            type(loop).__module__,
            type(loop).__qualname__,
            EVENT_LOOP,
        )
        if self.install_drain_handlers:
            reactor.callWhenRunning(self._install_signal_handlers)
        reactor.callWhenRunning(self._set_protocol_options)
        reactor.callWhenRunning(self._start_load_monitor)
        reactor.callWhenRunning(self._start_daily_purge)
        super().run()

    def _start_load_monitor(self) -> None:
        LOAD.start(
            float(env_int("CALLSITE_SHED_LOOP_LAG_MS", 50, minimum=0)),
            float(env_int("CALLSITE_SHED_LOOP_BUSY_PERCENT", 70, minimum=0)),
        )

    def _start_daily_purge(self) -> None:
        # Start-up triggers run before the asyncio loop does: the loop task starts in it.
        asyncio.get_event_loop().call_soon(self._daily_purge_in_loop)

    def _daily_purge_in_loop(self) -> None:
        # Imported here: the application (and so Django) is loaded by the time the loop runs.
        from streaming.retention import daily_purge_start

        if daily_purge_start():
            logger.info("daily purge on (CALLSITE_PURGE_DAILY): checked every hour")

    def _set_protocol_options(self) -> None:
        # Autobahn fails a connection (a frame over the size limit, a protocol error) by
        # dropping it, which the client sees as 1006 with no reason. Send the close frame
        # with its code (1009: message too big) first, so the peer's logs say why.
        self.ws_factory.setProtocolOptions(failByDrop=False)
        BoundedWebSocketProtocol.max_backlog = env_int(
            "CALLSITE_WS_MAX_BACKLOG_BYTES", DEFAULT_MAX_BACKLOG_BYTES, minimum=MIN_BACKLOG_BYTES
        )
        self.ws_factory.protocol = BoundedWebSocketProtocol

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_event_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.drain, signum)

    def stop(self) -> None:
        if self.stopping:
            return
        if reactor.running:
            self.stopping = True
        super().stop()

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        """Daphne's access log, without query strings: they carry secrets (``?token=``)."""
        path = details.get("path")
        if isinstance(path, str) and "?" in path:
            details = {**details, "path": path.split("?", 1)[0] + "?…"}
        super().log_action(protocol, action, details)

    def listen_success(self, port: Any) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def drain(self, signum: int = signal.SIGTERM) -> None:
        if self.draining:
            logger.warning("signal %s during the drain: stopping now", signum)
            self.stop()
            return
        self.draining = True
        for port in self.ports:
            port.stopListening()
        sockets = [
            protocol
            for protocol in self.connections
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
        ]
        logger.warning(
            "signal %s: draining: no new connections; closing %d WebSocket(s) with %d, "
            "waiting up to %.0f s for %d connection(s) to finish",
            signum,
            len(sockets),
            SERVICE_RESTART,
            self.drain_seconds,
            len(self.connections),
        )
        for protocol in sockets:
            # Autobahn's sendClose() accepts only 1000 and 3000-4999 from an application;
            # 1012 is the protocol's own code for a restarting server.
            protocol.sendCloseFrame(code=SERVICE_RESTART, isReply=False)
        self._wait_for_connections(time.monotonic() + self.drain_seconds)

    def _busy(self) -> int:
        return sum(
            1
            for details in self.connections.values()
            if details.get("application_instance") is not None
            and not details["application_instance"].done()
        )

    def _wait_for_connections(self, deadline: float) -> None:
        busy = self._busy()
        if busy and time.monotonic() < deadline:
            reactor.callLater(0.05, self._wait_for_connections, deadline)
            return
        if busy:
            logger.warning("drain: %d connection(s) still running after the grace: cancelled", busy)
        else:
            logger.warning("drain: every connection finished; stopping")
        self.stop()


class DrainingCommandLine(CommandLineInterface):
    server_class = DrainingServer

    def run(self, args: list[str]) -> None:
        limit = str(
            env_int("CALLSITE_WS_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, minimum=1024)
        )
        given = {arg.split("=", 1)[0] for arg in args}
        defaults = [
            f"{option}={limit}"
            for option in ("--websocket-max-message-size", "--websocket-max-frame-size")
            if option not in given
        ]
        super().run([*defaults, *args])


def main() -> None:
    DrainingCommandLine().run(sys.argv[1:])


if __name__ == "__main__":
    main()
