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


async def test_portal_and_desktop_pages_and_their_refusals_in_japanese(
    japanese: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await japanese.new_page()
    await sign_in(page, recordings_gateway, "alice")
    await expect(page.locator("h1")).to_have_text("デスクトップ一覧")
    await expect(page.locator("#whoami")).to_have_text("alice さんとしてログイン中")
    await expect(page.locator("#portal-message")).to_have_text("使用するデスクトップを選んでください。")
    await expect(page.locator("#logout")).to_have_text("ログアウト")

    # A refusal the check foresees (the gateway's JSON error, translated by the gateway).
    await page.goto(f"{recordings_gateway.url}/desktop/desk-99")
    await expect(page.locator("#ended-title")).to_have_text("このデスクトップを開けません")
    await expect(page.locator("#ended-reason")).to_have_text("'desk-99' という名前のデスクトップはありません")
    await expect(page.locator("#reconnect")).to_have_text("もう一度試す")

    # A session the gateway ends (desk-01 listens nowhere): the close code, told in Japanese; the
    # gateway's English reason stays as the detail.
    await page.goto(f"{recordings_gateway.url}/desktop/desk-01")
    await expect(page.locator("#disconnect")).to_have_text("切断")
    await expect(page.locator("#ended-reason")).to_have_text(
        "現在このデスクトップに接続できません。しばらくしてからもう一度お試しいただくか、管理者にお問い合わせください",
        timeout=15000)
    assert "desk-01" in (await page.locator("#ended-reason").get_attribute("data-reason") or "")
