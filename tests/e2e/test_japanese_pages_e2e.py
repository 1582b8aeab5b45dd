"""A supervisor whose browser speaks Japanese (locale ja-JP): the login page, a refused sign-in, the
recordings and the player are in Japanese, with dates in the site's time zone; the language
switcher changes to English and back, and the choice is remembered.

The gateway and its recordings are those of ``test_recordings_ui_e2e`` (site time zone New York).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from auth.errors import LOGIN_REFUSED
from gateway.i18n import translator
from tests.e2e.test_recordings_ui_e2e import RECORDING_ID, RecordingsGateway, recordings_gateway, sign_in

pytestmark = pytest.mark.e2e
__all__ = ["recordings_gateway"]  # the fixture, imported for pytest


@pytest.fixture
async def japanese(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP",
                                        timezone_id="Asia/Tokyo")
    try:
        yield context
    finally:
        await context.close()


async def test_japanese_browser_gets_japanese_pages_and_can_switch_to_english_and_back(
    japanese: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await japanese.new_page()
    await page.goto(f"{recordings_gateway.url}/login")
    await expect(page).to_have_title("deskgate — ログイン")
    await expect(page.locator("html")).to_have_attribute("lang", "ja")
    await expect(page.locator("label[for=password]")).to_have_text("パスワード")
    await expect(page.locator("#sign-in")).to_have_text("ログイン")

    # A refusal, in Japanese.
    await page.fill("#username", "sam")
    await page.fill("#password", "not-the-password")
    await page.fill("#totp", "123456")
    await page.click("#sign-in")
    await expect(page.locator("#login-error")).to_have_text(translator("ja").gettext(LOGIN_REFUSED))

    # The switcher: English, remembered over a reload, then Japanese again.
    await page.get_by_role("link", name="English").click()
    await expect(page).to_have_url(f"{recordings_gateway.url}/login")
    await expect(page.locator("#sign-in")).to_have_text("Sign in")
    await page.reload()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.get_by_role("link", name="日本語").click()
    await expect(page.locator("#sign-in")).to_have_text("ログイン")

    # Recordings and the player, in Japanese; times in the site's zone (New York), not the browser's.
    await sign_in(page, recordings_gateway, "sam")
    await page.goto(f"{recordings_gateway.url}/recordings?user=alice")
    await expect(page.locator(".bar .title")).to_have_text("録画一覧")
    await expect(page.locator("#message")).to_have_text("3 件（新しい順）")
    await page.get_by_role("link", name="English").click()  # the search stays
    await expect(page.locator("#message")).to_have_text("3 recordings, newest first.")
    await expect(page).to_have_url(f"{recordings_gateway.url}/recordings?user=alice")
    await page.get_by_role("link", name="日本語").click()
    await expect(page.locator("#message")).to_have_text("3 件（新しい順）")
    await expect(page.locator("#results th").first).to_have_text("開始日時")
    await page.locator(f'tr[data-id="{RECORDING_ID}"] a').click()
    await expect(page.locator("#meta-started")).to_have_text("2026年11月24日 22:30:00")
    await expect(page.locator("#events .event").first).to_contain_text("セッション開始")
    await expect(page.locator("#events")).to_contain_text("リモートデスクトップへのクリップボードをブロック（42 バイト）")
    await expect(page.locator("#speeds > .muted")).to_have_text("再生速度")
    await expect(page.locator("#bookmark-add")).to_have_text("ブックマーク")
