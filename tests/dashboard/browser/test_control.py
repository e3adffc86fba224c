"""A supervisor in headless Chromium acts on a call Callsite answered through the stand-in.

The server answers through the real SDK; the stand-in POSTs what ACS would report back
(CallConnected, ParticipantsUpdated with the participant held or added), and the page shows
each change as it comes, without a reload.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User

from tests.conftest import AcsServer
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, SCREENSHOTS, _log_in
from tests.services import chromium_path, require
from tests.streaming.automation.test_lifecycle import incoming_call_event

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

CUSTOMER = "4:+15555550123"
AGENT = "8:acs:6d889502-3d7a-41a8-befa-d21fd80e8767_00000027-4651-bfa5-2c8a-084822002c21"


def test_hold_unhold_and_add_a_participant_from_the_call_page(
    acs_server: AcsServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    supervisor.user_permissions.add(
        *Permission.objects.filter(codename__in=["manage_participants", "control_call"])
    )
    acs_server.standin.call_connection_id = "browser-controlled-call"
    acs_server.standin.book.first_participants = [CUSTOMER, AGENT]
    session = acs_server.session(supervisor)
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    answered = session.post(
        f"{acs_server.server.http_url}/acs/events/?token={secret}",
        data=json.dumps(incoming_call_event()),
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert answered.json() == {"outcomes": ["answered"]}, answered.text

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _log_in(page, acs_server.server.http_url, supervisor)
        row = page.locator("#wall tr[data-call-id]").first
        expect(row).to_be_visible(timeout=10_000)
        call_id = row.get_attribute("data-call-id")
        page.goto(f"{acs_server.server.http_url}/calls/{call_id}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        customer = page.locator(f'#participants li[data-raw-id="{CUSTOMER}"]')
        expect(customer).to_be_visible(timeout=10_000)
        expect(customer.locator(".who")).not_to_contain_text("on hold")

        customer.locator('button[data-action="hold"]').click()
        expect(customer.locator(".who")).to_contain_text("on hold", timeout=10_000)
        page.screenshot(path=str(SCREENSHOTS / "call-page-on-hold.png"), full_page=True)
        customer.locator('button[data-action="unhold"]').click()
        expect(customer.locator(".who")).not_to_contain_text("on hold", timeout=10_000)
        expect(customer.locator('button[data-action="hold"]')).to_be_visible()

        page.fill('#add-participant input[name="address"]', "+1 555 123 0000")
        page.click('#add-participant button[type="submit"]')
        newcomer = page.locator('#participants li[data-raw-id="4:+15551230000"]')
        expect(newcomer).to_be_visible(timeout=10_000)
        expect(newcomer.locator(".who")).not_to_contain_text("invited", timeout=10_000)
        expect(newcomer.locator('button[data-action="mute"]')).to_be_visible()

        audit = page.locator("#audit")
        expect(audit.locator('li[data-action="hold"]')).to_have_attribute(
            "data-status", "succeeded"
        )
        expect(audit.locator('li[data-action="unhold"]')).to_have_attribute(
            "data-status", "succeeded"
        )
        expect(audit.locator('li[data-action="add-participant"]')).to_have_attribute(
            "data-status", "succeeded", timeout=10_000
        )
        expect(audit).to_contain_text(supervisor.username)
        page.screenshot(path=str(SCREENSHOTS / "call-page-controls.png"), full_page=True)
        browser.close()
    routes = [r.route for r in acs_server.standin.requests]
    assert routes == ["answer", "hold", "unhold", "addParticipant"]
