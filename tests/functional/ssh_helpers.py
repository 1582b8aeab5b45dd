"""What the native SSH listener's tests share: a gateway with ``listen.ssh``, the real ``ssh`` on a PTY, asyncssh.

``NativeSsh`` runs OpenSSH's client (``/usr/bin/ssh``) on a pseudo-terminal that is its
controlling terminal (``setsid --ctty``), so it prompts, reads the password and code, and
switches the terminal to raw mode exactly as for a person; the test reads what it prints and
types into it. ``kbdint_client`` answers keyboard-interactive from a list, for asyncssh clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh

from gateway.ssh.listener import SSH_LISTENER
from tests.functional.auth_helpers import AuthGateway, auth_gateway
from tests.functional.terminal_helpers import TERMINAL_USERS, terminal_settings
from tests.sshd_server import SshdServer

SSH = shutil.which("ssh") or "/usr/bin/ssh"
SFTP = shutil.which("sftp") or "/usr/bin/sftp"
#: LogLevel INFO (OpenSSH's default): below it the client does not print the gateway's banners (refusal reasons).
CLIENT_OPTIONS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "LogLevel=INFO", "-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no",
                  "-o", "KbdInteractiveAuthentication=yes", "-o", "NumberOfPasswordPrompts=1"]


def ssh_port(gateway: AuthGateway) -> int:
    return gateway.gateway.app[SSH_LISTENER].port


@contextlib.asynccontextmanager
async def ssh_gateway(sshd: SshdServer, workdir: Path, extra: dict[str, Any] | None = None,
                      **options: Any) -> AsyncIterator[AuthGateway]:
    """The terminal tests' gateway with its SSH listener on a free loopback port (and ``extra`` config)."""
    settings = terminal_settings(sshd, workdir)
    settings["listen"] = {"ssh": "127.0.0.1:0", "ssh_host_key": str(workdir / "ssh_host_key")}
    settings["targets"]["root-shell"] = sshd.target()
    for key, value in (extra or {}).items():
        settings[key] = value
    async with auth_gateway(workdir, settings, users=TERMINAL_USERS, **options) as gateway:
        yield gateway


class NativeSsh:
    """``ssh ARGS`` on a pseudo-terminal: :meth:`expect` what it prints, :meth:`type` into it."""

    def __init__(self, *args: str, program: str = SSH, size: tuple[int, int] = (111, 33)) -> None:
        self.args = [program, *CLIENT_OPTIONS, *args]
        self.size = size  # the terminal's columns and rows
        self.output = b""
        self._process: asyncio.subprocess.Process | None = None
        self._master = -1
        self._arrived = asyncio.Event()
        self._closed = False

    async def __aenter__(self) -> NativeSsh:
        master, slave = os.openpty()
        termios.tcsetwinsize(slave, (self.size[1], self.size[0]))
        os.set_blocking(master, False)
        self._master = master
        try:
            self._process = await asyncio.create_subprocess_exec(
                "setsid", "--ctty", *self.args, stdin=slave, stdout=slave, stderr=slave, env={
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color", "LANG": "C.UTF-8"})
        finally:
            os.close(slave)
        asyncio.get_running_loop().add_reader(master, self._read)
        return self

    async def __aexit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_reader(self._master)
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        os.close(self._master)

    def _read(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: the client has exited
            data = b""
        if not data:
            self._closed = True
            asyncio.get_running_loop().remove_reader(self._master)
        self.output += data
        self._arrived.set()

    async def expect(self, needle: bytes, timeout: float = 20.0) -> bytes:
        """The output up to and including ``needle`` (consumed); AssertionError when the client exits first."""
        async with asyncio.timeout(timeout):
            while needle not in self.output:
                if self._closed:
                    raise AssertionError(f"ssh exited before {needle!r}; it printed {self.output!r}")
                self._arrived.clear()
                await self._arrived.wait()
        before, _, self.output = self.output.partition(needle)
        return before + needle

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    async def exit_status(self, timeout: float = 20.0) -> int:
        assert self._process is not None
        return await asyncio.wait_for(self._process.wait(), timeout)

    async def rest(self, timeout: float = 20.0) -> bytes:
        """Everything it prints until it exits."""
        await self.exit_status(timeout)
        async with asyncio.timeout(timeout):
            while not self._closed:
                self._arrived.clear()
                await self._arrived.wait()
        return self.output


class Answers(asyncssh.SSHClient):
    """Answers keyboard-interactive prompts in order, and keeps the banners the gateway sends."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.banners: list[str] = []

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.banners.append(msg)

    def kbdint_auth_requested(self) -> str:
        return ""

    def kbdint_challenge_received(self, name: str, instructions: str, lang: str,
                                  prompts: list[tuple[str, bool]]) -> list[str]:
        return [self.answers.pop(0) for _ in prompts]


@contextlib.asynccontextmanager
async def kbdint_client(gateway: AuthGateway, username: str, answers: list[str],
                        agent_path: str | None = None) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """An asyncssh client signed in to the gateway's SSH listener with ``answers`` (raises PermissionDenied);
    with ``agent_path`` it may ask to forward that agent."""
    handler = Answers(answers)
    async with asyncssh.connect("127.0.0.1", ssh_port(gateway), username=username, known_hosts=None,
                                client_factory=lambda: handler, preferred_auth="keyboard-interactive",
                                agent_path=agent_path, agent_forwarding=agent_path is not None, client_keys=None,
                                config=None) as connection:
        yield connection
