"""The desktop page warns that the working hours end, then shows why the session ended (Chromium)."""

from __future__ import annotations

import re
import time

from playwright.async_api import Browser, expect

from gateway.notices import WindowClosing
from gateway.web.keys import LIVE_SESSIONS, NOTICES
from gateway.web.reloading import OUTSIDE_HOURS
from tests.conftest import GatewayUnderTest
from tests.e2e.test_operator_journey_e2e import sign_in


async def test_the_operator_is_warned_before_the_working_hours_end(browser: Browser,
                                                                  gateway: GatewayUnderTest) -> None:
    app = gateway.gateway.app
    page = await browser.new_page()
    await sign_in(page, gateway, "alice")
    await page.goto(f"{gateway.url}/desktop/desk-01")
    await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)

    await app[NOTICES].post("alice", WindowClosing(time.time() + 240, "desk-01"))  # as the access watcher does
    banner = page.locator("#window-closing")
    await expect(banner).to_be_visible(timeout=5000)
    await expect(page.locator("#window-closing-time")).to_have_text(re.compile(r"\d\d:\d\d"))

    (control,) = app[LIVE_SESSIONS].controls()
    control.terminate(OUTSIDE_HOURS, "outside_hours")  # as the access watcher does when the window closes
    await expect(page.locator("#ended-reason")).to_have_text(OUTSIDE_HOURS, timeout=10000)
    await expect(banner).to_be_hidden()
    await page.close()
