"""Graceful drain of ``deskgate serve`` on SIGTERM: not ready, no new desktops, live operators told, sessions
ended with a reason at ``listen.drain_timeout``, then the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from gateway.config import load_config
from gateway.demo import XvncDesktop
from gateway.desktop import CloseCode
from gateway.drain import DRAIN_ENDED, NODE_DRAINING
from gateway.rfb.messages import KeyEvent
from tests.functional.auth_helpers import PASSWORD, add_local_users, cookie_session, free_port, wait_ready, write_config
from tests.functional.supervision_helpers import EventStream, closed_with, open_desktop

pytestmark = [pytest.mark.functional, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
DRAIN_TIMEOUT = 3.0


async def test_sigterm_drains_then_ends_sessions_with_a_reason(tmp_path: Path, desktop: XvncDesktop) -> None:
    port = free_port()
    config_path = write_config(tmp_path, {"listen": {"http": f"127.0.0.1:{port}", "drain_timeout": "3s"}},
                               desktop.port)
    secrets = add_local_users(load_config(config_path), {"alice": ["operators"], "bob": ["operators"]})
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)],
                                 cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await wait_ready(url)
        async with cookie_session() as alice, cookie_session() as bob:
            for http, user in ((alice, "alice"), (bob, "bob")):
                response = await http.post(f"{url}/api/v1/login", json={
                    "username": user, "password": PASSWORD, "totp": pyotp.TOTP(secrets[user]).now()})
                assert response.status == 200, await response.text()
            live = await open_desktop(alice, url)
            notices = await EventStream.open(alice, url)

            os.kill(serve.pid, signal.SIGTERM)
            draining = await notices.next_notice(timeout=10)
            assert (draining["type"], draining["target"]) == ("node_draining", "desk-01")
            assert 0 < draining["deadline_epoch"] - time.time() <= DRAIN_TIMEOUT
            ready = await bob.get(f"{url}/readyz")
            assert (ready.status, await ready.json()) == (503, {"status": "draining"})
            check = await bob.get(f"{url}/api/v1/targets/desk-01/check")
            assert (check.status, (await check.json())["error"]) == (503, NODE_DRAINING)
            await live.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))  # the live session goes on meanwhile

            closed = await closed_with(live, within=DRAIN_TIMEOUT + 10)
            assert (closed.code, closed.reason) == (CloseCode.TERMINATED, DRAIN_ENDED)
        assert await asyncio.to_thread(serve.wait, 30) == 0
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=15)
