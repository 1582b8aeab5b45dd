"""The audit trail a real gateway leaves, read and verified with the CLI; tampering with it is detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.functional.auth_helpers import (
    PASSWORD,
    add_local_users,
    auth_gateway,
    cookie_session,
    deskgate,
    free_port,
    gateway_process,
    restore_logging,  # noqa: F401  (a fixture)
    wait_ready,
    write_config,
)

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("restore_logging")]


async def test_every_login_attempt_is_audited_and_an_edit_is_detected(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        assert (await gateway.login(http, "alice", password="wrong")).status == 401
        assert (await gateway.login(http, "nobody", password="wrong", code="123456")).status == 401
        assert (await gateway.login(http, "alice", code="000000" if gateway.code("alice") != "000000"
                                    else "111111")).status == 401
        assert (await gateway.login(http, "alice")).status == 200
        token = (await (await http.get(f"{gateway.url}/api/v1/session")).json())["csrf_token"]
        await http.post(f"{gateway.url}/api/v1/logout", headers={"X-CSRF-Token": token})
    config = str(gateway.config.path)

    capsys.readouterr()
    assert await deskgate("audit", "list", "--json", "--config", config) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["user"], e["action"], e["outcome"], e["reason"]) for e in events] == [
        ("alice", "login", "failure", "wrong username or password"),
        ("nobody", "login", "failure", "wrong username or password"),
        ("alice", "login", "failure", "wrong authenticator code"),
        ("alice", "login", "success", None),
        ("alice", "logout", "success", None),
    ]
    assert {e["source"] for e in events} == {"127.0.0.1"}
    assert all(e["time"].endswith("Z") for e in events)
    assert await deskgate("audit", "list", "--user", "nobody", "--config", config) == 0
    only_nobody = capsys.readouterr().out
    assert only_nobody.count("\n") == 1 and "nobody" in only_nobody
    assert await deskgate("audit", "verify", "--config", config) == 0

    # Someone with the database turns the failed code into a success, to cover their tracks.
    database = sqlite3.connect(tmp_path / "deskgate.db")
    with database:
        database.execute("UPDATE audit_events SET outcome = 'success', reason = NULL WHERE id = 3")
    database.close()
    capsys.readouterr()
    assert await deskgate("audit", "verify", "--config", config) == 1
    verdict = capsys.readouterr().out
    assert "TAMPERED at event #3" in verdict and "2 events before it are intact" in verdict

    database = sqlite3.connect(tmp_path / "deskgate.db")
    with database:
        database.execute("DELETE FROM audit_events WHERE id = 3")
    database.close()
    assert await deskgate("audit", "verify", "--config", config) == 1
    assert "event #4 does not follow event #2" in capsys.readouterr().out


async def test_deleting_the_newest_events_of_a_served_gateway_is_detected(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``deskgate serve`` checkpoints the chain's head at start-up and shutdown; cutting the tail then shows."""
    port = free_port()
    listen = {"http": f"127.0.0.1:{port}", "metrics": f"127.0.0.1:{free_port()}"}
    config_path = write_config(tmp_path, {"listen": listen, "audit": {"node": "gw-1"}})
    config = load_config(config_path)
    add_local_users(config)
    with gateway_process(config_path, port) as url:
        await wait_ready(url)
        async with cookie_session() as http:
            for password in ("wrong", "also wrong", PASSWORD):
                await http.post(f"{url}/api/v1/login", json={"username": "alice", "password": password, "totp": "0"})
    assert config.audit.checkpoint_key_file.stat().st_mode & 0o777 == 0o600
    checkpoints = (config.audit.checkpoint_dir / "gw-1.checkpoints").read_text().splitlines()
    assert checkpoints[-1].split(":")[3:5] == ["3", "3"]  # written at shutdown: all three attempts
    assert 'msg="audit checkpoint"' in config_path.with_suffix(".log").read_text()
    capsys.readouterr()
    assert await deskgate("audit", "verify", "--config", str(config_path)) == 0

    database = sqlite3.connect(tmp_path / "deskgate.db")
    with database:
        database.execute("DELETE FROM audit_events WHERE id > 1")  # hide the last two attempts
    database.close()
    capsys.readouterr()
    assert await deskgate("audit", "verify", "--config", str(config_path)) == 1
    verdict = capsys.readouterr().out
    assert verdict.startswith("audit log TRUNCATED: the log ends at event #1 (1 events), but node gw-1's checkpoint")
    assert "at least 2 of the newest events" in verdict
