"""The Call Automation stand-in, configured as Callsite's ACS for these tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.standins.call_automation import CallAutomationStandIn

CONNECTION_ID = "06004980-19f4-465a-b630-76c371713dff"
PUBLIC = "https://callsite.example.com"


@pytest.fixture
def acs(settings: Any, call_automation_standin: CallAutomationStandIn) -> CallAutomationStandIn:
    """Callsite configured to answer every call through the stand-in."""
    call_automation_standin.call_connection_id = CONNECTION_ID
    settings.ACS_CONNECTION_STRING = call_automation_standin.connection_string
    settings.CALLSITE_PUBLIC_URL = PUBLIC
    settings.CALLSITE_ANSWER_CALLS = ["all"]
    settings.CALLSITE_MEDIA_STREAMING = True
    settings.CALLSITE_TRANSCRIPTION_LOCALE = ""
    settings.CALLSITE_ACS_RESOURCE_ID = ""
    return call_automation_standin
