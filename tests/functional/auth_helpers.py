"""A real gateway configured for the authentication tests: settings merged over a base, users, a clock.

    async with auth_gateway(tmp_path, {"network": {"allow": ["10.0.0.0/8"]}}) as gw:
        await gw.login(http, "alice")

Everything runs in-process on free loopback ports; ``gateway_process`` starts the same
configuration as a ``deskgate serve`` child process instead (a second node on the same database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
import yaml

from auth.local import LocalUserStore
from base.db import Store
from gateway.audit import AuditEvent, AuditLog
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.web.app import RunningGateway, start_gateway

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple"
LOCAL_USERS = {"alice": ["operators"], "mallory": ["contractors"]}


class Clock:
    """A wall clock for the gateway that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def base_settings(workdir: Path, desktop_port: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "desk-01.pass").write_text("s3cret-vnc\n")
    return {
        "listen": {"http": "127.0.0.1:0", "metrics": "127.0.0.1:0", "drain_timeout": "2s"},
        "auth": {"local": {"users_file": "users.yaml"}},
        "storage": {"recordings": "recordings", "database": "sqlite:///deskgate.db"},
        "targets": {"desk-01": {"protocol": "vnc", "host": "127.0.0.1", "port": desktop_port,
                                "password_file": "desk-01.pass"}},
        "policies": [{"name": "operators", "groups": ["operators", "staff"], "from": ["127.0.0.0/8", "::1/128"],
                      "targets": ["desk-*"]}],
    }


def write_config(workdir: Path, changes: dict[str, Any], desktop_port: int = 1, name: str = "deskgate.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(merge(base_settings(workdir, desktop_port), changes), sort_keys=False))
    return path


@dataclass
class AuthGateway:
    """A running gateway and what a test needs to talk to it."""

    gateway: RunningGateway
    config: Config
    clock: Callable[[], float]
    secrets: dict[str, str] = field(default_factory=dict)  # user -> TOTP secret

    @property
    def url(self) -> str:
        return self.gateway.url

    def code(self, user: str, steps: int = 0) -> str:
        return pyotp.TOTP(self.secrets[user]).at(self.clock() + 30 * steps)

    async def login(self, http: aiohttp.ClientSession, user: str, password: str = PASSWORD,
                    code: str | None = None, **headers: str) -> aiohttp.ClientResponse:
        body = {"username": user, "password": password, "totp": self.code(user) if code is None else code}
        return await http.post(f"{self.url}/api/v1/login", json=body, headers=headers)

    async def metric(self, http: aiohttp.ClientSession, line_start: str) -> float | None:
        text = await (await http.get(self.gateway.metrics_url)).text()
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        return float(found[0].rsplit(" ", 1)[1]) if found else None

    async def audit(self) -> list[AuditEvent]:
        return await audit_events(self.config)


async def audit_events(config: Config) -> list[AuditEvent]:
    store = await Store.open(config.storage.database)
    try:
        return await AuditLog(store).list(limit=None)
    finally:
        await store.close()


def add_local_users(config: Config, users: dict[str, list[str]] = LOCAL_USERS) -> dict[str, str]:
    assert config.auth.local is not None
    store = LocalUserStore(config.auth.local.users_file)
    return {name: store.add_user(name, PASSWORD, groups) for name, groups in users.items()}


@contextlib.asynccontextmanager
async def auth_gateway(workdir: Path, changes: dict[str, Any] | None = None, *, desktop_port: int = 1,
                       clock: Callable[[], float] = time.time,
                       users: dict[str, list[str]] = LOCAL_USERS) -> AsyncIterator[AuthGateway]:
    config = load_config(write_config(workdir, changes or {}, desktop_port))
    secrets = add_local_users(config, users) if config.auth.local is not None and users else {}
    gateway = await start_gateway(config, clock=clock)
    try:
        yield AuthGateway(gateway, config, clock, secrets)
    finally:
        await gateway.stop()


def cookie_session(*, unsafe: bool = True) -> aiohttp.ClientSession:
    """A client that keeps cookies set by an IP-address host (the gateway listens on 127.0.0.1)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=unsafe))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def gateway_process(config_path: Path, port: int) -> Iterator[str]:
    """``deskgate serve --config config_path`` (listening on ``port``) as a child process; yields its URL."""
    log = open(config_path.with_suffix(".log"), "wb")
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                if (await http.get(f"{url}/readyz")).status == 200:
                    return
            await asyncio.sleep(0.1)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``deskgate`` run in-process installs its own log handler on the root logger; put pytest's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


async def deskgate(*argv: str) -> int:
    """``deskgate ARGV`` in a worker thread (it runs its own event loop); output goes to sys.stdout/stderr."""
    return await asyncio.to_thread(main, list(argv))
