"""TOTP through a real gateway: wrong and drifted codes, and replays refused across a restart and a second node."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from auth.errors import LOGIN_REFUSED
from gateway.config import load_config
from gateway.web.app import start_gateway
from tests.functional.auth_helpers import (
    AuthGateway,
    Clock,
    add_local_users,
    auth_gateway,
    cookie_session,
    free_port,
    gateway_process,
    wait_ready,
    write_config,
)

pytestmark = pytest.mark.functional


def wrong_code(gateway: AuthGateway, user: str) -> str:
    valid = {gateway.code(user, steps) for steps in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in valid)


async def test_wrong_and_drifted_codes_on_the_gateways_clock(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = (int(clock.now) // 30) * 30 + 15.0  # mid-step: ±1 and ±2 are unambiguous
    async with auth_gateway(tmp_path, clock=clock) as gateway, cookie_session() as http:
        assert (await gateway.login(http, "alice", code=wrong_code(gateway, "alice"))).status == 401
        for steps in (-2, 2):
            refused = await gateway.login(http, "alice", code=gateway.code("alice", steps))
            assert refused.status == 401, steps
            assert (await refused.json())["error"] == LOGIN_REFUSED  # as for a wrong password: the audit says why
        assert (await gateway.login(http, "alice", code=gateway.code("alice", -1))).status == 200
        assert (await gateway.login(http, "alice", code=gateway.code("alice", 1))).status == 200
        clock.advance(300)  # the phone's clock drifted a step behind, five minutes on
        assert (await gateway.login(http, "alice", code=gateway.code("alice", -1))).status == 200
        reasons = [event.reason for event in await gateway.audit() if event.action == "login"]
        assert reasons == ["wrong authenticator code"] * 3 + [None] * 3


async def test_a_replayed_code_is_refused_after_a_restart_and_on_a_second_node(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, {})
    config = load_config(config_path)
    secret = add_local_users(config)["alice"]
    # A second node: the same files and database, its own listener, in its own process.
    port = free_port()
    settings = yaml.safe_load(config_path.read_text())
    settings["listen"] = {"http": f"127.0.0.1:{port}", "metrics": f"127.0.0.1:{free_port()}"}
    second_config = tmp_path / "node-2.yaml"
    second_config.write_text(yaml.safe_dump(settings))

    first = await start_gateway(config)
    gateway = AuthGateway(first, config, Clock(), {"alice": secret})
    code = gateway.code("alice")
    async with cookie_session() as http:
        try:
            assert (await gateway.login(http, "alice", code=code)).status == 200
            with gateway_process(second_config, port) as second_url:
                await wait_ready(second_url)
                replay = await http.post(f"{second_url}/api/v1/login",
                                         json={"username": "alice", "password": "correct-horse-battery-staple",
                                               "totp": code})
                assert replay.status == 401
                fresh = await http.post(f"{second_url}/api/v1/login",
                                        json={"username": "alice", "password": "correct-horse-battery-staple",
                                              "totp": gateway.code("alice", 1)})
                assert fresh.status == 200  # the second node works; it only refused the replay
        finally:
            await first.stop()
        restarted = await start_gateway(config)
        try:
            gateway.gateway = restarted
            for replayed in (code, gateway.code("alice", 1)):
                assert (await gateway.login(http, "alice", code=replayed)).status == 401
        finally:
            await restarted.stop()
    reasons = [(event.outcome, event.reason) for event in await gateway.audit() if event.action == "login"]
    assert reasons == [("success", None), ("failure", "authenticator code already used"), ("success", None),
                       ("failure", "authenticator code already used"),
                       ("failure", "authenticator code already used")]
