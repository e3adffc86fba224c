"""System checks for settings that would make ingest insecure or broken."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from streaming.acs.tokens import TokenError, load_jwks_file


@register("callsite", deploy=False)
def check_acs_auth(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """Warn when the ACS endpoints would refuse everyone, accept anyone, or skip token checks."""
    messages: list[Warning | Error] = []
    verifying = bool(settings.CALLSITE_ACS_RESOURCE_ID.strip())
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    # With token verification on, ACS's signed tokens authenticate it: no secret is needed.
    if not secret and not verifying:
        if settings.DEBUG:
            messages.append(
                Warning(
                    "The ACS ingest socket accepts unauthenticated connections.",
                    hint="DEBUG is on and neither CALLSITE_ACS_RESOURCE_ID nor "
                    "CALLSITE_ACS_SHARED_SECRET is set; set one of them.",
                    id="callsite.W001",
                )
            )
        else:
            messages.append(
                Warning(
                    "The ACS ingest socket refuses every connection.",
                    hint="Set CALLSITE_ACS_RESOURCE_ID to verify ACS's tokens, or "
                    "CALLSITE_ACS_SHARED_SECRET (and pass it to ACS as ?token=).",
                    id="callsite.W002",
                )
            )
    elif secret and len(secret) < 16:
        messages.append(
            Error(
                "CALLSITE_ACS_SHARED_SECRET is shorter than 16 characters.",
                hint="Use a long random value, e.g. from secrets.token_urlsafe(32).",
                id="callsite.E001",
            )
        )
    if not verifying and not settings.DEBUG:
        messages.append(
            Warning(
                "ACS tokens are not verified; only the shared secret protects ACS endpoints.",
                hint="Set CALLSITE_ACS_RESOURCE_ID to the ACS resource's immutable resource id.",
                id="callsite.W003",
            )
        )
    jwks_file = settings.CALLSITE_ACS_JWKS_FILE.strip()
    if jwks_file:
        try:
            load_jwks_file(jwks_file)
        except TokenError as error:
            messages.append(
                Error(
                    "CALLSITE_ACS_JWKS_FILE cannot be used.",
                    hint=error.reason.removeprefix("keys unavailable: "),
                    id="callsite.E002",
                )
            )
    return messages


@register("callsite", deploy=False)
def check_recognizer(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """Refuse a recognizer that cannot run: unknown name, missing package, missing key."""
    from streaming.recognizers import BACKENDS

    name = settings.CALLSITE_RECOGNIZER.lower()
    if name not in BACKENDS:
        return [
            Error(
                f"CALLSITE_RECOGNIZER={name!r} is not a recognizer.",
                hint=f"Choose one of: {', '.join(BACKENDS)}.",
                id="callsite.E010",
            )
        ]
    if name == "whisper":
        return _check_whisper()
    if name == "sphinx":
        import importlib.util

        if importlib.util.find_spec("pocketsphinx") is None:
            return [
                Error(
                    "CALLSITE_RECOGNIZER=sphinx but pocketsphinx is not installed.",
                    hint="pip install pocketsphinx (its wheel carries the model).",
                    id="callsite.E011",
                )
            ]
        if not settings.CALLSITE_RECOGNIZER_LOCALE.lower().startswith("en"):
            return [
                Warning(
                    "The sphinx recognizer's bundled model is US English only.",
                    hint=f"CALLSITE_RECOGNIZER_LOCALE is {settings.CALLSITE_RECOGNIZER_LOCALE!r};"
                    " use the azure recognizer or ACS transcription for other languages.",
                    id="callsite.W010",
                )
            ]
    if name == "azure":
        key, region = settings.SPEECH_KEY, settings.SPEECH_REGION
        endpoint = settings.SPEECH_ENDPOINT
        # A plain ws:// endpoint (a local container or stand-in) is the one that needs no key.
        if not ((key and (region or endpoint)) or endpoint.startswith("ws://")):
            return [
                Error(
                    "CALLSITE_RECOGNIZER=azure needs Azure AI Speech credentials.",
                    hint="Set SPEECH_KEY with SPEECH_REGION, or SPEECH_KEY with SPEECH_ENDPOINT.",
                    id="callsite.E012",
                )
            ]
    if name == "fake" and not settings.DEBUG:
        return [
            Warning(
                "CALLSITE_RECOGNIZER=fake produces scripted text, not transcripts.",
                hint="It exists for tests; use whisper, sphinx, azure or none.",
                id="callsite.W011",
            )
        ]
    return []


@register("callsite", deploy=False)
def check_workers(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """More than one server process needs a shared channel layer (and wants PostgreSQL)."""
    workers = settings.CALLSITE_WORKERS
    if workers <= 1:
        return []
    messages: list[Warning | Error] = []
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer") or not backend:
        messages.append(
            Error(
                f"CALLSITE_WORKERS={workers} with the in-memory channel layer.",
                hint="Each process would have its own layer: a supervisor would see only the "
                "calls whose ACS socket landed on the same process. Set REDIS_URL.",
                id="callsite.E020",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        messages.append(
            Warning(
                f"CALLSITE_WORKERS={workers} share one SQLite file.",
                hint="SQLite serialises every worker's writes and cannot be shared between "
                "machines; use PostgreSQL (DATABASE_URL=postgres://...).",
                id="callsite.W020",
            )
        )
    return messages


def _check_whisper() -> list[Warning | Error]:
    """The packages the whisper backend runs on, and a model that is there and is the one
    expected (its hash)."""
    import importlib.util

    from streaming.recognizers import RecognizerError
    from streaming.recognizers.whisper import WhisperRecognizer

    missing = [
        package
        for package in ("ctranslate2", "tokenizers", "pocketsphinx")
        if importlib.util.find_spec(package) is None
    ]
    if missing:
        return [
            Error(
                f"CALLSITE_RECOGNIZER=whisper but {', '.join(missing)} is not installed.",
                hint="Install Callsite's dependencies (pip install -e .): they pin them.",
                id="callsite.E013",
            )
        ]
    try:
        WhisperRecognizer.from_settings().check()
    except RecognizerError as error:
        return [
            Error(
                "The whisper recognizer's model cannot be used.",
                hint=error.reason,
                id="callsite.E014",
            )
        ]
    locale = settings.CALLSITE_RECOGNIZER_LOCALE
    if not settings.CALLSITE_WHISPER_MODEL and not locale.lower().startswith("en"):
        return [
            Warning(
                "The packaged Whisper model (tiny.en) is English only.",
                hint=f"CALLSITE_RECOGNIZER_LOCALE is {locale!r}: set CALLSITE_WHISPER_MODEL to a "
                "multilingual CTranslate2 Whisper model (docs/audio.md), or use azure.",
                id="callsite.W012",
            )
        ]
    return []


@register("callsite", deploy=False)
def check_redaction(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """Refuse redaction rules that cannot be built: an unknown kind or national id."""
    if settings.CALLSITE_REDACT != "on":
        return []
    from streaming.redaction.applied import rules_from_settings

    try:
        rules_from_settings()
    except ValueError as error:
        return [
            Error(
                f"The redaction rules cannot be used: {error}.",
                hint="CALLSITE_REDACT_ENTITIES takes card, iban, national_id, email, phone; "
                "CALLSITE_REDACT_NATIONAL_IDS python-stdnum module names such as us.ssn.",
                id="callsite.E060",
            )
        ]
    return []
