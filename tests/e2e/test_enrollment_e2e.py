"""A directory user's first sign-in, in a real browser: scan the QR code, confirm a code, reach the portal."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from auth.errors import LOGIN_REFUSED
from tests.functional.auth_helpers import AuthGateway, auth_gateway
from tests.ldap_server import (
    GROUPS_BASE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USERS,
    SlapdServer,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[AuthGateway]:
    with SlapdServer(tmp_path) as slapd:
        (tmp_path / "ldap.pass").write_text(SERVICE_PASSWORD + "\n")
        ldap = {"url": slapd.url, "start_tls": True, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
                "bind_password_file": "ldap.pass", "user_base": PEOPLE, "group_base": GROUPS_BASE}
        async with auth_gateway(tmp_path, {"auth": {"ldap": ldap}}, users={}) as running:
            yield running


def scan(png: Path) -> str:
    """What a phone's camera reads from the QR code: zbarimg on the browser's screenshot of it."""
    found = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


async def sign_in(page: Page, gateway: AuthGateway, user: str, code: str = "") -> None:
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", user)
    await page.fill("#password", USERS[user])
    await page.fill("#totp", code)
    await page.click("#sign-in")


async def test_first_sign_in_enrolls_an_authenticator_from_the_qr_code(
        browser: Browser, gateway: AuthGateway, tmp_path: Path) -> None:
    page = await browser.new_page()
    problems: list[str] = []  # script errors and CSP violations
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)

    await sign_in(page, gateway, "alice", code="000000")  # no authenticator yet: any code, or none
    await expect(page).to_have_url(f"{gateway.url}/enroll")
    await expect(page.locator("#enroll-for")).to_have_text("Account: alice")
    qr = page.locator("#qr")
    await expect(qr).to_be_visible()
    await page.wait_for_function("() => document.getElementById('qr').naturalWidth > 0")
    await qr.screenshot(path=str(tmp_path / "qr.png"))
    uri = scan(tmp_path / "qr.png")
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc, parsed.path) == ("otpauth", "totp", "/deskgate:alice")
    secret = parse_qs(parsed.query)["secret"][0]
    shown = (await page.locator("#secret").text_content() or "").replace(" ", "")
    assert shown == secret  # the same key, for typing by hand

    totp = pyotp.TOTP(secret)
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in {totp.at(time.time() + d) for d in (-30, 0, 30)})
    await page.fill("#code", wrong)
    await page.click("#confirm")
    await expect(page.locator("#enroll-error")).to_contain_text("wrong or expired authenticator code")
    await page.fill("#code", totp.now())
    await page.click("#confirm")
    await expect(page).to_have_url(f"{gateway.url}/")
    await expect(page.locator("#whoami")).to_have_text("Signed in as 山田 花子 (alice)")  # the directory's displayName
    await expect(page.locator('a[data-target="desk-01"]')).to_be_visible()

    await page.click("#logout")
    await expect(page).to_have_url(f"{gateway.url}/login")
    # A wrong code now that she is enrolled reads like a wrong password: the page asks for all three again.
    valid = {totp.at(time.time() + d) for d in (-30, 0, 30, 60)}
    await sign_in(page, gateway, "alice", code=next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in valid))
    await expect(page.locator("#login-error")).to_have_text(LOGIN_REFUSED)
    await expect(page.locator("#password")).to_have_value("")
    await expect(page.locator("#password")).to_be_focused()
    await expect(page).to_have_url(f"{gateway.url}/login")
    await sign_in(page, gateway, "alice", code=totp.at(time.time() + 30))  # the next code: this one is spent
    await expect(page).to_have_url(f"{gateway.url}/")
    assert problems == []
    await page.close()
