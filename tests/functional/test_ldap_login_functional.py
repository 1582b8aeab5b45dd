"""Logging in to a real gateway against a real OpenLDAP slapd (StartTLS, test CA), beside local users."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pyotp
import pytest
from ldap.filter import escape_filter_chars

from auth.errors import LOGIN_REFUSED
from auth.names import COMPATIBILITY_FORM
from tests.functional.auth_helpers import (
    PASSWORD,
    AuthGateway,
    Clock,
    auth_gateway,
    cookie_session,
    deskgate,
    restore_logging,  # noqa: F401  (a fixture)
)
from tests.ldap_server import (
    GROUPS_BASE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USERS,
    SlapdServer,
    user_dn,
)

pytestmark = pytest.mark.functional

TIMEOUT = 1.0
MARGIN = 0.75


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[SlapdServer]:
    with SlapdServer(tmp_path) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, slapd: SlapdServer) -> dict[str, Any]:
    """The directory after the users file, with one local user (``ops_local``) beside it."""
    (tmp_path / "ldap.pass").write_text(SERVICE_PASSWORD + "\n")
    ldap = {"url": slapd.url, "start_tls": True, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
            "bind_password_file": "ldap.pass", "user_base": PEOPLE,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))", "group_base": GROUPS_BASE,
            "timeout": f"{int(TIMEOUT * 1000)}ms"}
    return {"auth": {"ldap": ldap, "order": ["local", "ldap"]}}


@pytest.fixture
async def gateway(tmp_path: Path, settings: dict[str, Any]) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(tmp_path, settings, users={"ops_local": ["operators"]}) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with cookie_session() as session:
        yield session


async def enroll(gateway: AuthGateway, http: aiohttp.ClientSession, user: str) -> str:
    """First login of a directory user: enroll an authenticator over the API; returns its secret."""
    first = await gateway.login(http, user, USERS[user], code="")
    assert first.status == 403 and (await first.json())["enroll"] == "/enroll"
    enrollment = await (await http.get(f"{gateway.url}/api/v1/totp/enrollment")).json()
    secret: str = enrollment["secret"]
    assert parse_qs(urlparse(enrollment["uri"]).query)["secret"] == [secret]
    confirmed = await http.post(f"{gateway.url}/api/v1/totp/enrollment", json={"totp": pyotp.TOTP(secret).now()},
                                headers={"X-CSRF-Token": enrollment["csrf_token"]})
    assert confirmed.status == 200, await confirmed.text()
    gateway.secrets[user] = secret
    return secret


async def test_a_user_in_an_allowed_group_enrolls_then_logs_in(gateway: AuthGateway,
                                                               http: aiohttp.ClientSession) -> None:
    await enroll(gateway, http, "alice")
    targets = await (await http.get(f"{gateway.url}/api/v1/targets")).json()
    assert (targets["user"], [target["name"] for target in targets["targets"]]) == ("alice", ["desk-01"])
    session = await (await http.get(f"{gateway.url}/api/v1/session")).json()
    assert session["groups"] == ["operators", "staff"]  # staff only through operators: nested
    async with cookie_session() as other_browser:
        assert (await gateway.login(other_browser, "alice", USERS["alice"], gateway.code("alice", 1))).status == 200
    events = [(e.action, e.user, e.outcome) for e in await gateway.audit() if e.action in ("login", "totp.enroll")]
    assert events == [("totp.enroll", "alice", "started"), ("login", "alice", "pending"),
                      ("totp.enroll", "alice", "success"), ("login", "alice", "success"),
                      ("login", "alice", "success")]


async def test_wrong_and_empty_passwords_are_refused_and_an_empty_one_never_binds(
        gateway: AuthGateway, http: aiohttp.ClientSession, slapd: SlapdServer) -> None:
    assert (await gateway.login(http, "alice", "not-her-password", code="")).status == 401
    before = len(slapd.log_lines())
    empty = await gateway.login(http, "alice", "", code="")
    assert empty.status == 401 and (await empty.json())["error"] == LOGIN_REFUSED
    assert (await gateway.login(http, "bob", USERS["bob"], code="")).status == 401  # a login after it, to the end
    lines = slapd.wait_for_log(lambda lines: user_dn("bob") in SlapdServer.bind_dns(lines[before:]))[before:]
    assert user_dn("alice") not in SlapdServer.bind_dns(lines) and "" not in SlapdServer.bind_dns(lines)


async def test_a_user_in_no_allowed_group_is_refused_before_enrolling(gateway: AuthGateway,
                                                                     http: aiohttp.ClientSession) -> None:
    refused = await gateway.login(http, "bob", USERS["bob"], code="")  # contractors: no policy names them
    wrong = await gateway.login(http, "carol", "not-her-password", code="")
    # Told exactly what a wrong password is told: anything else would confirm bob's password.
    assert (refused.status, await refused.json()) == (wrong.status, await wrong.json()) == (
        401, {"error": LOGIN_REFUSED})
    assert (await http.get(f"{gateway.url}/api/v1/totp/enrollment")).status == 401
    (event,) = [e for e in await gateway.audit() if e.user == "bob"]
    assert (event.action, event.outcome, event.reason) == ("login", "denied", "not in an allowed group")


async def test_a_filter_injection_as_the_username_matches_nobody(gateway: AuthGateway, http: aiohttp.ClientSession,
                                                                slapd: SlapdServer) -> None:
    before = len(slapd.log_lines())
    refused = await gateway.login(http, "*)(uid=*)", USERS["alice"], code="")
    assert refused.status == 401 and (await refused.json())["error"] == LOGIN_REFUSED
    lines = slapd.wait_for_log(lambda lines: any(" SEARCH RESULT " in line for line in lines[before:]))[before:]
    searched = [match.group(1).lower() for line in lines if (match := re.search(r' SRCH base=.* filter="(.*)"$', line))]
    assert f"(uid={escape_filter_chars('*)(uid=*)')})".lower() in searched[0]
    assert set(SlapdServer.bind_dns(lines)) == {SERVICE_DN}  # no user entry was tried


async def test_directory_stopped_mid_run_fails_closed_then_recovers(
        gateway: AuthGateway, http: aiohttp.ClientSession, slapd: SlapdServer) -> None:
    await enroll(gateway, http, "alice")
    slapd.stop()
    started = time.monotonic()
    down = await gateway.login(http, "alice", USERS["alice"], gateway.code("alice", 1))
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert down.status == 503 and "directory unavailable" in (await down.json())["error"]
    assert await gateway.metric(http, "deskgate_ldap_up") == 0
    event = (await gateway.audit())[-1]
    assert (event.action, event.user, event.outcome, event.reason) == (
        "login", "alice", "error", "directory unavailable")
    # Local users come first in auth.order and still log in.
    assert (await gateway.login(http, "ops_local", PASSWORD)).status == 200

    slapd.start()
    assert (await gateway.login(http, "alice", USERS["alice"], gateway.code("alice", 1))).status == 200
    assert await gateway.metric(http, "deskgate_ldap_up") == 1


@pytest.mark.usefixtures("restore_logging")
async def test_an_administrator_resets_a_directory_users_authenticator(
        gateway: AuthGateway, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]) -> None:
    old = await enroll(gateway, http, "alice")
    assert await deskgate("user", "totp-reset", "ALICE", "--config", str(gateway.config.path)) == 0
    out = capsys.readouterr().out
    assert "new TOTP secret for alice" in out
    new = parse_qs(urlparse(next(line for line in out.splitlines() if line.startswith("otpauth://"))).query)["secret"][0]
    assert new != old
    assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401  # her sessions ended with the reset
    assert (await gateway.login(http, "alice", USERS["alice"], pyotp.TOTP(old).at(time.time() + 30))).status == 401
    assert (await gateway.login(http, "alice", USERS["alice"], pyotp.TOTP(new).at(time.time() + 30))).status == 200
    assert await deskgate("user", "totp-reset", "nobody", "--config", str(gateway.config.path)) == 1
    assert "no user 'nobody' in the users file or the directory" in capsys.readouterr().err
    (reset,) = [e for e in await gateway.audit() if e.action == "user.totp_reset"]
    assert (reset.target, reset.source, reset.outcome) == ("alice", "cli", "success")


async def test_every_spelling_the_directory_folds_together_shares_one_throttle(
        tmp_path: Path, settings: dict[str, Any], slapd: SlapdServer) -> None:
    clock = Clock()  # the gateway's clock stands still: the backoff cannot run out between two requests
    async with auth_gateway(tmp_path, settings, clock=clock, users={}) as gateway, cookie_session() as http:
        # slapd reads ａｌｉｃｅ, ＡＬＩＣＥ and alİce as uid=alice: five guesses at one password.
        for spelling in ("ａｌｉｃｅ", "ＡＬＩＣＥ", "Alice", "alİce", "alice"):
            assert (await gateway.login(http, spelling, "not-her-password", code="")).status == 401, spelling
        for spelling in ("ＡＬＩＣＥ", "ａｌｉｃｅ", "alİce", "ALICE", "alice"):  # even with her password
            limited = await gateway.login(http, spelling, USERS["alice"], code="")
            assert (limited.status, limited.headers.get("Retry-After")) == (429, "1"), spelling
        clock.advance(1)
        typed = await gateway.login(http, "ａｌｉｃｅ", USERS["alice"], code="")
        assert typed.status == 401 and "full-width" in (await typed.json())["error"]
        clock.advance(2)
        assert (await gateway.login(http, "alice", USERS["alice"], code="")).status == 403  # enroll: she is in
        events = [(e.user, e.outcome, e.reason) for e in await gateway.audit() if e.action == "login"]
        assert events[:5] == [("ａｌｉｃｅ", "failure", COMPATIBILITY_FORM), ("ＡＬＩＣＥ", "failure", COMPATIBILITY_FORM),
                              ("Alice", "failure", "wrong username or password"),
                              ("alİce", "failure", "wrong username or password"),
                              ("alice", "failure", "wrong username or password")]
        assert [reason for _, _, reason in events[5:10]] == ["rate limited (user)"] * 5


async def test_a_directory_user_in_admin_groups_is_an_administrator_of_the_console(
        tmp_path: Path, settings: dict[str, Any], http: aiohttp.ClientSession) -> None:
    # "contractors" is in no policy: bob gets in as an administrator only, and sees the console.
    settings["auth"]["ldap"]["admin_groups"] = ["contractors"]
    async with auth_gateway(tmp_path, settings, users={"ops_local": ["operators"]}) as gateway:
        await enroll(gateway, http, "bob")
        session = await (await http.get(f"{gateway.url}/api/v1/session")).json()
        assert (session["groups"], session["admin"]) == (["contractors"], True)
        targets = await (await http.get(f"{gateway.url}/api/v1/targets")).json()
        assert (targets["targets"], targets["admin"]) == ([], True)
        users = await (await http.get(f"{gateway.url}/api/v1/admin/users")).json()
        assert [(user["name"], user["source"], user["admin"]) for user in users["users"]] == [
            ("bob", "ldap", True), ("ops_local", "local", False)]
        async with cookie_session() as alice:
            await enroll(gateway, alice, "alice")
            assert (await alice.get(f"{gateway.url}/api/v1/admin/users")).status == 403
