"""TerminalSession with a scripted operator and an asyncssh echo target: fail-closed recording, input as recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from base.metrics import Metrics
from gateway.policy import InputRecording, Policy
from gateway.reach import SshEndpoint
from gateway.session_watch import CloseCode, SessionEnded
from gateway.sessions import LiveSession, SessionControl
from gateway.terminal import TerminalSession
from gateway.terminal_messages import TerminalInput, TerminalMessage, TerminalResize
from recorder.errors import RecordingUnavailable
from recorder.records import TerminalSize
from tests.gateway.test_desktop import MemoryRecordings

POLICY = Policy("test", ("operators",), (), ("shell-*",))


class ScriptedOperator:
    """Sends its messages in order, then waits for ``done`` and closes; keeps the target's output."""

    def __init__(self, *messages: TerminalMessage) -> None:
        self.messages = list(messages)
        self.output = b""
        self.done = asyncio.Event()
        self.ended: SessionEnded | None = None

    async def receive(self) -> TerminalMessage:
        if self.messages:
            return self.messages.pop(0)
        await self.done.wait()
        raise SessionEnded(CloseCode.NORMAL, "the browser closed the session")

    async def send(self, data: bytes) -> None:
        self.output += data
        if b"\r\n" in self.output:
            self.done.set()

    async def close(self, ended: SessionEnded) -> None:
        self.ended = ended


class Audit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def record(self, action: str, **fields: Any) -> None:
        self.events.append((action, fields))


class Notices:
    def post_nowait(self, username: str, notice: object) -> None:
        pass


@pytest.fixture
async def echo_target(tmp_path: Path) -> AsyncIterator[tuple[SshEndpoint, list[str]]]:
    """An asyncssh target (any user, no password) echoing one line; it lists each connection's user."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    connections: list[str] = []

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            connections.append(username)
            return False

    async def echo(process: asyncssh.SSHServerProcess[bytes]) -> None:
        line = await process.stdin.readline()
        process.stdout.write(line.rstrip(b"\r\n") + b"\r\n")
        process.exit(0)

    server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[key], process_factory=echo,
                                          encoding=None)
    port = server.sockets[0].getsockname()[1]
    public = key.export_public_key().decode().split()
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    try:
        yield SshEndpoint("shell-01", "127.0.0.1", port, "ops", None, None, tmp_path / "known_hosts"), connections
    finally:
        server.close()
        await server.wait_closed()


def session(operator: ScriptedOperator, target: SshEndpoint, recordings: object, policy: Policy = POLICY,
            ) -> TerminalSession:
    live = LiveSession("1-2", "ssh", "alice", "127.0.0.1", target.name, "w", frozenset({"operators"}))
    return TerminalSession(operator, target, policy, SessionControl(live), Metrics(), recordings,  # type: ignore[arg-type]
                           Notices(), Audit())  # type: ignore[arg-type]


class RefusingRecordings(MemoryRecordings):
    async def start(self, live: LiveSession, screen: object, policy: Policy) -> Any:
        raise RecordingUnavailable("recording storage is not writable; the session cannot start unrecorded")


async def test_no_journal_no_session_and_the_target_never_hears_of_it(
        echo_target: tuple[SshEndpoint, list[str]]) -> None:
    target, connections = echo_target
    operator = ScriptedOperator(TerminalResize(TerminalSize(80, 24)))
    ended = await session(operator, target, RefusingRecordings()).run()
    assert ended.code == CloseCode.RECORDING_FAILED and "unrecorded" in ended.reason
    assert operator.ended is ended and connections == []


@pytest.mark.parametrize("record_input", [InputRecording.FULL, InputRecording.COUNTS])
async def test_output_is_journaled_and_input_as_the_policy_says(
        echo_target: tuple[SshEndpoint, list[str]], record_input: InputRecording) -> None:
    target, _ = echo_target
    recordings = MemoryRecordings()
    operator = ScriptedOperator(TerminalResize(TerminalSize(90, 20)), TerminalInput("日本語\r".encode()),
                                TerminalResize(TerminalSize(100, 30)))
    policy = Policy("test", ("operators",), (), ("shell-*",), record_input=record_input)
    ended = await session(operator, target, recordings, policy).run()
    assert ended.code in (CloseCode.TARGET_CLOSED, CloseCode.NORMAL)
    assert "日本語\r\n".encode() in operator.output
    journal = recordings.journal
    assert journal is not None and "日本語".encode() in journal.data("server")
    if record_input == InputRecording.FULL:
        assert journal.data("client") == "日本語\r".encode() and journal.counts() == {}
    else:
        assert journal.data("client") == b"" and journal.counts() == {"keys": 4}
    assert ("resize", {"cols": 100, "rows": 30}) in journal.events()
