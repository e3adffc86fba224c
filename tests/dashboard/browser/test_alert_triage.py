"""In headless Chromium: one supervisor acknowledges an alert on the call page, with a note;
another, watching the wall, sees it acknowledged live and resolves it from the wall's row;
the call page shows it resolved, without a reload."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from streaming.models import Alert
from tests import factories
from tests.conftest import DaphneServer
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, SCREENSHOTS, _log_in
from tests.factories import AGENT
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


def test_an_alert_acknowledged_on_the_call_page_is_resolved_from_the_wall(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    call_id = factories.make_call("alerting-call", people=[AGENT, "4:+15551230000"], alerts=1)
    alert = Alert.objects.get(call_id=call_id)
    other = User.objects.create_user("ona", password="sup-password-123", first_name="Ona")
    other.groups.add(*Group.objects.filter(name__in=[SUPERVISORS_GROUP, STAFF_GROUP]))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        wall = browser.new_context(viewport={"width": 1400, "height": 800}).new_page()
        _log_in(wall, daphne_server.http_url, supervisor)
        row = wall.locator(f'#wall tr[data-call-id="{call_id}"]')
        expect(row.locator(".triage")).to_have_attribute("data-state", "open", timeout=10_000)

        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        _log_in(page, daphne_server.http_url, other)
        page.goto(f"{daphne_server.http_url}/calls/{call_id}/")
        item = page.locator(f'#alerts li[data-alert="{alert.pk}"]')
        expect(item.locator(".triage")).to_have_attribute("data-state", "open", timeout=10_000)
        item.locator('input[name="note"]').fill("Calling back")
        item.locator('button[data-step="acknowledge"]').click()
        expect(item.locator(".alert-state")).to_contain_text("acknowledged by Ona")
        expect(item.locator(".note")).to_have_text("Calling back")

        expect(row.locator(".alert-state")).to_have_text("acknowledged by Ona", timeout=5_000)
        wall.screenshot(path=str(SCREENSHOTS / "wall-alert-acknowledged.png"), full_page=True)
        row.locator('button[data-step="resolve"]').click()
        expect(row.locator(".triage")).to_have_count(0, timeout=5_000)

        expect(item.locator(".alert-state")).to_contain_text("resolved by sup", timeout=5_000)
        expect(item.locator('button[data-step="reopen"]')).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "call-alert-resolved.png"), full_page=True)
        browser.close()

    alert.refresh_from_db()
    assert (alert.state, alert.note) == ("resolved", "Calling back")
    assert alert.acknowledged_by == other
    assert alert.resolved_by == supervisor
