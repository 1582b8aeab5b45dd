"""The admin console's APIs and a user's own password change, on a real in-process gateway.

Administrators only (403 and an audit event for anyone else), the CSRF token on every change,
each change audited with the administrator as actor and the changed user as target (so it is
in ``deskgate audit list --user NAME``), and the read-only views: effective access, targets
with reachability and who is on them, policies with where each was written.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from auth.local import LocalUserStore
from gateway.audit import AuditLog
from gateway.web.keys import AUDIT, STORE
from tests.functional.auth_helpers import PASSWORD, AuthGateway, Clock, auth_gateway, cookie_session

pytestmark = pytest.mark.functional

ADMIN = "root_"
NEW_PASSWORD = "a-brand-new-passphrase"


async def with_admin(gateway: AuthGateway) -> None:
    """Add the administrator ``root_`` (in no group) to the running gateway's users file."""
    assert gateway.config.auth.local is not None
    store = LocalUserStore(gateway.config.auth.local.users_file)
    gateway.secrets[ADMIN] = await asyncio.to_thread(store.add_user, ADMIN, PASSWORD, (), True)


async def sign_in(gateway: AuthGateway, http: aiohttp.ClientSession, user: str, password: str = PASSWORD) -> str:
    response = await gateway.login(http, user, password)
    assert response.status == 200, await response.text()
    token: str = (await response.json())["csrf_token"]
    return token


async def call(gateway: AuthGateway, http: aiohttp.ClientSession, method: str, path: str, token: str | None,
               body: Any = None) -> tuple[int, Any]:
    headers = {"Origin": gateway.url, **({"X-CSRF-Token": token} if token is not None else {})}
    response = await http.request(method, f"{gateway.url}{path}", json=body, headers=headers)
    return response.status, await response.json()


async def history(gateway: AuthGateway, user: str) -> list[tuple[str | None, str, str | None, str]]:
    """What ``deskgate audit list --user USER`` lists: (actor, action, target, outcome)."""
    events = await AuditLog(gateway.gateway.app[STORE]).list(user=user)
    return [(event.user, event.action, event.target, event.outcome) for event in events]


