"""System checks of the streaming app: redaction rules that cannot be built are refused."""

from __future__ import annotations

from typing import Any

from streaming.checks import check_redaction


def test_the_system_check_refuses_rules_that_cannot_be_built(settings: Any) -> None:
    settings.CALLSITE_REDACT = "on"
    settings.CALLSITE_REDACT_ENTITIES = ["card", "cards"]
    (error,) = check_redaction()
    assert error.id == "callsite.E060"
    assert "cards" in error.msg
    settings.CALLSITE_REDACT_ENTITIES = ["card"]
    assert check_redaction() == []
