"""The audit trail a real gateway leaves, read and verified with the CLI; tampering with it is detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.functional.auth_helpers import (
    auth_gateway,
    cookie_session,
    deskgate,
    restore_logging,  # noqa: F401  (a fixture)
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
