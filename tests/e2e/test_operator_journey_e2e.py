"""An operator's day, in a real browser: sign in with TOTP, open the desktop, work in the terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, Page, expect

from gateway.demo import XvncDesktop
from tests.conftest import GatewayUnderTest, start_test_gateway
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.e2e

# xterm's colour 2 (ANSI green background) is rgb(0, 205, 0).
COUNT_GREEN_PIXELS = """() => {
  const canvas = document.querySelector('#screen canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let green = 0, lit = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 40 && data[i + 1] > 180 && data[i + 2] < 40) green++;
    if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
  }
  return [green, lit, canvas.width, canvas.height];
}"""


def focused_window_name(desktop: XvncDesktop) -> str:
    focused = subprocess.run(["xdotool", "getwindowfocus", "getwindowname"], env={**os.environ, **desktop.env},
                             capture_output=True, text=True, timeout=10)
    return focused.stdout.strip()


async def sign_in(page: Page, gateway: GatewayUnderTest, name: str) -> None:
    user = gateway.users[name]
    await page.goto(f"{gateway.url}/")
    await expect(page).to_have_url(f"{gateway.url}/login")
    await page.fill("#username", user.name)
    await page.fill("#password", user.password)
    await page.fill("#totp", user.code())
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{gateway.url}/")


async def test_operator_signs_in_and_works_on_the_remote_desktop(
    browser: Browser, gateway: GatewayUnderTest, desktop: XvncDesktop, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await sign_in(page, gateway, "alice")

    await page.click('a[data-target="desk-01"]')
    await expect(page).to_have_url(f"{gateway.url}/desktop/desk-01")
    await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)

    canvas = page.locator("#screen canvas")
    await expect(canvas).to_be_visible()
    async with asyncio.timeout(15):  # the remote screen (plaid background, xterm) is drawn
        while True:
            green, lit, width, height = await page.evaluate(COUNT_GREEN_PIXELS)
            if lit > width * height // 2:
                break
            await asyncio.sleep(0.1)
    assert (width, height) == (1024, 768)
    assert green == 0

    # Click into the xterm (top-left of the remote screen) to focus it, then type a command.
    box = await canvas.bounding_box()
    assert box is not None
    scale = box["width"] / width
    async with asyncio.timeout(20):  # click until the window manager has given the xterm the focus
        while True:
            await page.mouse.click(box["x"] + 200 * scale, box["y"] + 120 * scale)
            await asyncio.sleep(0.3)
            if focused_window_name(desktop) == "deskgate demo":  # the xterm's title
                break
    marker = tmp_path / "typed-through-the-gateway"
    command = f"echo deskgate-$((6*7)) > {marker}; printf '\\033[42m%900s\\033[0m\\n' ''"
    await page.keyboard.type(command, delay=5)
    await page.keyboard.press("Enter")

    async with asyncio.timeout(30):
        while not (marker.exists() and marker.read_text() == "deskgate-42\n"):
            await asyncio.sleep(0.1)
    # The command's output appears on the remote display, and the browser shows it.
    screenshot = read_xwd(take_screenshot(desktop))
    remote_green = int(np.count_nonzero((screenshot[..., 0] < 40) & (screenshot[..., 1] > 180)
                                        & (screenshot[..., 2] < 40)))
    assert remote_green > 900 * 20
    async with asyncio.timeout(10):
        while (await page.evaluate(COUNT_GREEN_PIXELS))[0] < remote_green * 0.9:
            await asyncio.sleep(0.1)

    await page.click("#disconnect")
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator("#ended-reason")).to_contain_text("disconnected")
    await page.close()

    await supervisor_reviews_the_session(browser, gateway)


async def supervisor_reviews_the_session(browser: Browser, gateway: GatewayUnderTest) -> None:
    """The supervisor finds alice's session by user and day, plays it, and jumps to its events."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await sign_in(page, gateway, "sam")
    await page.click("#recordings-link")
    today = date.today().isoformat()  # the browser and the machine share the time zone
    await page.fill("#f-user", "alice")
    await page.fill("#f-from", today)
    await page.fill("#f-to", today)
    await page.click("#search-button")
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("alice")
    await rows.first.locator("a").click()
    await expect(page.locator("#meta-user")).to_have_text("alice")
    await expect(page.locator("#meta-end-reason")).to_contain_text("closed")

    video = page.locator("#video")
    async with asyncio.timeout(90):  # the video is rendered in a worker process after the session
        while not await video.is_visible():
            await asyncio.sleep(0.5)
            await page.reload()
    await page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=10000)
    duration = float(await page.evaluate("document.getElementById('video').duration"))
    assert duration > 1  # the operator worked for seconds, not a single frame
    types = await page.locator("#timeline .event").evaluate_all("(markers) => markers.map((m) => m.dataset.type)")
    assert types[0] == "session_start" and types[-1] == "session_end", types

    end_marker = page.locator('#timeline .event[data-type="session_end"]')
    end_t = float(await end_marker.get_attribute("data-t") or "nan")
    await end_marker.click()
    await page.wait_for_function(
        "(t) => { const v = document.getElementById('video'); return !v.seeking && Math.abs(v.currentTime - t) < 0.5; }",
        arg=min(end_t, duration), timeout=5000)
    await page.click('#timeline .event[data-type="session_start"]')
    await page.wait_for_function("() => { const v = document.getElementById('video'); return !v.seeking && v.currentTime < 0.5; }",
                                 timeout=5000)
    await page.click("#speed-8")
    await page.evaluate("document.getElementById('video').play()")
    await page.wait_for_function("() => document.getElementById('video').currentTime > 1", timeout=10000)
    await page.close()


