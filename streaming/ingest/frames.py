"""What an ACS socket does with frames it cannot use: count, log, and only rarely close.

A frame that cannot be parsed (or audio that cannot be used) is counted with its reason and
logged, and the socket stays open: one bad packet must not cost the rest of the call. Only a
stream of nothing but bad frames is closed, with 4008.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings

from streaming.metrics import INGEST

logger = logging.getLogger(__name__)

MAX_REJECT_CATEGORIES = 50
# Close code for a stream that sends nothing but bad frames: RFC 6455's 1008 (policy
# violation) in the application's range, the only codes an application may send through
# Daphne (its WebSocket library refuses anything but 1000 and 3000-4999).
POLICY_VIOLATION = 4008
# How the parser's reason for a frame of an unknown kind begins; see FramePolicy.reject.
UNKNOWN_KIND = "unknown packet kind "


class FramePolicy:
    """One socket's bad frames: counts by reason, the log, and when to close."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.frames = 0
        self.rejected: Counter[str] = Counter()
        # The run of rejected frames: its length, its last frame, and the close code once
        # the run is long enough to close the socket.
        self.bad_run = 0
        self.bad_run_frame = 0
        self.close_code: int | None = None

    def reject(self, reason: str, *, hostile: bool = True) -> None:
        """Count a bad frame and log it; past the log limit, only every 100th is logged.

        Counts are kept per kind of reason, without the offending value, and for a bounded
        number of kinds, so a hostile stream cannot grow them without limit.

        A stream whose last ``CALLSITE_BAD_FRAME_CLOSE_LIMIT`` frames were all rejected is
        closed with 4008 (policy violation) once this frame is handled. A valid frame ends
        the run. A frame of an unknown kind neither counts nor ends it, since ACS may add
        kinds that this version does not know; nor does a well-formed frame that is merely
        unusable (``hostile=False``: audio in a format Callsite does not take, or before its
        AudioMetadata), which must not cost the stream's transcription.
        """
        category = reason.split(", got ", 1)[0][:120]
        if category not in self.rejected and len(self.rejected) >= MAX_REJECT_CATEGORIES - 1:
            category = "other"
        self.rejected[category] += 1
        INGEST.rejected += 1
        total = sum(self.rejected.values())
        limit = settings.CALLSITE_BAD_FRAME_LOG_LIMIT
        if total <= limit or total % 100 == 0:
            logger.warning(
                "%s: rejected frame %d (%d rejected so far): %s",
                self.label,
                self.frames,
                total,
                reason,
            )
        self._extend_bad_run(reason, hostile=hostile)

    def _extend_bad_run(self, reason: str, *, hostile: bool) -> None:
        """Add this frame to the run of rejected frames; ask for a close if it is long enough."""
        frame = self.frames
        if frame == self.bad_run_frame:  # one frame is one frame, however often it is rejected
            return
        if frame - 1 != self.bad_run_frame:  # the frame before was not rejected
            self.bad_run = 0
        self.bad_run_frame = frame
        if not hostile or reason.startswith(UNKNOWN_KIND):
            return
        self.bad_run += 1
        limit = settings.CALLSITE_BAD_FRAME_CLOSE_LIMIT
        if limit and self.bad_run >= limit and self.close_code is None:
            self.close_code = POLICY_VIOLATION
            logger.warning(
                "%s: closing the socket (code %d) after %d bad frames in a row; "
                "%d of %d frames rejected: %s",
                self.label,
                POLICY_VIOLATION,
                self.bad_run,
                sum(self.rejected.values()),
                frame,
                dict(self.rejected.most_common(10)),
            )

    def summary(self) -> None:
        """Log what this socket rejected, when it closes."""
        if self.rejected:
            logger.warning(
                "%s: %d of %d frames rejected: %s",
                self.label,
                sum(self.rejected.values()),
                self.frames,
                dict(self.rejected.most_common(10)),
            )
