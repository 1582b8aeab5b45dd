"""A gateway deployment for the benchmarks: config, local users with TOTP, and logging in.

The config is the documented one (DESIGN.md §3) with every listener on a free loopback
port, one policy letting the ``operators`` group open every ``bench-*`` target, and the
recordings in the work directory.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pyotp
import yaml

from auth.local import LocalUserStore
from auth.totp import STEP_SECONDS, new_secret

GROUP = "operators"
#: How long a handed-out TOTP code must stay valid (see :meth:`BenchUser.next_code`).
CODE_MARGIN = 10.0


class LoginRefused(PermissionError):
    """The gateway refused a login; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class BenchUser:
    """An operator; the gateway accepts each TOTP time step once per user, so the last one used is kept."""

    name: str
    password: str
    totp_secret: str
    last_step: int = -1

    def next_code(self, margin: float = CODE_MARGIN) -> str | None:
        """An unused code the gateway accepts now and still ``margin`` seconds from now, or None.

        The gateway accepts the codes of the current step and one step either side, each once.
        A code is only handed out if its step stays in that window for ``margin`` seconds, so a
        login queued behind others (argon2id takes about 0.2 s a login on a core) never reaches
        the gateway with a code of a step that has just left it.
        """
        now = time.time()
        step = max(self.last_step + 1, int(now + margin) // STEP_SECONDS - 1)
        if step > int(now) // STEP_SECONDS + 1:
            return None
        self.last_step = step
        return pyotp.TOTP(self.totp_secret, interval=STEP_SECONDS).at(step * STEP_SECONDS)


def write_config(workdir: Path, targets: Mapping[str, int], auth: Mapping[str, object] | None = None, *,
                 writer_cpus: Sequence[int] | None = None) -> Path:
    """A deskgate.yaml in ``workdir`` proxying each ``bench-*`` name to a port on 127.0.0.1.

    ``auth`` replaces the default: local users in ``workdir/users.yaml``, TOTP required.
    ``writer_cpus``: ``storage.writer_cpus`` (None: left out, the journal writers are not pinned).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "listen": {"http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        # Every bench session comes from 127.0.0.1: the per-source bound (256 by default) would refuse the
        # density ramp's levels above it with 503 (a run on a fast machine reached 295) before latency did.
        "network": {"allow": ["127.0.0.0/8"], "trusted_proxies": [], "max_connections": 4096,
                    "max_connections_per_source": 2048},
        "auth": auth or {"local": {"users_file": str(workdir / "users.yaml")}, "totp": {"required": True}},
        "storage": {"recordings": str(workdir / "recordings"), "database": f"sqlite:///{workdir / 'deskgate.db'}",
                    "recording_key_file": str(workdir / "recording.key"),
                    **({"writer_cpus": list(writer_cpus)} if writer_cpus else {})},
        # A replay server serves every viewer its own stream: one target holds any number of sessions
        # (a desktop holds one by default, and the density group opens hundreds to the same target).
        "targets": {name: {"protocol": "vnc", "host": "127.0.0.1", "port": port, "max_sessions": None}
                    for name, port in targets.items()},
        # Clipboard text from the desktop passes (to-local): the call-center captures hold a few
        # ServerCutText messages (Chromium's text selection), and every route must carry the same bytes.
        "policies": [{"name": "operators", "groups": [GROUP], "from": ["127.0.0.0/8"], "targets": ["bench-*"],
                      "clipboard": "to-local", "idle_timeout": "10m"}],
    }
    path = workdir / "deskgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def add_users(workdir: Path, count: int, prefix: str = "operator") -> list[BenchUser]:
    """``count`` operators, each with a TOTP secret of their own, sharing one password.

    The first is added by the store itself; the others copy its entry (same argon2id hash,
    new secret) into the file in one write — adding each through the store would cost an
    argon2id hash and an fsync'd rewrite of the whole file apiece. Logins still verify one
    argon2id hash each.
    """
    path = workdir / "users.yaml"
    password = "operator-correct-horse-battery"
    first = f"{prefix}000"
    users = [BenchUser(first, password, LocalUserStore(path).add_user(first, password, [GROUP]))]
    document = yaml.safe_load(path.read_text())
    template = document["users"][first]
    for index in range(1, count):
        user = BenchUser(f"{prefix}{index:03d}", password, new_secret())
        document["users"][user.name] = {**template, "totp_secret": user.totp_secret}
        users.append(user)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return users


def http_session() -> aiohttp.ClientSession:
    """A client session that keeps the gateway's cookie for 127.0.0.1 and opens any number of sockets."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 connector=aiohttp.TCPConnector(limit=0, force_close=False))


class UserPool:
    """Hands out users who can log in now, with their code, in turn; waits for the next time step if none can."""

    def __init__(self, users: list[BenchUser]) -> None:
        self._users = collections.deque(users)

    async def take(self) -> tuple[BenchUser, str]:
        while True:
            for _ in range(len(self._users)):
                user = self._users[0]
                self._users.rotate(-1)
                code = user.next_code()
                if code is not None:
                    return user, code
            await asyncio.sleep(1.0)


async def log_in(http: aiohttp.ClientSession, url: str, user: BenchUser, code: str) -> None:
    """``POST /api/v1/login`` with ``code`` (from :meth:`BenchUser.next_code`); raises if the gateway refuses."""
    body = {"username": user.name, "password": user.password, "totp": code}
    async with http.post(f"{url}/api/v1/login", json=body) as response:
        if response.status != 200:
            raise LoginRefused(response.status,
                               f"login of {user.name} refused: {response.status} {await response.text()}")
