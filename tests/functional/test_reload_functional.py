"""Hot reload of ``deskgate serve`` with real Xvnc desktop sessions: SIGHUP, a file edit, ``config reload``."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
import yaml

from gateway.config import load_config
from gateway.demo import XvncDesktop
from gateway.rfb.messages import FramebufferUpdateRequest
from gateway.session_watch import CloseCode
from gateway.web.reloading import RELOADER
from tests.functional.auth_helpers import (
    PASSWORD,
    add_local_users,
    audit_events,
    auth_gateway,
    base_settings,
    cookie_session,
    deskgate,
    free_port,
    gateway_process,
    merge,
    restore_logging,
    wait_ready,
    write_config,
)
from tests.functional.supervision_helpers import closed_with, open_desktop
from tests.rfbclient import WebSocketRFBClient

pytestmark = pytest.mark.functional
__all__ = ["restore_logging"]  # a fixture

USERS = {"alice": ["operators"], "bob": ["contractors"]}
LOOPBACK = ["127.0.0.0/8", "::1/128"]


def policies(*groups: str) -> dict[str, Any]:
    """One policy for ``groups`` on desk-01, which two operators share here (max_sessions: null)."""
    return {"targets": {"desk-01": {"max_sessions": None}},
            "policies": [{"name": "desks", "groups": list(groups), "from": LOOPBACK, "targets": ["desk-*"]}]}


class Served:
    """A ``deskgate serve`` process's addresses and files, and its users' secrets."""

    def __init__(self, workdir: Path, desktop_port: int, changes: dict[str, Any]) -> None:
        self.workdir = workdir
        self.desktop_port = desktop_port
        port = free_port()
        self.listen = {"http": f"127.0.0.1:{port}", "metrics": f"127.0.0.1:{free_port()}"}
        self.port = port
        self.path = self.write(changes)
        self.config = load_config(self.path)
        self.secrets = add_local_users(self.config, USERS)

    def write(self, changes: dict[str, Any]) -> Path:
        return write_config(self.workdir, merge({"listen": self.listen}, changes), self.desktop_port)

    def write_text(self, text: str) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, self.path)  # as an editor or config management would: never half a file

    def signal_reload(self) -> None:
        os.kill(int(self.config.storage.pid_file.read_text()), signal.SIGHUP)

    async def login(self, http: aiohttp.ClientSession, user: str) -> None:
        response = await http.post(f"http://127.0.0.1:{self.port}/api/v1/login", json={
            "username": user, "password": PASSWORD, "totp": pyotp.TOTP(self.secrets[user]).now()})
        assert response.status == 200, await response.text()

    async def metric(self, line_start: str) -> float:
        async with aiohttp.ClientSession() as http:
            text = await (await http.get(f"http://{self.listen['metrics']}/metrics")).text()
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


async def until(condition: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await condition()):
            await asyncio.sleep(0.1)
    return value


async def still_serves(client: WebSocketRFBClient) -> None:
    """The desktop session answers a full update request: it was not dropped or reconnected."""
    await client.send(FramebufferUpdateRequest(False, 0, 0, 16, 16))
    await client.next_event()


async def test_sighup_applies_a_valid_change_without_dropping_an_allowed_session(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    served = Served(tmp_path, desktop.port, policies("operators", "contractors"))
    with gateway_process(served.path, served.port) as url:
        await wait_ready(url)
        async with cookie_session() as alice, cookie_session() as bob:
            await served.login(alice, "alice")
            await served.login(bob, "bob")
            kept, revoked = await open_desktop(alice, url), await open_desktop(bob, url)

            # Contractors lose the desks; a storage change needs a restart and is reported, not applied.
            served.write(merge(policies("operators"), {"storage": {"fsync_interval": "2s"}}))
            served.signal_reload()

            closed = await closed_with(revoked, within=10)
            assert (closed.code, closed.reason) == (CloseCode.ACCESS_CHANGED, "access changed by the administrator")
            await still_serves(kept)
            assert await served.metric('deskgate_config_reloads_total{result="ok"}') == 1
            ended = 'deskgate_sessions_total{outcome="access_changed",protocol="vnc"}'
            assert await until(lambda: served.metric(ended))
            refused = await bob.get(f"{url}/api/v1/targets")
            assert (await refused.json())["targets"] == []
            await still_serves(kept)

    events = await audit_events(served.config)
    (reload,) = [event for event in events if event.action == "config.reload"]
    assert (reload.outcome, reload.detail["trigger"], reload.detail["changed"], reload.detail["restart_needed"],
            reload.detail["sessions_ended"]) == ("ok", "signal", ["policies"], ["storage"], 1)
    closes = {event.user: (event.outcome, event.reason) for event in events if event.action == "session.close"}
    assert closes["bob"] == ("access_changed", "access changed by the administrator")
    assert closes["alice"][0] != "access_changed"  # it ended only when the gateway stopped
    assert "configuration changes that need a restart" in served.path.with_suffix(".log").read_text()


async def test_an_invalid_file_is_refused_and_an_edit_is_picked_up_without_a_signal(
        tmp_path: Path, desktop: XvncDesktop, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    served = Served(tmp_path, desktop.port, policies("operators", "contractors"))
    valid = served.path.read_text()
    with gateway_process(served.path, served.port) as url:
        await wait_ready(url)
        async with cookie_session() as bob:
            await served.login(bob, "bob")

            async def bobs_targets() -> list[str]:
                return [target["name"] for target in (await (await bob.get(f"{url}/api/v1/targets")).json())["targets"]]

            # An invalid file (an unknown clipboard mode on line 19): refused, the old policy stays in force.
            broken = valid.replace("  - desk-*\n", "  - desk-*\n  clipboard: sideways\n")
            served.write_text(broken)
            assert await deskgate("config", "reload", "--config", str(served.path)) == 1
            out = capsys.readouterr().out
            assert "reload refused, the previous configuration stays in force" in out
            assert f"{served.path}:" in out and "policies[0].clipboard: 'sideways' is not a clipboard mode" in out
            assert await served.metric('deskgate_config_reloads_total{result="error"}') >= 1
            assert await bobs_targets() == ["desk-01"]

            # SIGHUP on it again: counted again, and still refused.
            served.signal_reload()
            assert await until(lambda: _at_least(served, "error", 2))
            assert await bobs_targets() == ["desk-01"]

            # Fixed, with a change: deskgate config reload says what changed.
            served.write_text(valid.replace("- contractors\n", "- contractors\n  - auditors\n"))
            assert await deskgate("config", "reload", "--config", str(served.path)) == 0
            assert capsys.readouterr().out == "reloaded: policies\n"

            # An edit without a signal: the contractors lose the desks within a few seconds.
            served.write_text(yaml.safe_dump(merge(merge(base_settings(tmp_path, desktop.port),
                                                         {"listen": served.listen}), policies("operators"))))
            assert await until(lambda: _no_targets(bobs_targets))

    events = [event for event in await audit_events(served.config) if event.action == "config.reload"]
    outcomes = [(event.outcome, event.detail["trigger"]) for event in events]
    assert outcomes[-2:] == [("ok", "signal"), ("ok", "file")]
    assert ("error", "signal") in outcomes
    refused = next(event for event in events if event.outcome == "error")
    assert refused.reason is not None and "policies[0].clipboard" in refused.reason


async def _at_least(served: Served, result: str, count: int) -> bool:
    return await served.metric(f'deskgate_config_reloads_total{{result="{result}"}}') >= count


async def _no_targets(targets: Callable[[], Awaitable[list[str]]]) -> bool:
    return await targets() == []


async def test_config_reload_without_a_running_gateway_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    path = write_config(tmp_path, {})
    assert await deskgate("config", "reload", "--config", str(path)) == 1
    error = capsys.readouterr().err
    assert "no pid file, so no gateway runs with this configuration here" in error


async def test_a_change_of_the_users_file_ends_the_sessions_it_no_longer_allows(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, policies("operators"), desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as alice:
        assert (await gateway.login(alice, "alice")).status == 200
        client = await open_desktop(alice, gateway.url)
        users_file = gateway.config.auth.local.users_file if gateway.config.auth.local is not None else None
        assert users_file is not None
        users = yaml.safe_load(users_file.read_text())
        users["users"]["alice"]["groups"] = ["contractors"]  # moved out of the desks' group, by hand
        partial = users_file.with_suffix(".partial")
        partial.write_text(yaml.safe_dump(users))
        partial.chmod(0o600)
        os.replace(partial, users_file)

        closed = await closed_with(client, within=15)
        assert (closed.code, closed.reason) == (CloseCode.ACCESS_CHANGED, "access changed by the administrator")
    events = await gateway.audit()
    assert [(event.user, event.outcome) for event in events if event.action == "session.close"] == \
        [("alice", "access_changed")]
    assert not [event for event in events if event.action == "config.reload"]  # the config itself did not change


async def test_a_reloaded_allow_list_admits_new_connections_and_ends_sessions_from_outside_it(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, policies("operators"), desktop_port=desktop.port, users=USERS) as gateway, \
            cookie_session() as alice:
        assert (await gateway.login(alice, "alice")).status == 200
        client = await open_desktop(alice, gateway.url)
        write_config(tmp_path, merge(policies("operators"), {"network": {"allow": ["10.0.0.0/8"]}}), desktop.port)
        outcome = await gateway.gateway.app[RELOADER].reload("signal")

        assert (outcome.result, outcome.changed, outcome.kept, outcome.sessions_ended) == ("ok", ("network",), (), 1)
        closed = await closed_with(client, within=10)
        assert (closed.code, closed.reason) == (CloseCode.ACCESS_CHANGED, "access changed by the administrator")
        async with aiohttp.ClientSession() as fresh:
            refused = await fresh.get(f"{gateway.url}/healthz")
            assert refused.status == 403
            assert "is not allowed to use this gateway" in await refused.text()
