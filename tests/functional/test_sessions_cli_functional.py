"""``deskgate sessions list`` and ``end`` as processes against a running gateway's database."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gateway.demo import XvncDesktop
from gateway.session_watch import CloseCode
from tests.functional.auth_helpers import ROOT, AuthGateway, auth_gateway, cookie_session
from tests.functional.supervision_helpers import POLICIES, USERS, EventStream, closed_with, open_desktop

pytestmark = pytest.mark.functional

REASON = "end of shift  —  please sign out"


async def deskgate(gateway: AuthGateway, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, "--config", str(gateway.config.path), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_sessions_are_listed_and_ended_from_the_command_line(tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, POLICIES, desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as operator:
        assert (await deskgate(gateway, "sessions", "list"))[:2] == (0, "no live sessions\n")
        response = await gateway.login(operator, "alice", code=gateway.code("alice"))
        assert response.status == 200
        notices = await EventStream.open(operator, gateway.url)
        assert (await notices.next()).event == "hello"
        client = await open_desktop(operator, gateway.url)

        status, out, _ = await deskgate(gateway, "sessions", "list", "--json")
        (listed,) = [json.loads(line) for line in out.splitlines()]
        assert status == 0
        assert (listed["user"], listed["target"], listed["protocol"], listed["source"], listed["ending"]) == \
            ("alice", "desk-01", "vnc", "127.0.0.1", False)
        status, out, _ = await deskgate(gateway, "sessions", "list")
        assert status == 0 and listed["id"] in out and "alice" in out and "desk-01" in out

        assert (await deskgate(gateway, "sessions", "end", listed["id"], "--reason", "  "))[0] == 1
        status, _, err = await deskgate(gateway, "sessions", "end", "0123abcd-00000000", "--reason", "x")
        assert (status, err) == (1, "deskgate: there is no live session '0123abcd-00000000'; it may have ended "
                                    "already (sessions list)\n")

        status, out, err = await deskgate(gateway, "sessions", "end", listed["id"], "--reason", REASON)
        assert status == 0 and "audit session.end" in err, err  # the audit event is logged too
        assert out == f"ending alice's session {listed['id']} on desk-01 (node {listed['node']})\n"
        closed = await closed_with(client, within=10)
        reason = "end of shift — please sign out"
        assert closed.code == CloseCode.TERMINATED and closed.reason.endswith(f" (cli): {reason}")
        notice = await notices.next_notice()
        assert (notice["type"], notice["reason"], notice["by"].endswith(" (cli)")) == ("session_ended", reason, True)
        notices.close()

        status, _, err = await deskgate(gateway, "sessions", "end", listed["id"], "--reason", "again")
        assert status == 1 and ("already asked" in err or "no live session" in err)

    audit = [(e.action, e.source, e.target, e.reason) for e in await gateway.audit() if e.action == "session.end"]
    assert audit == [("session.end", "cli", "alice", reason)]
