"""Speech recognizer backends behind one contract (``base``), chosen by a setting.

``CALLSITE_RECOGNIZER`` selects the backend: ``whisper`` (offline, the default), ``sphinx``
(offline, light), ``azure`` (Azure AI Speech), ``none`` (no recognition), or ``fake``
(scripted, for tests; options in ``CALLSITE_FAKE_RECOGNIZER``, e.g.
``script=hello there|goodbye;fail_after=2``). One backend instance serves the whole process.
"""

from __future__ import annotations

from django.conf import settings

from streaming.recognizers.base import (
    Recognition,
    RecognitionSession,
    RecognizedWord,
    Recognizer,
    RecognizerConfigurationError,
    RecognizerError,
    SessionConfig,
)

__all__ = [
    "BACKENDS",
    "Recognition",
    "RecognitionSession",
    "RecognizedWord",
    "Recognizer",
    "RecognizerConfigurationError",
    "RecognizerError",
    "SessionConfig",
    "check_recognizer",
    "get_recognizer",
    "recognizer_from_settings",
    "reset_recognizer",
]

BACKENDS = ("whisper", "sphinx", "azure", "none", "fake")

_instance: tuple[str, Recognizer | None] | None = None


def recognizer_from_settings(name: str | None = None) -> Recognizer | None:
    """Build the configured backend; ``None`` for ``none``."""
    name = (name or settings.CALLSITE_RECOGNIZER).lower()
    if name == "none":
        return None
    if name == "whisper":
        from streaming.recognizers.whisper import WhisperRecognizer

        return WhisperRecognizer.from_settings()
    if name == "sphinx":
        from streaming.recognizers.sphinx import SphinxRecognizer

        return SphinxRecognizer.from_settings()
    if name == "azure":
        from streaming.recognizers.azure import AzureRecognizer

        return AzureRecognizer.from_settings()
    if name == "fake":
        from streaming.recognizers.fake import FakeRecognizer

        options = dict(
            part.split("=", 1)
            for part in getattr(settings, "CALLSITE_FAKE_RECOGNIZER", "").split(";")
            if "=" in part
        )
        return FakeRecognizer(options=options)
    raise RecognizerConfigurationError(
        f"CALLSITE_RECOGNIZER={name!r} is not a recognizer; choose one of {', '.join(BACKENDS)}"
    )


def check_recognizer() -> None:
    """Raise RecognizerConfigurationError when the configured backend cannot start: a
    Whisper model that is missing or whose hash is not the expected one. The server calls it
    before it listens (callsite/asgi.py), so such a model stops start-up."""
    if settings.CALLSITE_RECOGNIZER.lower() == "whisper":
        from streaming.recognizers.whisper import WhisperRecognizer

        WhisperRecognizer.from_settings().check()


def get_recognizer() -> Recognizer | None:
    """The process's backend, built on first use from the current settings."""
    global _instance
    name = settings.CALLSITE_RECOGNIZER.lower()
    if _instance is None or _instance[0] != name:
        _instance = (name, recognizer_from_settings(name))
    return _instance[1]


def reset_recognizer(recognizer: Recognizer | None = None, name: str | None = None) -> None:
    """Forget the process's backend, or install one (tests)."""
    global _instance
    _instance = None if name is None else (name, recognizer)
