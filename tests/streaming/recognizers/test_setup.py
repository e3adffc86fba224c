"""Choosing a recognizer: the registry and the system checks that refuse a broken choice."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.checks import run_checks

from streaming.recognizers import (
    RecognizerConfigurationError,
    get_recognizer,
    recognizer_from_settings,
    reset_recognizer,
)
from streaming.recognizers.fake import FakeRecognizer
from streaming.recognizers.sphinx import SphinxRecognizer
from streaming.recognizers.whisper import WhisperRecognizer


def _ids() -> set[str]:
    return {m.id for m in run_checks(tags=["callsite"]) if m.id}


@pytest.fixture(autouse=True)
def _forget_recognizer() -> Any:
    reset_recognizer()
    yield
    reset_recognizer()


PRINT_RECOGNIZER = "from callsite.settings import CALLSITE_RECOGNIZER; print(CALLSITE_RECOGNIZER)"


def test_the_default_is_the_offline_whisper_backend() -> None:
    """With CALLSITE_RECOGNIZER unset (or empty), the settings choose whisper."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CALLSITE_RECOGNIZER"}
    for value in (None, ""):
        if value is not None:
            env["CALLSITE_RECOGNIZER"] = value
        chosen = subprocess.run(
            [sys.executable, "-c", PRINT_RECOGNIZER],
            env={**env, "DJANGO_DEBUG": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert chosen.stdout.strip() == "whisper"
    assert isinstance(recognizer_from_settings("whisper"), WhisperRecognizer)
    assert isinstance(recognizer_from_settings("sphinx"), SphinxRecognizer)


def test_registry_builds_each_backend(settings: Any) -> None:
    assert recognizer_from_settings("none") is None
    settings.CALLSITE_FAKE_RECOGNIZER = "script=hello|bye;fail_after=3"
    fake = recognizer_from_settings("fake")
    assert isinstance(fake, FakeRecognizer)
    assert fake.options == {"script": "hello|bye", "fail_after": "3"}
    with pytest.raises(RecognizerConfigurationError, match="choose one of"):
        recognizer_from_settings("kaldi")


def test_one_backend_serves_the_process_until_the_setting_changes(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "fake"
    first = get_recognizer()
    assert get_recognizer() is first
    settings.CALLSITE_RECOGNIZER = "none"
    assert get_recognizer() is None


def test_unknown_recognizer_is_error_e010(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "kaldi"
    assert "callsite.E010" in _ids()


def test_azure_without_credentials_is_error_e012(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "azure"
    settings.SPEECH_KEY = settings.SPEECH_REGION = settings.SPEECH_ENDPOINT = ""
    assert "callsite.E012" in _ids()
    settings.SPEECH_ENDPOINT = "https://westeurope.api.cognitive.microsoft.com/"
    assert "callsite.E012" in _ids()  # an https endpoint still needs the key
    settings.SPEECH_KEY = "key"
    assert "callsite.E012" not in _ids()
    settings.SPEECH_KEY, settings.SPEECH_ENDPOINT, settings.SPEECH_REGION = "key", "", "westeurope"
    assert "callsite.E012" not in _ids()
    settings.SPEECH_KEY, settings.SPEECH_REGION = "", ""
    settings.SPEECH_ENDPOINT = "ws://127.0.0.1:5001/speech"
    assert "callsite.E012" not in _ids()


def test_sphinx_outside_english_warns_w010(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "sphinx"
    settings.CALLSITE_RECOGNIZER_LOCALE = "en-US"
    assert not {"callsite.E011", "callsite.W010"} & _ids()
    settings.CALLSITE_RECOGNIZER_LOCALE = "de-DE"
    assert "callsite.W010" in _ids()


def test_fake_outside_debug_warns_w011(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "fake"
    settings.DEBUG = False
    assert "callsite.W011" in _ids()
