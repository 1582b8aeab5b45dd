"""An administrator's working session in the admin console, in a real browser, checked against the audit CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from auth.local import LocalUserStore
from tests.e2e.test_enrollment_e2e import scan
from tests.functional.auth_helpers import PASSWORD, ROOT, AuthGateway, auth_gateway

pytestmark = pytest.mark.e2e

ADMIN = "root_"


async def sign_in(page: Page, gateway: AuthGateway, user: str) -> None:
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", gateway.code(user))
    await page.click("#sign-in")


def audit_list(gateway: AuthGateway, user: str) -> list[dict[str, object]]:
    """``deskgate audit list --user USER --json``, the command an auditor runs."""
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "list", "--user", user, "--json",
                           "--config", str(gateway.config.path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_admin_adds_a_user_resets_totp_changes_groups_and_sees_access_all_audited(
        browser: Browser, tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, users={}) as gateway:
        assert gateway.config.auth.local is not None
        users = LocalUserStore(gateway.config.auth.local.users_file)
        gateway.secrets[ADMIN] = await asyncio.to_thread(users.add_user, ADMIN, PASSWORD, (), True)
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

        # An administrator in no group: the portal leads to the console, not to "ask your administrator".
        await sign_in(page, gateway, ADMIN)
        await expect(page.locator("#admin-hint")).to_be_visible()
        await expect(page.locator("#portal-message")).not_to_contain_text("Ask your administrator")
        await page.click("#admin-hint a")
        await expect(page).to_have_url(f"{gateway.url}/admin")

        await page.fill("#add-name", "carol")
        await page.fill("#add-password", PASSWORD)
        await page.fill("#add-groups", "contractors")
        await page.click("#add-submit")
        await expect(page.locator("#enroll-user")).to_have_text("carol")
        await page.wait_for_function("() => document.getElementById('enroll-qr').naturalWidth > 0")
        await page.locator("#enroll-qr").screenshot(path=str(tmp_path / "qr.png"))
        first_secret = (await page.locator("#enroll-secret").text_content() or "")
        assert f"secret={first_secret}" in scan(tmp_path / "qr.png")
        carol = page.locator('#user-table tr[data-user="carol"]')
        await expect(carol).to_contain_text("contractors")
        await page.click("#enroll-done")

        await carol.locator('button[data-action="totp-reset"]').click()  # confirmed by the dialog handler
        await expect(page.locator("#enroll-user")).to_have_text("carol")
        new_secret = await page.locator("#enroll-secret").text_content() or ""
        assert new_secret and new_secret != first_secret
        await page.click("#enroll-done")

        await carol.locator('button[data-action="access"]').click()
        desk = page.locator('#access-table tr[data-target="desk-01"]')
        await expect(desk).to_contain_text("denied")
        await expect(desk).to_contain_text("carol is not in any of groups operators, staff")

        await carol.locator('button[data-action="groups"]').click()
        await page.fill("#edit-value", "operators")
        await page.click("#edit-confirm")
        await expect(page.locator("#message")).to_have_text("carol is now in operators.")
        await expect(carol).to_contain_text("operators")
        await carol.locator('button[data-action="access"]').click()
        await expect(desk).to_contain_text("allowed")
        await expect(desk).to_contain_text("policy 'operators' allows carol from 127.0.0.1 to desk-01")
        await expect(page.locator('#target-table tr[data-target="desk-01"]')).to_be_visible()
        await expect(page.locator("#reload-status")).to_contain_text("No reload since this gateway started.")
        assert problems == []
        await page.close()

        # The new key is the one that works, with the new groups.
        gateway.secrets["carol"] = new_secret
        assert pyotp.TOTP(new_secret).now() == gateway.code("carol")
        events = [(e["user"], e["action"], e["target"], e["outcome"]) for e in audit_list(gateway, "carol")]
        assert events == [(ADMIN, "user.add", "carol", "success"), (ADMIN, "user.totp_reset", "carol", "success"),
                          (ADMIN, "user.groups", "carol", "success")]