async def test_wrong_totp_is_shown_on_the_login_page(browser: Browser, gateway: GatewayUnderTest) -> None:
    page = await browser.new_page()
    user = gateway.users["alice"]
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", user.name)
    await page.fill("#password", user.password)
    await page.fill("#totp", user.wrong_code())
    await page.click("#sign-in")
    await expect(page.locator("#login-error")).to_contain_text("code")
    await expect(page).to_have_url(f"{gateway.url}/login")
    await page.close()


async def test_the_operator_is_told_why_a_desktop_cannot_be_opened(
    browser: Browser, gateway: GatewayUnderTest
) -> None:
    page = await browser.new_page()
    await sign_in(page, gateway, "alice")
    await page.click('a[data-target="desk-02"]')  # defined, allowed, but nothing listens there
    await expect(page.locator("#ended")).to_be_visible(timeout=15000)
    await expect(page.locator("#ended-reason")).to_contain_text("desk-02 is unreachable")
    await page.close()


async def test_an_idle_operator_is_warned_then_logged_out(
    browser: Browser, desktop: XvncDesktop, tmp_path: Path
) -> None:
    gateway = await start_test_gateway(tmp_path, desktop.port, idle_timeout="5s")  # warned 1 s before
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, gateway, "alice")
        await page.goto(f"{gateway.url}/desktop/desk-01")
        await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)
        warning = page.locator("#idle-warning")
        await expect(warning).to_be_visible(timeout=8000)
        await expect(warning).to_contain_text("this session ends in")
        await page.mouse.move(400, 400)  # input: the warning goes, and the gateway's clock restarts too
        await page.mouse.move(420, 410)
        await expect(warning).to_be_hidden()
        await expect(page.locator("#status")).to_have_text("Connected to desk-01")
        await expect(page.locator("#ended")).to_be_visible(timeout=10000)
        await expect(page.locator("#ended-reason")).to_contain_text("no input for 5 s: you were signed out")
        await expect(warning).to_be_hidden()
        await page.click("#reconnect")  # the idle logout ended the sign-in too: password and TOTP again
        await expect(page).to_have_url(f"{gateway.url}/login")
        await page.close()
    finally:
        await gateway.gateway.stop()
