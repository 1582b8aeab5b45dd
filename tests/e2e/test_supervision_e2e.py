"""The operator always knows, in a real browser: who is viewing the screen, and who ended the session and why.

The live view is not built yet: viewing notices are posted to the gateway's notice board directly,
as the live view will post them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.demo import XvncDesktop
from gateway.notices import ViewingEnded, ViewingStarted
from gateway.web.keys import NOTICES
from tests.functional.auth_helpers import PASSWORD, AuthGateway, auth_gateway
from tests.functional.supervision_helpers import POLICIES, USERS

pytestmark = pytest.mark.e2e

REASON = "end of the trial shift; please sign off"


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(tmp_path, POLICIES, desktop_port=desktop.port, users=USERS) as gateway:
        yield gateway


async def signed_in_page(browser: Browser, gateway: AuthGateway, user: str, steps: int = 0) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", gateway.code(user, steps))
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{gateway.url}/")
    return page


async def open_desktop_page(page: Page, gateway: AuthGateway) -> None:
    await page.goto(f"{gateway.url}/desktop/desk-01")
    await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)
    await page.wait_for_function("() => window.deskgateNotices.readyState === EventSource.OPEN")


async def test_the_operators_page_shows_who_is_viewing_and_when_they_stop(browser: Browser,
                                                                          gateway: AuthGateway) -> None:
    page = await signed_in_page(browser, gateway, "alice")
    await open_desktop_page(page, gateway)
    board = gateway.gateway.app[NOTICES]
    viewing, stopped = page.locator("#viewing"), page.locator("#viewing-ended")
    await expect(viewing).to_be_hidden()

    await board.post("alice", ViewingStarted("sam", "desk-01"))
    await expect(viewing).to_be_visible()
    await expect(viewing).to_have_text("Your screen is being viewed by sam")
    await board.post("alice", ViewingStarted("tess", "desk-01"))
    await board.post("alice", ViewingStarted("root", "desk-02"))  # another desktop of hers: not this page
    await expect(page.locator("#viewers")).to_have_text("sam, tess")

    await board.post("alice", ViewingEnded("sam"))
    await expect(page.locator("#viewers")).to_have_text("tess")
    await expect(stopped).to_have_text("sam stopped viewing your screen")

    # A page opened while someone is viewing knows it at once.
    await open_desktop_page(page, gateway)
    await expect(page.locator("#viewers")).to_have_text("tess")
    await expect(stopped).to_be_hidden()  # what happened before the page came is not news
    await board.post("alice", ViewingEnded("tess"))
    await expect(viewing).to_be_hidden()
    await expect(stopped).to_have_text("tess stopped viewing your screen")
    await page.close()


async def test_a_supervisor_ends_a_session_from_the_sessions_page_and_the_operator_sees_who_and_why(
        browser: Browser, gateway: AuthGateway) -> None:
    operator = await signed_in_page(browser, gateway, "alice")
    await expect(operator.locator("#sessions-link")).to_be_hidden()  # operators watch nobody
    await open_desktop_page(operator, gateway)

    supervisor = await signed_in_page(browser, gateway, "sam")
    await supervisor.click("#sessions-link")
    await expect(supervisor).to_have_url(f"{gateway.url}/sessions")
    row = supervisor.locator("#sessions tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("alice")
    await expect(row).to_contain_text("desk-01")
    await row.get_by_role("button", name="End session").click()
    dialog = supervisor.locator("#end-dialog")
    await expect(dialog).to_be_visible()
    await expect(supervisor.locator("#end-user")).to_have_text("alice")
    await supervisor.click("#end-confirm")  # no reason yet: the dialog says one is needed
    await expect(dialog).to_be_visible()
    await supervisor.fill("#end-reason", REASON)
    await supervisor.click("#end-confirm")
    await expect(dialog).to_be_hidden()

    await expect(operator.locator("#ended")).to_be_visible(timeout=3000)
    await expect(operator.locator("#ended-reason")).to_have_text(f"Your session was ended by sam: {REASON}")
    await expect(supervisor.locator("#message")).to_have_text("Nobody you look after is connected now.",
                                                              timeout=10000)
    await operator.close()
    await supervisor.close()
