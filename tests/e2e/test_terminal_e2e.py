"""A browser terminal in Chromium: type a command with Japanese in xterm.js, see its output; its recording plays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.functional.auth_helpers import PASSWORD, AuthGateway
from tests.functional.terminal_helpers import terminal_gateway
from tests.sshd_server import SshdServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SCREEN_HAS = """(text) => {
  const buffer = window.deskgateTerminal.buffer.active;
  let screen = "";
  for (let row = 0; row < buffer.length; row++) screen += buffer.getLine(row).translateToString(true) + "\\n";
  return screen.includes(text);
}"""

FIND_RECORDING = """async (text) => {
  const response = await fetch(`/api/v1/recordings?text=${encodeURIComponent(text)}`);
  const found = (await response.json()).recordings;
  return found.length ? found[0].id : null;
}"""


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdServer]:
    with SshdServer(tmp_path / "sshd") as server:
        yield server


async def sign_in(page: Page, gateway: AuthGateway, name: str) -> None:
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", name)
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", gateway.code(name))
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{gateway.url}/")


async def test_an_operator_types_japanese_in_the_browser_terminal_and_a_supervisor_plays_it_back(
        browser: Browser, sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway:
        page = await browser.new_page(viewport={"width": 1100, "height": 700})
        await sign_in(page, gateway, "alice")
        await page.click('a[data-target="shell-01"]')
        await expect(page).to_have_url(f"{gateway.url}/terminal/shell-01")
        await expect(page.locator("#status")).to_have_text("Connected to shell-01", timeout=15000)
        await page.locator("#terminal").click()
        await page.keyboard.type("echo ")
        await page.keyboard.insert_text("日本語のテキスト")
        await page.keyboard.type("-$((6*7))")
        await page.keyboard.press("Enter")
        await page.wait_for_function(SCREEN_HAS, arg="日本語のテキスト-42", timeout=15000)
        await page.keyboard.type("exit")
        await page.keyboard.press("Enter")
        await expect(page.locator("#ended")).to_be_visible(timeout=15000)

        supervisor = await browser.new_page(viewport={"width": 1100, "height": 800})
        errors: list[str] = []
        supervisor.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(supervisor, gateway, "sam")
        recording = await supervisor.wait_for_function(FIND_RECORDING, arg="日本語のテキスト-42", polling=200,
                                                       timeout=20000)
        await supervisor.goto(f"{gateway.url}/recordings/{await recording.json_value()}")
        await expect(supervisor.locator("#cast .ap-player")).to_be_visible(timeout=15000)
        await supervisor.click("#speed-4")
        await supervisor.locator("#events li").first.wait_for(timeout=5000)
        await expect(supervisor.locator("#cast")).to_contain_text("日本語のテキスト-42", timeout=20000)
        assert errors == []


async def test_a_supervisor_watches_a_terminal_on_the_wall_and_live_and_the_operator_sees_it(
        browser: Browser, sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway:
        page = await browser.new_page(viewport={"width": 1100, "height": 700})
        await sign_in(page, gateway, "alice")
        await page.goto(f"{gateway.url}/terminal/shell-01")
        await expect(page.locator("#status")).to_have_text("Connected to shell-01", timeout=15000)
        await page.locator("#terminal").click()
        await page.keyboard.type("echo watched-$((6*7))")
        await page.keyboard.press("Enter")
        await page.wait_for_function(SCREEN_HAS, arg="watched-42", timeout=15000)

        supervisor = await browser.new_page(viewport={"width": 1100, "height": 800})
        errors: list[str] = []
        supervisor.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(supervisor, gateway, "sam")
        await supervisor.goto(f"{gateway.url}/wall")
        tile = supervisor.locator(".tile[data-user='alice']")
        await expect(tile.locator(".tile-text")).to_contain_text("watched-42", timeout=15000)
        await tile.click()
        await expect(supervisor.locator("#whose")).to_have_text("alice's terminal on shell-01", timeout=15000)
        await supervisor.wait_for_function(SCREEN_HAS, arg="watched-42", timeout=15000)
        await expect(page.locator("#viewers")).to_have_text("sam", timeout=15000)

        await supervisor.locator("#terminal").click()
        await supervisor.keyboard.type("echo from-the-viewer")  # view only: nothing reaches the shell
        await supervisor.keyboard.press("Enter")
        await page.keyboard.type("echo more-$((1+1))")
        await page.keyboard.press("Enter")
        await supervisor.wait_for_function(SCREEN_HAS, arg="more-2", timeout=15000)
        assert not await page.evaluate(SCREEN_HAS, "from-the-viewer")
        await page.keyboard.type("exit")
        await page.keyboard.press("Enter")
        await expect(supervisor.locator("#ended")).to_be_visible(timeout=15000)
        assert errors == []
