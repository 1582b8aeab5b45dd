"""Shared fixtures: a real TigerVNC desktop, a gateway on free loopback ports, users with TOTP."""

from __future__ import annotations

import logging
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pyotp
import pytest

from auth.local import LocalUserStore
from base.db import Store
from gateway.config import load_config
from gateway.demo import XvncDesktop
from gateway.web.app import RunningGateway, start_gateway
from tests.loop_guard import GUARD, event_loop_never_blocks  # noqa: F401  (an autouse fixture)

DESKTOP_PASSWORD = "s3cret-vnc"
DESKTOP_WIDTH, DESKTOP_HEIGHT = 1024, 768


@dataclass
class User:
    name: str
    password: str
    totp_secret: str
    groups: tuple[str, ...]

    def code(self, at: float | None = None) -> str:
        totp = pyotp.TOTP(self.totp_secret)
        return totp.at(at) if at is not None else totp.now()

    def wrong_code(self) -> str:
        """A six-digit code valid at no step of the current ±1 drift window."""
        totp = pyotp.TOTP(self.totp_secret)
        now = time.time()
        valid = {totp.at(now + drift) for drift in (-60, -30, 0, 30, 60)}
        return next(f"{n:06d}" for n in range(0, 10) if f"{n:06d}" not in valid)


@dataclass
class GatewayUnderTest:
    """A running in-process gateway with its config directory and users."""

    gateway: RunningGateway
    workdir: Path
    users: dict[str, User] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    async def login(self, http: aiohttp.ClientSession, name: str) -> aiohttp.ClientResponse:
        user = self.users[name]
        return await http.post(f"{self.url}/api/v1/login",
                               json={"username": user.name, "password": user.password, "totp": user.code()})


def pytest_configure(config: pytest.Config) -> None:
    GUARD.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    GUARD.uninstall()


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """The CLI's ``main`` installs its own stderr handler on the root logger: take it away after each test,
    so that no later test logs to a stream pytest has closed (or to its own captured stderr)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = [handler for handler in root.handlers
                        if handler in handlers or type(handler).__module__.startswith("_pytest")]
    root.setLevel(level)


def _run_quiet(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, check=True, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite database in the test's own directory, closed afterwards."""
    store = await Store.open(f"sqlite:///{tmp_path}/deskgate.db")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="session")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """A TigerVNC desktop with an xterm on a plaid background (known, static content)."""
    with XvncDesktop(tmp_path_factory.mktemp("xvnc"), width=DESKTOP_WIDTH, height=DESKTOP_HEIGHT, password=DESKTOP_PASSWORD) as xvnc:
        _run_quiet(["xsetroot", "-mod", "16", "16", "-fg", "#c03030", "-bg", "#2040a0"], xvnc.env)
        yield xvnc


def write_gateway_config(workdir: Path, desktop_port: int, extra_targets: dict[str, int] | None = None,
                         **overrides: str) -> Path:
    """A config with two desktops and policies: operators may open desk-*, auditors nothing."""
    (workdir / "desk-01.pass").write_text(DESKTOP_PASSWORD + "\n")
    (workdir / "desk-01.pass").chmod(0o600)
    settings = {
        "idle_timeout": "15m",
        "clipboard": "off",
        **overrides,
    }
    extra = "".join(f"\n{' ' * 10}{name}: {{protocol: vnc, host: 127.0.0.1, port: {port}}}"  # dedented below
                    for name, port in (extra_targets or {}).items())
    config = workdir / "deskgate.yaml"
    config.write_text(textwrap.dedent(f"""\
        listen: {{http: "127.0.0.1:0", metrics: "127.0.0.1:0"}}
        auth:
          local: {{users_file: users.yaml}}
        storage: {{recordings: recordings, database: "sqlite:///deskgate.db"}}
        targets:
          desk-01: {{protocol: vnc, host: 127.0.0.1, port: {desktop_port}, password_file: desk-01.pass}}
          desk-02: {{protocol: vnc, host: 127.0.0.1, port: 1}}
          secret-desk: {{protocol: vnc, host: 127.0.0.1, port: 1}}{extra}
        policies:
          - name: operators
            groups: [operators]
            from: ["127.0.0.0/8", "::1/128"]
            targets: ["desk-*"]
            clipboard: "{settings['clipboard']}"
            idle_timeout: "{settings['idle_timeout']}"
          - name: supervisors
            groups: [supervisors]
            from: ["127.0.0.0/8", "::1/128"]
            targets: ["desk-01"]
            recordings: all
            unmask: true
        """))
    return config


async def start_test_gateway(workdir: Path, desktop_port: int, extra_targets: dict[str, int] | None = None,
                             **overrides: str) -> GatewayUnderTest:
    config_path = write_gateway_config(workdir, desktop_port, extra_targets, **overrides)
    store = LocalUserStore(workdir / "users.yaml")
    users = {}
    for name, groups in (("alice", ("operators",)), ("mallory", ("contractors",)), ("sam", ("supervisors",))):
        password = f"{name}-correct-horse-battery"
        secret = store.add_user(name, password, list(groups), False)
        users[name] = User(name, password, secret, groups)
    gateway = await start_gateway(load_config(config_path))
    return GatewayUnderTest(gateway, workdir, users)


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[GatewayUnderTest]:
    under_test = await start_test_gateway(tmp_path, desktop.port)
    try:
        yield under_test
    finally:
        await under_test.gateway.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies set by an IP-address host (the gateway listens on 127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session
