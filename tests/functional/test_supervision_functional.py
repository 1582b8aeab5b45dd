"""Supervisors and live sessions on a real gateway with a real Xvnc desktop: listing, ending with a reason,
who may do it, and the notice channel to the operator's page.

The same across two gateway processes on one PostgreSQL is in ``test_supervision_postgres_functional.py``.
"""

from __future__ import annotations

import asyncio
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.notices import ViewingEnded, ViewingStarted
from gateway.session_watch import CloseCode
from gateway.web import notice_routes
from gateway.web.keys import NOTICES
from tests.functional.auth_helpers import AuthGateway, auth_gateway, cookie_session
from tests.functional.supervision_helpers import POLICIES, USERS, EventStream, closed_with, open_desktop

pytestmark = pytest.mark.functional

REASON = "please join the team meeting in room 3"


async def sign_in(gateway: AuthGateway, http: aiohttp.ClientSession, user: str, steps: int = 0) -> str:
    """Sign ``user`` in; returns the session's CSRF token."""
    response = await gateway.login(http, user, code=gateway.code(user, steps))
    assert response.status == 200, await response.text()
    token: str = (await response.json())["csrf_token"]
    return token


async def listed(gateway: AuthGateway, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    response = await http.get(f"{gateway.url}/api/v1/sessions")
    assert response.status == 200, await response.text()
    sessions: list[dict[str, Any]] = (await response.json())["sessions"]
    return sessions


async def end(gateway: AuthGateway, http: aiohttp.ClientSession, token: str, session_id: str,
              body: Any = None, **headers: str) -> aiohttp.ClientResponse:
    return await http.delete(f"{gateway.url}/api/v1/sessions/{session_id}",
                             json={"reason": REASON} if body is None else body,
                             headers={"Origin": gateway.url, "X-CSRF-Token": token, **headers})


async def until(condition: Any, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await condition()):
            await asyncio.sleep(0.1)
    return value


async def test_a_supervisor_ends_an_operators_session_and_the_operator_learns_who_and_why(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, POLICIES, desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as operator, cookie_session() as supervisor:
        await sign_in(gateway, operator, "alice")
        notices = await EventStream.open(operator, gateway.url)
        hello = await notices.next()
        assert hello.event == "hello" and hello.data["user"] == "alice" and abs(hello.data["now"] - time.time()) < 5
        client = await open_desktop(operator, gateway.url)
        token = await sign_in(gateway, supervisor, "sam")

        (session,) = await listed(gateway, supervisor)
        assert session == {
            "id": session["id"], "user": "alice", "source": "127.0.0.1", "target": "desk-01", "protocol": "vnc",
            "started": session["started"], "idle_seconds": session["idle_seconds"], "viewers": 0,
            "node": platform.node(), "groups": ["operators"], "ending": False, "display_name": None,
        }
        assert abs(datetime.fromisoformat(session["started"]).timestamp() - time.time()) < 60
        assert 0 <= session["idle_seconds"] < 60

        response = await end(gateway, supervisor, token, session["id"])
        assert (response.status, await response.json()) == (202, {"id": session["id"], "user": "alice",
                                                                   "status": "ending"})
        closed = await closed_with(client, within=2)
        assert (closed.code, closed.reason) == (CloseCode.TERMINATED, f"ended by sam: {REASON}")
        notice = await notices.next_notice()
        assert (notice["type"], notice["by"], notice["reason"], notice["target"], notice["replay"]) == \
            ("session_ended", "sam", REASON, "desk-01", False)
        assert await until(lambda: _empty(listed(gateway, supervisor)))
        notices.close()

        # The supervisor may play the recording (watch: operators); its journal says who ended it and why.
        recording = await until(lambda: _first_recording(gateway, supervisor))
        events = (await (await supervisor.get(f"{gateway.url}/api/v1/recordings/{recording['id']}/events")).json())
        assert recording["groups"] == ["operators"]
        assert [(e["type"], e.get("by"), e.get("reason")) for e in events["events"] if e["type"] == "ended_by"] == [
            ("ended_by", "sam", REASON)]
        assert recording["end_reason"] == f"ended by sam: {REASON}"

    audit = [(e.action, e.user, e.target, e.outcome, e.reason) for e in await gateway.audit()
             if e.action in ("session.end", "session.close")]
    assert audit == [("session.end", "sam", "alice", "allowed", REASON),
                     ("session.close", "alice", "desk-01", "terminated", f"ended by sam: {REASON}")]


async def _empty(sessions: Any) -> bool:
    return not await sessions


async def _first_recording(gateway: AuthGateway, http: aiohttp.ClientSession) -> dict[str, Any] | None:
    response = await http.get(f"{gateway.url}/api/v1/recordings?user=alice")
    recordings: list[dict[str, Any]] = (await response.json())["recordings"]
    return recordings[0] if recordings else None


async def test_who_may_list_and_end_whose_sessions(tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, POLICIES, desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as alice, cookie_session() as tina, cookie_session() as sam, \
            cookie_session() as tess, cookie_session() as stranger:
        alice_token = await sign_in(gateway, alice, "alice")
        await sign_in(gateway, tina, "tina")
        alice_desktop, tina_desktop = await open_desktop(alice, gateway.url), await open_desktop(tina, gateway.url)
        sam_token, tess_token = await sign_in(gateway, sam, "sam"), await sign_in(gateway, tess, "tess")

        assert [s["user"] for s in await listed(gateway, sam)] == ["alice"]  # not tina: a trainee
        assert [s["user"] for s in await listed(gateway, tess)] == ["tina"]
        alice_id = (await listed(gateway, sam))[0]["id"]

        # A trainer may not end an operator's session: 403, and nothing happens.
        refused = await end(gateway, tess, tess_token, alice_id)
        assert (refused.status, await refused.json()) == (403, {"error": "you may not end alice's session"})
        # An operator may neither list nor end sessions.
        for response in (await alice.get(f"{gateway.url}/api/v1/sessions"),
                         await end(gateway, alice, alice_token, alice_id)):
            assert response.status == 403
            assert (await response.json())["error"].startswith("you may not see live sessions")
        # Cross-site requests and requests without the session's token are refused before anything else.
        for headers in ({"Origin": "https://evil.example"}, {"X-CSRF-Token": "forged"},
                        {"Sec-Fetch-Site": "cross-site"}):
            assert (await end(gateway, sam, sam_token, alice_id, **headers)).status == 403
        # What is wrong with a request is said.
        for body, status, message in [
            ({"reason": "  "}, 400, "say why you end this session"),
            ({"reason": "x" * 301}, 400, "the reason is longer than 300 characters"),
            ({}, 400, "say why you end this session"),
            ({"reason": 7}, 400, "reason must be a string"),
        ]:
            response = await end(gateway, sam, sam_token, alice_id, body)
            assert response.status == status and message in (await response.json())["error"], body
        not_json = await sam.delete(f"{gateway.url}/api/v1/sessions/{alice_id}", data="because",
                                    headers={"Origin": gateway.url, "X-CSRF-Token": sam_token})
        assert not_json.status == 415
        for unknown in ("6b062500-ffffffff", "..%2F..%2Fetc"):
            assert (await end(gateway, sam, sam_token, unknown)).status == 404
        assert (await stranger.get(f"{gateway.url}/api/v1/sessions")).status == 401
        assert (await stranger.delete(f"{gateway.url}/api/v1/sessions/{alice_id}")).status == 401

        assert not alice_desktop.ws.closed and not tina_desktop.ws.closed  # nobody's session was ended
        assert [s["ending"] for s in await listed(gateway, sam)] == [False]
        # The one who may: at once on this node; a second request is told who asked first.
        assert (await end(gateway, sam, sam_token, alice_id)).status == 202
        await closed_with(alice_desktop, within=2)
        assert not tina_desktop.ws.closed
        await tina_desktop.ws.close()

        denied = await gateway.metric(stranger, 'deskgate_supervision_denied_total{action="end"}')
        assert denied == 2 and await gateway.metric(stranger, 'deskgate_supervision_denied_total{action="list"}') == 1
        assert await gateway.metric(stranger, "deskgate_sessions_end_requested_total") == 1

    refusals = [(e.action, e.user, e.target, e.outcome) for e in await gateway.audit()
                if e.action in ("session.list", "session.end")]
    assert refusals == [("session.end", "tess", "alice", "denied"), ("session.list", "alice", None, "denied"),
                        ("session.end", "alice", None, "denied"), ("session.end", "sam", "alice", "allowed")]


async def test_the_notice_stream_replays_what_stands_and_ends_with_the_sign_in(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, POLICIES, users=USERS) as gateway, cookie_session() as http, \
            cookie_session() as stranger:
        assert (await stranger.get(f"{gateway.url}/api/v1/notices")).status == 401
        token = await sign_in(gateway, http, "alice")
        board = gateway.gateway.app[NOTICES]
        first = await EventStream.open(http, gateway.url)
        assert (await first.next()).event == "hello"
        started = await board.post("alice", ViewingStarted("sam", "desk-01"))
        await board.post("bob", ViewingStarted("sam", "desk-02"))  # someone else's
        live = await first.next()
        assert (live.event, live.id) == ("notice", str(started))
        assert live.data == {"id": started, "type": "viewing_started", "by": "sam", "target": "desk-01",
                             "posted": live.data["posted"], "replay": False}

        # A page opened later learns who is viewing now; one reconnecting gets only what it missed.
        second = await EventStream.open(http, gateway.url)
        assert [(await second.next()).event, (await second.next_notice())["replay"]] == ["hello", True]
        ended = await board.post("alice", ViewingEnded("sam"))
        assert (await first.next_notice())["id"] == (await second.next_notice())["id"] == ended
        again = await EventStream.open(http, gateway.url, **{"Last-Event-ID": str(started)})
        assert (await again.next()).event == "hello"
        assert await again.next_notice() == {"id": ended, "type": "viewing_ended", "by": "sam", "target": None,
                                             "posted": (await board.recent("alice"))[-1].posted, "replay": False}

        # Signing out ends every stream of that sign-in; the browser's reconnection is refused.
        logout = await http.post(f"{gateway.url}/api/v1/logout", headers={"X-CSRF-Token": token})
        assert logout.status == 200
        for stream in (first, second, again):
            with pytest.raises(EOFError):
                while True:
                    await stream.next(timeout=5)
        assert (await http.get(f"{gateway.url}/api/v1/notices")).status == 401
        assert await gateway.metric(stranger, 'deskgate_notice_streams_ended_total{reason="signed_out"}') == 3
        assert await gateway.metric(stranger, "deskgate_notice_streams_open") == 0


async def test_a_quiet_stream_gets_keepalives_and_gateway_shutdown_ends_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notice_routes, "KEEPALIVE", 0.2)
    async with auth_gateway(tmp_path, POLICIES, users=USERS) as gateway, cookie_session() as http:
        await sign_in(gateway, http, "alice")
        stream = await EventStream.open(http, gateway.url)
        lines = [await stream.response.content.readline() for _ in range(8)]
        assert lines[:5] == [b"retry: 3000\n", b"\n", b"event: hello\n", lines[3], b"\n"]
        assert lines[5:] == [b": keepalive\n", b"\n", b": keepalive\n"]
        asked = time.monotonic()
        await gateway.gateway.stop()  # the open stream does not hold the shutdown up
        assert time.monotonic() - asked < 3
        assert await stream.response.content.read() == b"\n"
        gateway.gateway.runners = ()  # stopped already


async def test_the_idle_warning_reaches_the_operators_page_with_the_gateways_deadline(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    policies = {"policies": [{**POLICIES["policies"][0], "idle_timeout": "3s"}]}  # warned 0.6 s before
    async with auth_gateway(tmp_path, policies, desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as http:
        await sign_in(gateway, http, "alice")
        notices = await EventStream.open(http, gateway.url)
        await notices.next()
        client = await open_desktop(http, gateway.url)
        warning = await notices.next_notice(timeout=10)
        assert (warning["type"], warning["target"]) == ("idle_warning", "desk-01")
        assert 0 < warning["deadline_epoch"] - warning["posted"] <= 0.7
        closed = await closed_with(client, within=5)
        assert closed.code == CloseCode.IDLE_TIMEOUT
        assert abs(time.time() - warning["deadline_epoch"]) < 1.5  # it ended when the notice said
        notices.close()