async def test_non_admins_are_refused_everywhere_and_audited(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        token = await sign_in(gateway, http, "alice")
        page = await http.get(f"{gateway.url}/admin")
        assert page.status == 403 and "for administrators" in await page.text()
        for method, path in (("GET", "/api/v1/admin/users"), ("POST", "/api/v1/admin/users/alice/disable"),
                             ("PUT", "/api/v1/admin/users/alice/groups"), ("GET", "/api/v1/admin/targets"),
                             ("GET", "/api/v1/admin/access?user=alice"), ("GET", "/api/v1/admin/policies")):
            status, body = await call(gateway, http, method, path, token, {"groups": ["admins"]})
            assert (status, body) == (403, {"error": "the admin console is for administrators; ask one if you "
                                                     "need a change"}), path
        denied = [event for event in await gateway.audit() if event.action == "admin.denied"]
        assert len(denied) == 7 and {event.user for event in denied} == {"alice"}
        assert await gateway.metric(http, "deskgate_admin_denied_total") == 7
        assert (await http.get(f"{gateway.url}/admin", allow_redirects=False)).status == 403
    async with cookie_session() as anonymous:
        async with auth_gateway(tmp_path / "two") as gateway:
            assert (await anonymous.get(f"{gateway.url}/admin", allow_redirects=False)).headers["Location"] == "/login"


async def test_admin_changes_need_the_csrf_token_and_each_is_in_the_users_history(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        await with_admin(gateway)
        token = await sign_in(gateway, http, ADMIN)
        assert (await http.get(f"{gateway.url}/admin")).status == 200
        status, _ = await call(gateway, http, "POST", "/api/v1/admin/users", None,
                               {"name": "carol", "password": PASSWORD})
        assert status == 403  # no token

        status, added = await call(gateway, http, "POST", "/api/v1/admin/users", token,
                                   {"name": "carol", "password": PASSWORD, "groups": ["contractors"]})
        assert status == 200 and added["uri"].startswith("otpauth://") and added["qr"].startswith("data:image/svg")
        gateway.secrets["carol"] = added["secret"]
        async with cookie_session() as carol:  # the key shown once is the one that signs carol in
            await sign_in(gateway, carol, "carol")
            assert (await carol.get(f"{gateway.url}/api/v1/session")).status == 200
            status, reset = await call(gateway, http, "POST", "/api/v1/admin/users/carol/totp-reset", token)
            assert status == 200 and reset["secret"] != added["secret"]
            assert (await carol.get(f"{gateway.url}/api/v1/session")).status == 401  # signed out by the reset
        status, changed = await call(gateway, http, "PUT", "/api/v1/admin/users/carol/groups", token,
                                     {"groups": ["operators"]})
        assert (status, changed) == (200, {"user": "carol", "groups": ["operators"]})
        assert (await call(gateway, http, "POST", "/api/v1/admin/users/carol/password", token,
                           {"password": NEW_PASSWORD}))[0] == 200
        assert (await call(gateway, http, "POST", "/api/v1/admin/users/carol/disable", token, {"reason": "left"}))[0] \
            == 200
        assert (await call(gateway, http, "POST", "/api/v1/admin/users/carol/enable", token))[0] == 200
        status, refused = await call(gateway, http, "POST", f"/api/v1/admin/users/{ADMIN}/disable", token)
        assert status == 400 and "last administrator" in refused["error"]
        status, short = await call(gateway, http, "POST", "/api/v1/admin/users/carol/password", token,
                                   {"password": "short"})
        assert status == 400 and "at least 12 characters" in short["error"]
        assert (await call(gateway, http, "PUT", "/api/v1/admin/users/nobody/groups", token, {"groups": []}))[0] == 404

        status, listing = await call(gateway, http, "GET", "/api/v1/admin/users?q=CAR", token)
        assert status == 200 and [user["name"] for user in listing["users"]] == ["carol"]
        assert listing["users"][0] | {"last_login": None} == {
            "name": "carol", "source": "local", "groups": ["operators"], "admin": False, "disabled": False,
            "totp_enrolled": True, "last_login": None, "display_name": None}
        carol_history = [entry for entry in await history(gateway, "carol") if entry[0] == ADMIN]
        assert carol_history == [
            (ADMIN, "user.add", "carol", "success"), (ADMIN, "user.totp_reset", "carol", "success"),
            (ADMIN, "user.groups", "carol", "success"), (ADMIN, "user.passwd", "carol", "success"),
            (ADMIN, "user.disable", "carol", "success"), (ADMIN, "user.enable", "carol", "success"),
            (ADMIN, "user.passwd", "carol", "failure")]
        assert (ADMIN, "user.disable", ADMIN, "failure") in await history(gateway, ADMIN)
        events = await gateway.audit()
        assert {str(event.source) for event in events if event.user == ADMIN and event.action.startswith("user.")} \
            == {"127.0.0.1"}
        assert await gateway.metric(http, 'deskgate_admin_actions_total{action="user.groups"}') == 1


async def test_access_view_explains_each_target_and_follows_group_changes(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        await with_admin(gateway)
        token = await sign_in(gateway, http, ADMIN)
        status, before = await call(gateway, http, "GET", "/api/v1/admin/access?user=mallory&from=127.0.0.1", token)
        assert status == 200 and before["groups"] == ["contractors"]
        assert [(t["target"], t["allowed"]) for t in before["targets"]] == [("desk-01", False)]
        assert before["targets"][0]["explain"] == [
            "1. policy 'operators': no match: mallory is not in any of groups operators, staff",
            "no policy matches: deny"]
        await call(gateway, http, "PUT", "/api/v1/admin/users/mallory/groups", token, {"groups": ["staff"]})
        _, after = await call(gateway, http, "GET", "/api/v1/admin/access?user=mallory&from=127.0.0.1", token)
        assert after["targets"][0]["allowed"] is True
        assert after["targets"][0]["reason"] == "policy 'operators' allows mallory from 127.0.0.1 to desk-01"
        _, outside = await call(gateway, http, "GET", "/api/v1/admin/access?user=mallory&from=192.0.2.7", token)
        assert outside["targets"][0]["allowed"] is False and "not in network.allow" in outside["targets"][0]["reason"]
        assert (await call(gateway, http, "GET", "/api/v1/admin/access?user=ghost", token))[0] == 404
        assert (await call(gateway, http, "GET", "/api/v1/admin/access?user=mallory&from=nope", token))[0] == 400


async def test_targets_show_reachability_and_policies_where_they_were_written(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        changes = {"targets": {"desk-02": {"protocol": "vnc", "host": "127.0.0.1", "port": closed.getsockname()[1]}}}
        try:
            async with auth_gateway(tmp_path, changes, desktop_port=port) as gateway, cookie_session() as http:
                await with_admin(gateway)
                token = await sign_in(gateway, http, ADMIN)
                status, view = await call(gateway, http, "GET", "/api/v1/admin/targets", token)
                assert status == 200
                assert [(t["name"], t["reachable"], t["sessions"]) for t in view["targets"]] == [
                    ("desk-01", True, []), ("desk-02", False, [])]
                assert "refused" in view["targets"][1]["problem"].lower()

                _, policies = await call(gateway, http, "GET", "/api/v1/admin/policies", token)
                config_path = gateway.config.path
                line = next(number for number, text in enumerate(config_path.read_text().splitlines(), start=1)
                            if "name: operators" in text)
                assert policies["policies"][0]["origin"] == f"{config_path}:{line}"
                assert policies["policies"][0]["groups"] == ["operators", "staff"]
                assert policies["last_reload"] is None
                await gateway.gateway.app[AUDIT].record("config.reload", user=None, source="signal", outcome="error",
                                                        error="deskgate.yaml:3: policies[0].groups: is empty")
                _, policies = await call(gateway, http, "GET", "/api/v1/admin/policies", token)
                assert policies["last_reload"]["outcome"] == "error"
                assert policies["last_reload"]["error"] == "deskgate.yaml:3: policies[0].groups: is empty"
        finally:
            closed.close()


async def test_own_password_change_ends_the_other_sessions_only(tmp_path: Path) -> None:
    clock = Clock()
    async with auth_gateway(tmp_path, clock=clock) as gateway, cookie_session() as http, cookie_session() as other:
        token = await sign_in(gateway, http, "alice")
        clock.advance(30)  # a TOTP code signs in once: the next sign-in needs the next one
        await sign_in(gateway, other, "alice")

        def change(current: str, new: str, repeat: str | None = None) -> dict[str, str]:
            return {"current": current, "new": new, "repeat": new if repeat is None else repeat}

        assert (await call(gateway, http, "POST", "/api/v1/password", None, change(PASSWORD, NEW_PASSWORD)))[0] == 403
        status, wrong = await call(gateway, http, "POST", "/api/v1/password", token, change("nope", NEW_PASSWORD))
        assert (status, wrong) == (403, {"error": "the current password is wrong"})
        status, differ = await call(gateway, http, "POST", "/api/v1/password", token,
                                    change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x"))
        assert status == 400 and "differ" in differ["error"]
        status, short = await call(gateway, http, "POST", "/api/v1/password", token, change(PASSWORD, "short"))
        assert status == 400 and "at least 12" in short["error"]

        status, done = await call(gateway, http, "POST", "/api/v1/password", token, change(PASSWORD, NEW_PASSWORD))
        assert (status, done) == (200, {"ok": True, "web_sessions_ended": 1})
        assert (await http.get(f"{gateway.url}/api/v1/session")).status == 200
        assert (await other.get(f"{gateway.url}/api/v1/session")).status == 401
        clock.advance(30)
        async with cookie_session() as again:
            assert (await gateway.login(again, "alice", PASSWORD)).status == 401
            await sign_in(gateway, again, "alice", password=NEW_PASSWORD)
        assert [entry for entry in await history(gateway, "alice") if entry[1] == "user.passwd"] == [
            ("alice", "user.passwd", "alice", "failure"), ("alice", "user.passwd", "alice", "success")]
        assert await gateway.metric(http, 'deskgate_password_changes_total{result="ok"}') == 1
