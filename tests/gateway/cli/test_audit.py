"""``deskgate audit list`` and ``verify`` against a real SQLite database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from base.db import Store
from gateway.audit import AuditLog
from gateway.cli.audit import audit_list_command, audit_verify_command
from gateway.config import Config, load_config
from tests.gateway.test_audit import FakeClock, record_five


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    path = tmp_path / "deskgate.yaml"
    path.write_text('storage: {database: "sqlite:///state/deskgate.db"}\n')
    yield load_config(path)


def _fill(config: Config) -> None:
    async def fill() -> None:
        store = await Store.open(config.storage.database)
        try:
            await record_five(AuditLog(store, clock=FakeClock()))
        finally:
            await store.close()
    asyncio.run(fill())


def test_audit_list_command_prints_json_lines(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    assert audit_list_command(config, "alice", "2026-11-25T08:00:03Z", as_json=True) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["id"], e["action"], e["target"]) for e in lines] == [(3, "session.open", "desk-01"),
                                                                    (5, "session.close", "desk-01")]
    assert lines[0]["time"] == "2026-11-25T08:00:04.500000Z" and lines[1]["detail"] == {"bytes": 1234}
    assert {"user", "source", "outcome", "reason", "hash", "prev_hash"} <= lines[0].keys()


def test_audit_list_command_prints_one_readable_line_per_event(config: Config,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    assert audit_list_command(config, None, None, as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert lines[1] == "2026-11-25T08:00:03.000000Z  #2  mallory  10.0.0.6  login  -  failure  (wrong password)"


def test_audit_list_command_refuses_a_bad_since(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit_list_command(config, None, "last tuesday", as_json=False) == 1
    assert "--since: 'last tuesday' is not an ISO-8601 date or time" in capsys.readouterr().err


def test_audit_verify_command_exit_status(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    assert audit_verify_command(config) == 0
    assert capsys.readouterr().out == "audit log intact: 5 events checked\n"

    async def tamper() -> None:
        store = await Store.open(config.storage.database)
        try:
            async with store.transaction() as connection:
                await connection.execute(text("UPDATE audit_events SET user = 'nobody' WHERE id = 2"))
        finally:
            await store.close()
    asyncio.run(tamper())
    assert audit_verify_command(config) == 1
    assert capsys.readouterr().out == ("audit log TAMPERED at event #2: event #2 was edited: its contents do not "
                                       "match its hash (1 events before it are intact)\n")


def test_audit_list_of_a_user_shows_what_was_done_to_them(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    async def fill() -> None:
        store = await Store.open(config.storage.database)
        try:
            audit = AuditLog(store, clock=FakeClock())
            await audit.record("login", user="alice", source="10.0.0.5", outcome="success")
            await audit.record("user.disable", user="root", source="cli", target="alice", outcome="success")
            await audit.record("login", user="bob", source="10.0.0.6", outcome="success")
        finally:
            await store.close()

    asyncio.run(fill())
    assert audit_list_command(config, "alice", None, as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[2:5] for line in lines] == [["alice", "10.0.0.5", "login"],
                                                         ["root", "cli", "user.disable"]]
    assert lines[1].endswith("user.disable  alice  success")
