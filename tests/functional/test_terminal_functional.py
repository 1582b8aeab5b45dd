"""Browser terminals against a real OpenSSH sshd (and an asyncssh server for edge cases), through the gateway.

Japanese round-trips byte for byte, resizes reach the PTY, the session is recorded, plays back as
asciicast and is found by the text on its screen; an unknown host key, an idle terminal, a
supervisor's end and a target that drops each end the session with their code, audited.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncssh
import pytest

from gateway.audit import AuditEvent
from tests.functional.auth_helpers import PASSWORD, AuthGateway, cookie_session
from tests.functional.terminal_helpers import (
    closed,
    open_terminal,
    read_until,
    terminal_gateway,
    wait_for_recording,
)
from tests.sshd_server import SshdServer

pytestmark = pytest.mark.timeout(120)

JAPANESE = "日本語のテキスト、こんにちは"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    with SshdServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


async def login(http: aiohttp.ClientSession, gateway: AuthGateway, user: str) -> str:
    """Sign ``user`` in; returns the CSRF token."""
    response = await gateway.login(http, user, PASSWORD)
    assert response.status == 200, await response.text()
    return str((await response.json())["csrf_token"])


async def audited(gateway: AuthGateway, action: str) -> list[AuditEvent]:
    """The ``action`` events, once there is one (a session's close is audited after its socket closes)."""
    async with asyncio.timeout(10):
        while not (events := [e for e in await gateway.audit() if e.action == action]):
            await asyncio.sleep(0.1)
    return events


async def test_japanese_round_trips_resize_reaches_the_pty_and_the_session_is_recorded_and_found(
        sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway, cookie_session() as alice, cookie_session() as sam:
        await login(alice, gateway, "alice")
        ws = await open_terminal(alice, gateway, "shell-01", size=(100, 30))
        # $((6*7)): the output differs from the echoed command line, so only the shell's answer matches.
        await ws.send_bytes(f"stty size; echo {JAPANESE}-$((6*7))\n".encode())
        output = await read_until(ws, f"{JAPANESE}-42".encode())
        assert b"30 100" in output
        assert f"{JAPANESE}-42\r\n".encode() in output  # byte for byte, through the PTY and back
        await ws.send_str(json.dumps({"resize": [120, 40]}))
        await ws.send_bytes(b"stty size\n")
        await read_until(ws, b"40 120")
        await ws.send_bytes(b"exit\n")
        code, reason = await closed(ws)
        assert code == 4005 and "ended" in reason

        sam_token = await login(sam, gateway, "sam")
        found = await wait_for_recording(sam, gateway, text=f"{JAPANESE}-42")
        assert [(row["user"], row["target"], row["protocol"]) for row in found] == [("alice", "shell-01", "ssh")]
        response = await sam.get(f"{gateway.url}/api/v1/recordings", params={"text": "never-typed-xyz"})
        assert (await response.json())["recordings"] == []
        cast = await sam.get(f"{gateway.url}/api/v1/recordings/{found[0]['id']}/cast")
        assert cast.status == 200 and cast.headers["Content-Type"].startswith("application/x-asciicast")
        lines = [json.loads(line) for line in (await cast.text()).splitlines()]
        assert lines[0]["version"] == 2 and (lines[0]["width"], lines[0]["height"]) == (100, 30)
        output_text = "".join(event[2] for event in lines[1:] if event[1] == "o")
        assert f"{JAPANESE}-42" in output_text and "40 120" in output_text
        typed = "".join(event[2] for event in lines[1:] if event[1] == "i")
        assert f"echo {JAPANESE}-$((6*7))" in typed  # record_input: full
        assert [event[2] for event in lines[1:] if event[1] == "r"] == ["120x40"]
        clip = await sam.post(f"{gateway.url}/api/v1/recordings/{found[0]['id']}/clips", json={"from": 0, "to": 1},
                              headers={"Origin": gateway.url, "X-CSRF-Token": sam_token})
        assert clip.status == 400 and "asciicast" in (await clip.json())["error"]

        await audited(gateway, "session.close")
        events = await gateway.audit()
        opened = [e for e in events if e.action == "session.open" and e.detail.get("protocol") == "ssh"]
        closes = [e for e in events if e.action == "session.close" and e.detail.get("protocol") == "ssh"]
        assert [e.outcome for e in opened] == ["allowed"] and [e.outcome for e in closes] == ["target_closed"]
        assert closes[0].detail["recording"] == found[0]["id"]
        assert await gateway.metric(alice, 'deskgate_sessions_total{outcome="target_closed",protocol="ssh"}') == 1
        assert await gateway.metric(alice, 'deskgate_sessions_active{protocol="ssh"}') == 0


async def test_an_unknown_host_key_refuses_the_session_with_an_audit_event(sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway, cookie_session() as alice:
        await login(alice, gateway, "alice")
        ws = await open_terminal(alice, gateway, "shell-evil")
        code, reason = await closed(ws)
        assert code == 4014 and "host key" in reason
        refused = await audited(gateway, "session.host_key")
        assert [(e.user, e.target, e.outcome) for e in refused] == [("alice", "shell-evil", "refused")]
        assert await gateway.metric(alice, 'deskgate_terminal_target_refusals_total{reason="host_key"}') == 1


async def test_an_idle_terminal_is_ended_and_signs_out(sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway, cookie_session() as alice:
        await login(alice, gateway, "alice")
        ws = await open_terminal(alice, gateway, "shell-idle")
        code, reason = await closed(ws)
        assert code == 4008 and "no input" in reason
        assert [e.outcome for e in await audited(gateway, "session.close")] == ["idle_timeout"]
        async with asyncio.timeout(10):  # as for desktops: the sign-in ends with the idle session
            while (await alice.get(f"{gateway.url}/api/v1/session")).status != 401:
                await asyncio.sleep(0.05)
        assert [e.outcome for e in await audited(gateway, "logout")] == ["idle_timeout"]


async def test_a_supervisor_ends_a_terminal_session(sshd: SshdServer, tmp_path: Path) -> None:
    async with terminal_gateway(sshd, tmp_path) as gateway, cookie_session() as alice, cookie_session() as sam:
        await login(alice, gateway, "alice")
        token = await login(sam, gateway, "sam")
        ws = await open_terminal(alice, gateway, "shell-01")
        await ws.send_bytes(b"echo ready-$((1+1))\n")
        await read_until(ws, b"ready-2")
        sessions = (await (await sam.get(f"{gateway.url}/api/v1/sessions")).json())["sessions"]
        assert [(s["user"], s["target"], s["protocol"]) for s in sessions] == [("alice", "shell-01", "ssh")]
        response = await sam.delete(f"{gateway.url}/api/v1/sessions/{sessions[0]['id']}",
                                    json={"reason": "audit check"},
                                    headers={"Origin": gateway.url, "X-CSRF-Token": token})
        assert response.status == 202, await response.text()
        code, reason = await closed(ws)
        assert code == 4010 and reason == "ended by sam: audit check"


@pytest.fixture
async def dropping_target(tmp_path: Path) -> AsyncIterator[dict[str, object]]:
    """An asyncssh server that takes a password, writes one line and drops the connection."""
    key = asyncssh.generate_private_key("ssh-ed25519")

    class PasswordServer(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == "ops" and password == "target-password"

    async def drop(process: asyncssh.SSHServerProcess[bytes]) -> None:
        process.stdout.write(b"going away\r\n")
        await asyncio.sleep(0.2)
        process.get_extra_info("connection").abort()

    server = await asyncssh.create_server(PasswordServer, "127.0.0.1", 0, server_host_keys=[key],
                                          process_factory=drop, encoding=None)
    port = server.sockets[0].getsockname()[1]
    public = key.export_public_key().decode().split()
    (tmp_path / "drop_known_hosts").write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    (tmp_path / "drop.pass").write_text("target-password\n")
    try:
        yield {"protocol": "ssh", "host": "127.0.0.1", "port": port, "username": "ops",
               "password_file": str(tmp_path / "drop.pass"), "known_hosts": str(tmp_path / "drop_known_hosts")}
    finally:
        server.close()
        await server.wait_closed()


async def test_a_target_that_drops_ends_the_session(sshd: SshdServer, tmp_path: Path,
                                                    dropping_target: dict[str, object]) -> None:
    async with terminal_gateway(sshd, tmp_path, extra_targets={"shell-drop": dropping_target}) as gateway, \
            cookie_session() as alice:
        await login(alice, gateway, "alice")
        ws = await open_terminal(alice, gateway, "shell-drop")
        await read_until(ws, b"going away")  # the password from password_file was accepted
        code, _ = await closed(ws)
        assert code == 4005
