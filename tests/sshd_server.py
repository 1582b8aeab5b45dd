"""A real OpenSSH ``sshd`` for functional tests: its own host key, config and authorized key, on a free loopback port.

    with SshdServer(tmp_path) as sshd:
        sshd.port           # 127.0.0.1:port
        sshd.username       # the current user: sshd runs as them (as root only when the tests do)
        sshd.client_key     # a private key the server accepts (authorized_keys)
        sshd.known_hosts    # a known_hosts file with the server's host key
        sshd.target(name)   # the gateway's config for an ssh target on it

``SshdServer(path, tcp_forwarding=True)`` allows direct-tcpip channels: a jump host.

The shell runs with ``LANG=C.UTF-8`` (sshd's ``SetEnv``), so multibyte input and output are
passed as UTF-8. sshd is started in the foreground (``-D -e``) and stopped (then killed)
on exit, its files removed with the test's directory.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deskgate-test", "-f", str(path)],
                   check=True, timeout=20, stdout=subprocess.DEVNULL)


class SshdServer:
    def __init__(self, directory: Path, *, tcp_forwarding: bool = False) -> None:
        """``tcp_forwarding``: allow direct-tcpip channels (for a jump host)."""
        self.directory = directory
        self.tcp_forwarding = tcp_forwarding
        self.port = _free_port()
        self.username = getpass.getuser()
        self.host_key = directory / "host_ed25519"
        self.client_key = directory / "client_ed25519"
        self.known_hosts = directory / "known_hosts"
        self._process: subprocess.Popen[bytes] | None = None

    def target(self, **extra: Any) -> dict[str, Any]:
        """The config of an ssh target on this server, as the gateway reads it."""
        return {"protocol": "ssh", "host": "127.0.0.1", "port": self.port, "username": self.username,
                "key_file": str(self.client_key), "known_hosts": str(self.known_hosts), **extra}

    def __enter__(self) -> SshdServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        _keygen(self.host_key)
        _keygen(self.client_key)
        authorized = self.directory / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        public = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        config = self.directory / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}", f"AuthorizedKeysFile {authorized}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "PrintMotd no", "PrintLastLog no",
            f"AllowTcpForwarding {'local' if self.tcp_forwarding else 'no'}", "X11Forwarding no", "SetEnv LANG=C.UTF-8", "LogLevel ERROR", "",
        ]))
        if os.geteuid() == 0:  # privilege separation needs its empty directory
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with (self.directory / "sshd.log").open("wb") as log:
            self._process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                             stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.directory / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("sshd did not listen in time")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
