"""The light offline recognizer: pocketsphinx in a pool of worker processes.

The wheel of ``pocketsphinx`` carries its US English model, so this backend needs no network,
no key and little memory. Decoding runs in ``sphinx_worker`` processes (one per core unless
``CALLSITE_SPHINX_WORKERS`` says otherwise), managed by ``streaming.recognizers.pool``.
"""

from __future__ import annotations

from typing import Any

from streaming.recognizers.base import SessionConfig
from streaming.recognizers.pool import WATCHDOG_SECONDS, WorkerPool


class SphinxRecognizer(WorkerPool):
    """pocketsphinx worker processes; an interim every ``interim_ms`` of speech."""

    name = "sphinx"
    engine = "pocketsphinx"
    worker_module = "streaming.recognizers.sphinx_worker"

    def __init__(
        self,
        *,
        workers: int = 0,
        backlog_seconds: int = 20,
        interim_ms: int = 500,
        watchdog_seconds: float = WATCHDOG_SECONDS,
    ) -> None:
        super().__init__(
            workers=workers, backlog_seconds=backlog_seconds, watchdog_seconds=watchdog_seconds
        )
        self.interim_ms = interim_ms

    @classmethod
    def from_settings(cls) -> SphinxRecognizer:
        from django.conf import settings

        return cls(
            workers=settings.CALLSITE_SPHINX_WORKERS,
            backlog_seconds=settings.CALLSITE_RECOGNIZER_BACKLOG_SECONDS,
            watchdog_seconds=settings.CALLSITE_SPHINX_WATCHDOG_SECONDS,
        )

    def session_options(self, config: SessionConfig) -> dict[str, Any]:
        return {"interim_ms": self.interim_ms}
