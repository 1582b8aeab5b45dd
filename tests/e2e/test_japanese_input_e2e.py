"""Japanese through the gateway in a real browser: text from the operator's input method reaches an X
client on the desktop byte for byte (and the recording's typed text shows it), and the clipboard
carries Japanese both ways where the policy allows it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from gateway.demo import XvncDesktop
from tests.conftest import GatewayUnderTest, start_test_gateway
from tests.e2e.test_operator_journey_e2e import sign_in
from tests.functional.unmask_helpers import unmasked_typed

pytestmark = pytest.mark.e2e

NAME_AND_ADDRESS = "山田太郎 東京都"


def on_desktop(desktop: XvncDesktop) -> dict[str, str]:
    return {**os.environ, **desktop.env, "LANG": "C.UTF-8"}


@contextmanager
def x_client(desktop: XvncDesktop, command: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env=on_desktop(desktop), stdout=subprocess.DEVNULL,  # type: ignore[call-overload]
                               stderr=subprocess.DEVNULL, **kwargs)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def open_desktop(browser: Browser, gateway: GatewayUnderTest) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await sign_in(page, gateway, "alice")
    await page.goto(f"{gateway.url}/desktop/desk-01")
    await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)
    return page


async def test_japanese_from_the_operators_input_method_reaches_the_desktop_and_the_typed_text(
    browser: Browser, gateway: GatewayUnderTest, desktop: XvncDesktop, tmp_path: Path
) -> None:
    received = tmp_path / "received.txt"
    page = await open_desktop(browser, gateway)
    # The desktop's side: a UTF-8 terminal whose shell writes what it is typed to a file.
    with x_client(desktop, ["xterm", "-u8", "-title", "jp-input", "-e", "sh", "-c", f"cat > {received}"]):
        search = ["xdotool", "search", "--sync", "--onlyvisible", "--name", "jp-input"]
        found = await asyncio.to_thread(subprocess.run, search, env=on_desktop(desktop), capture_output=True,
                                        text=True, timeout=15)
        await asyncio.to_thread(subprocess.run, ["xdotool", "windowactivate", "--sync", found.stdout.split()[0]],
                                env=on_desktop(desktop), timeout=15, check=True)
        await expect(page.locator("#text-input")).to_be_focused()
        # What an input method commits: text with no key behind it (Playwright's insertText is an `input` event).
        await page.keyboard.insert_text(NAME_AND_ADDRESS)
        await page.keyboard.press("Enter")  # an ordinary key: noVNC's own handling
        async with asyncio.timeout(20):
            while not received.exists() or received.read_bytes() != (NAME_AND_ADDRESS + "\n").encode():
                await asyncio.sleep(0.1)
    await page.click("#disconnect")
    await expect(page.locator("#ended")).to_be_visible()
    await page.close()

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as sam:
        assert (await gateway.login(sam, "sam")).status == 200
        async with asyncio.timeout(20):  # the recording is indexed once the session is sealed
            while True:
                async with sam.get(f"{gateway.url}/api/v1/recordings") as response:
                    recordings = (await response.json())["recordings"]
                if recordings:
                    break
                await asyncio.sleep(0.2)
        typed = await unmasked_typed(sam, gateway.url, recordings[0]["id"])  # typed text: only with a reason
    assert [entry["text"] for entry in typed["entries"]] == [NAME_AND_ADDRESS + "⏎"]


async def test_the_clipboard_carries_japanese_both_ways_when_the_policy_allows_it(
    browser: Browser, desktop: XvncDesktop, tmp_path: Path
) -> None:
    gateway = await start_test_gateway(tmp_path, desktop.port, clipboard="both")
    try:
        page = await open_desktop(browser, gateway)
        await page.click("#clipboard-button")
        await expect(page.locator("#clipboard-state")).to_have_text(
            "Paste into the desktop, or copy what the desktop copied.")
        # Copied on the desktop (UTF-8), shown on the page.
        copied = "顧客番号 4711: 山田太郎"
        with x_client(desktop, ["xclip", "-quiet", "-selection", "clipboard"], stdin=subprocess.PIPE) as xclip:
            assert xclip.stdin is not None
            xclip.stdin.write(copied.encode())
            xclip.stdin.close()
            await expect(page.locator("#clipboard-text")).to_have_value(copied, timeout=15000)
        # Pasted from the page, on the desktop's clipboard.
        pasted = "東京都千代田区丸の内1-1"
        await page.fill("#clipboard-text", pasted)
        await page.click("#clipboard-paste")
        async with asyncio.timeout(15):
            while True:
                # In a thread: the gateway, in this process, must forward the desktop's request meanwhile.
                out = (await asyncio.to_thread(subprocess.run, ["xclip", "-o", "-selection", "clipboard"],
                                               env=on_desktop(desktop), capture_output=True, timeout=10)).stdout
                if out == pasted.encode():
                    break
                await asyncio.sleep(0.2)
        await page.close()
    finally:
        await gateway.gateway.stop()
