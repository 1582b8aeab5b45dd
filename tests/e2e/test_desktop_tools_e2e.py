"""The desktop page for a working day, in a real browser: a busy desktop's reason, the special-keys menu (its keys
reach the target through the gateway: they are in the recording), 1:1 and fit, the warning before leaving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.messages import KeyEvent, QEMUExtendedKeyEvent
from recorder.journal import JournalReader, RecordKind
from tests.conftest import GatewayUnderTest
from tests.e2e.test_operator_journey_e2e import sign_in

pytestmark = pytest.mark.e2e

CONTROL_L, ALT_L, DELETE = 0xFFE3, 0xFFE9, 0xFFFF


async def open_desk_01(browser: Browser, gateway: GatewayUnderTest, user: str) -> Page:
    """``user`` signed in, in a browser context of their own, on desk-01's page (not waiting for it to connect)."""
    context = await browser.new_context(viewport={"width": 800, "height": 600})
    page = await context.new_page()
    await sign_in(page, gateway, user)
    await page.goto(f"{gateway.url}/desktop/desk-01")
    return page


def finished(journal: Path) -> bool:
    reader = JournalReader(journal)
    for _ in reader:
        pass
    return reader.end is not None


def keys_recorded(recordings: Path) -> list[tuple[bool, int]]:
    """(down, keysym) of every key event in the one finished recording under ``recordings``."""
    (journal,) = recordings.rglob("*.dgj")
    reader = JournalReader(journal)
    framer = ClientMessageFramer()
    for record in reader:
        if record.kind == RecordKind.CLIENT_DATA:
            framer.receive_data(record.payload)
    assert reader.end is not None
    keys = []
    for event in framer.events_received():
        if isinstance(event, ClientMessageReceived):
            message = event.message
            if isinstance(message, KeyEvent):
                keys.append((message.down, message.key))
            elif isinstance(message, QEMUExtendedKeyEvent):
                keys.append((message.down, message.keysym))
    return keys


async def test_a_second_operator_reads_why_the_desktop_is_busy(browser: Browser, gateway: GatewayUnderTest) -> None:
    alice = await open_desk_01(browser, gateway, "alice")
    await expect(alice.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)
    sam = await open_desk_01(browser, gateway, "sam")  # his policy allows desk-01 too
    await expect(sam.locator("#ended")).to_be_visible(timeout=10000)
    await expect(sam.locator("#ended-title")).to_have_text("Cannot open this desktop")
    await expect(sam.locator("#ended-reason")).to_have_text(
        "desk-01 is in use by another operator; choose another desktop or try again later")
    await expect(alice.locator("#status")).to_have_text("Connected to desk-01")  # alice keeps working
    await sam.context.close()
    await alice.context.close()


async def test_special_keys_fit_and_the_warning_before_leaving(
    browser: Browser, gateway: GatewayUnderTest, tmp_path: Path
) -> None:
    page = await open_desk_01(browser, gateway, "alice")
    await expect(page.locator("#status")).to_have_text("Connected to desk-01", timeout=15000)
    assert (await page.request.get(f"{gateway.url}/static/favicon.svg")).ok
    assert await page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"

    canvas = page.locator("#screen canvas")
    fitted = await canvas.bounding_box()
    assert fitted is not None and fitted["width"] < 800  # the 1024×768 desktop fits the 800×600 window
    await page.click("#scale")
    await expect(page.locator("#scale")).to_have_text("Fit to window")
    async with asyncio.timeout(5):
        while (box := await canvas.bounding_box()) is None or box["width"] != 1024:
            await asyncio.sleep(0.05)
    await page.click("#scale")
    await expect(page.locator("#scale")).to_have_text("1:1")

    await page.click("#keys-button")
    await page.click("[data-keys=ctrl-alt-del]")
    await expect(page.locator("#keys-list")).to_be_hidden()

    async with page.expect_event("dialog", timeout=10000) as asked:  # leaving a connected desktop asks first
        await page.close(run_before_unload=True)
    dialog: Dialog = await asked.value
    assert dialog.type == "beforeunload"
    await dialog.accept()

    recordings = tmp_path / "recordings"
    async with asyncio.timeout(15):  # the session ends with the page, and its recording is finished
        while not (journals := list(recordings.rglob("*.dgj"))) or not finished(journals[0]):
            await asyncio.sleep(0.1)
    keys = keys_recorded(recordings)
    combo = [(True, CONTROL_L), (True, ALT_L), (True, DELETE), (False, DELETE), (False, ALT_L), (False, CONTROL_L)]
    assert any(keys[i:i + len(combo)] == combo for i in range(len(keys))), keys
