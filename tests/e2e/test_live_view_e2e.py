"""Watching the team in a real browser: the wall's live tiles, the live view, and the operator's viewing notice."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.demo import XvncDesktop
from tests.e2e.test_supervision_e2e import open_desktop_page, signed_in_page
from tests.functional.auth_helpers import AuthGateway, auth_gateway
from tests.functional.supervision_helpers import POLICIES, USERS

pytestmark = pytest.mark.e2e

# Pixels of an xterm background colour (ANSI 45 magenta: 205,0,205; 46 cyan: 0,205,205) in a canvas.
COUNT_COLOUR = """([selector, colour]) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !canvas.width) return -1;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const [r, g, b] = colour;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) < 30 && Math.abs(data[i + 1] - g) < 30 && Math.abs(data[i + 2] - b) < 30) count++;
  }
  return count;
}"""
MAGENTA, CYAN = (205, 0, 205), (0, 205, 205)


@pytest.fixture(scope="module")
def second_desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """bob's desktop: a bare screen (no window manager, no terminal)."""
    with XvncDesktop(tmp_path_factory.mktemp("xvnc-bob"), width=800, height=600, window_manager=False,
                     terminal=False) as xvnc:
        yield xvnc


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop, second_desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    targets = {"desk-02": {"protocol": "vnc", "host": "127.0.0.1", "port": second_desktop.port}}
    async with auth_gateway(tmp_path, {**POLICIES, "targets": targets}, desktop_port=desktop.port,
                            users=USERS) as gateway:
        yield gateway


async def type_coloured_line(page: Page, desktop: XvncDesktop, colour: int) -> None:
    """Type, on the operator's page, a command that fills lines of the xterm with an ANSI background colour."""
    await asyncio.to_thread(subprocess.run, ["xdotool", "search", "--name", "deskgate demo", "windowfocus"],
                            env=desktop.env, timeout=10, check=True)
    await page.keyboard.type(f"clear; printf '\\033[{colour}m%2000s\\033[0m\\n' ''", delay=2)
    await page.keyboard.press("Enter")


async def count(page: Page, selector: str, colour: tuple[int, int, int]) -> int:
    value: int = await page.evaluate(COUNT_COLOUR, [selector, list(colour)])
    return value


async def until_count(page: Page, selector: str, colour: tuple[int, int, int], above: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while await count(page, selector, colour) <= above:
            await asyncio.sleep(0.05)


async def test_the_wall_shows_every_operator_live_and_the_operators_know_while_it_is_open(
        browser: Browser, gateway: AuthGateway, desktop: XvncDesktop) -> None:
    alice = await signed_in_page(browser, gateway, "alice")
    await open_desktop_page(alice, gateway)
    bob = await signed_in_page(browser, gateway, "bob")
    await bob.goto(f"{gateway.url}/desktop/desk-02")
    await expect(bob.locator("#status")).to_have_text("Connected to desk-02", timeout=15000)
    await expect(alice.locator("#viewing")).to_be_hidden()

    supervisor = await signed_in_page(browser, gateway, "sam")
    await supervisor.click("#wall-link")
    await expect(supervisor).to_have_url(f"{gateway.url}/wall")
    await expect(supervisor.locator(".tile")).to_have_count(2)
    await expect(supervisor.locator(".tile .tile-user")).to_have_text(["alice", "bob"])
    await expect(supervisor.locator('.tile[data-user="bob"] .tile-target')).to_have_text("desk-02")
    alice_tile = '.tile[data-user="alice"] canvas'
    await until_count(supervisor, alice_tile, (32, 64, 160), 1000, timeout=15)  # the plaid background
    await until_count(supervisor, '.tile[data-user="bob"] canvas', (0, 0, 0), 1000, timeout=15)  # a bare screen
    await expect(alice.locator("#viewing")).to_be_visible()
    await expect(alice.locator("#viewers")).to_have_text("sam")
    await expect(bob.locator("#viewers")).to_have_text("sam")

    before = await count(supervisor, alice_tile, MAGENTA)
    await type_coloured_line(alice, desktop, 45)
    await until_count(supervisor, alice_tile, MAGENTA, before + 20000, timeout=10)  # a tile updates every 2 s

    await supervisor.close()  # leaving the wall ends its views
    await expect(alice.locator("#viewing")).to_be_hidden(timeout=5000)
    await expect(alice.locator("#viewing-ended")).to_have_text("sam stopped viewing your screen")
    await expect(bob.locator("#viewing")).to_be_hidden(timeout=5000)
    await alice.close()
    await bob.close()


async def test_the_live_view_shows_what_the_operator_types_within_a_second(
        browser: Browser, gateway: AuthGateway, desktop: XvncDesktop) -> None:
    alice = await signed_in_page(browser, gateway, "alice")
    await open_desktop_page(alice, gateway)
    supervisor = await signed_in_page(browser, gateway, "sam")
    await supervisor.goto(f"{gateway.url}/wall")
    await supervisor.locator('.tile[data-user="alice"]').click()
    await expect(supervisor.locator("#whose")).to_have_text("alice's screen on desk-01", timeout=10000)
    await expect(supervisor.locator(".view-only-label")).to_have_text("View only")
    screen = "#screen canvas"
    await until_count(supervisor, screen, (32, 64, 160), 1000, timeout=15)  # the plaid background is drawn
    await expect(alice.locator("#viewers")).to_have_text("sam")

    before = await count(supervisor, screen, CYAN)
    await type_coloured_line(alice, desktop, 46)
    typed = asyncio.get_running_loop().time()
    await until_count(supervisor, screen, CYAN, before + 20000, timeout=10)
    assert asyncio.get_running_loop().time() - typed < 1.0
    await supervisor.close()
    await expect(alice.locator("#viewing")).to_be_hidden(timeout=5000)
    await alice.close()
