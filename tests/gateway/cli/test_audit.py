"""``deskgate audit list`` and ``verify`` against a real SQLite database and real checkpoint files."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text

from auth.secretbox import load_or_create_key
from base.db import Store
from gateway.audit import AuditLog, CheckpointWriter
from gateway.audit_checkpoints import CheckpointKey
from gateway.cli import main
from gateway.cli.audit import audit_list_command, audit_verify_command
from gateway.config import Config, load_config
from tests.gateway.test_audit import FakeClock, record_five

T = TypeVar("T")
CHECKPOINT_TIME = "2026-11-25T08:01:00.000000Z"


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    path = tmp_path / "deskgate.yaml"
    path.write_text('storage: {database: "sqlite:///state/deskgate.db"}\naudit: {node: gw-1}\n')
    yield load_config(path)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``main`` installs its own log handler on the root logger; put pytest's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def _with_audit(config: Config, use: Callable[[AuditLog, Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await Store.open(config.storage.database)
        try:
            return await use(AuditLog(store, clock=FakeClock()), store)
        finally:
            await store.close()
    return asyncio.run(run())


def _fill(config: Config) -> None:
    _with_audit(config, lambda audit, _: record_five(audit))


def _checkpoint(config: Config) -> None:
    """What a gateway node does at intervals and at shutdown, at a fixed time."""
    def writer(audit: AuditLog) -> CheckpointWriter:
        key = CheckpointKey(load_or_create_key(config.audit.checkpoint_key_file))
        return CheckpointWriter(audit, key, config.audit.checkpoint_dir, config.audit.node,
                                config.audit.checkpoint_interval, clock=lambda: 1795593660.0)
    _with_audit(config, lambda audit, _: writer(audit).write())


def _sql(config: Config, statement: str) -> None:
    async def run(_: AuditLog, store: Store) -> None:
        async with store.transaction() as connection:
            await connection.execute(text(statement))
    _with_audit(config, run)


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
    _checkpoint(config)
    assert audit_verify_command(config) == 0
    assert capsys.readouterr().out == ("audit log intact: 5 events checked, anchored up to event #5 by node gw-1's "
                                       f"checkpoint of {CHECKPOINT_TIME} (1 checkpoints from 1 nodes)\n")

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


def test_a_tail_truncated_audit_log_fails_verify(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """The attack: someone with the database deletes the newest events, to hide what they did."""
    _fill(config)
    _checkpoint(config)
    _sql(config, "DELETE FROM audit_events WHERE id > 3")
    assert main(["audit", "verify", "--config", str(config.path)]) == 1
    assert capsys.readouterr().out == (
        "audit log TRUNCATED: the log ends at event #3 (3 events), but node gw-1's checkpoint of "
        f"{CHECKPOINT_TIME} recorded 5 events up to event #5: at least 2 of the newest events, recorded before "
        f"{CHECKPOINT_TIME}, were deleted (the 3 events left are intact)\n")


def test_a_rolled_back_audit_log_fails_verify(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    """Newest events deleted, and new ones written after them (or an older copy restored and used)."""
    _fill(config)
    _checkpoint(config)
    _sql(config, "DELETE FROM audit_events WHERE id > 3")
    _fill(config)
    assert audit_verify_command(config) == 1
    verdict = capsys.readouterr().out
    assert verdict.startswith("audit log TAMPERED at event #1: event #5 is not the event node gw-1's checkpoint "
                              f"of {CHECKPOINT_TIME} recorded as #5: the log was rolled back")
    _checkpoint(config)  # the gateway goes on checkpointing the new head: the old checkpoint still tells
    assert audit_verify_command(config) == 1
    assert "TAMPERED at event #1: event #5 is not the event" in capsys.readouterr().out


def test_a_forged_checkpoint_is_rejected(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    _checkpoint(config)
    forger = CheckpointKey(bytes(32))  # without the key file: a forger's own key
    path = config.audit.checkpoint_dir / "gw-1.checkpoints"
    genuine = path.read_text()
    token = genuine.strip()
    forged = token.rsplit(":", 2)[0].replace(":5:5:", ":9:9:")
    with open(path, "a") as file:
        file.write(f"{forged}:{forger.key_id}:{'0' * 64}\n{token.replace(':5:5:', ':9:9:')}\n")
    assert audit_verify_command(config) == 1
    out = capsys.readouterr().out.splitlines()
    key_id = CheckpointKey(config.audit.checkpoint_key_file.read_bytes()).key_id
    assert out == [
        f"audit checkpoint REJECTED: {path}:2: checkpoint was made with key {forger.key_id}, but the key file "
        f"holds key {key_id}: give this command the key file of the gateway nodes, or the checkpoint is forged",
        f"audit checkpoint REJECTED: {path}:3: checkpoint has a wrong HMAC: the checkpoint was forged or altered",
        "audit log intact: 5 events checked, anchored up to event #5 by node gw-1's checkpoint of "
        f"{CHECKPOINT_TIME} (1 checkpoints from 1 nodes)",
    ]


def test_checkpoints_of_other_nodes_and_from_logs(config: Config, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Each node writes its own file; a node's file kept elsewhere, or its log, is given with --checkpoints."""
    _fill(config)
    _checkpoint(config)
    elsewhere = replace(config, audit=replace(config.audit, node="gw-2", checkpoint_dir=tmp_path / "gw-2"))
    _with_audit(config, lambda audit, _: audit.record("logout", user="alice", source="10.0.0.5", outcome="success"))
    _checkpoint(elsewhere)
    token = (tmp_path / "gw-2" / "gw-2.checkpoints").read_text().strip()
    log = tmp_path / "gw-2.log"
    log.write_text(f'time=2026-11-25T08:01:00 level=info logger=gateway.audit msg="audit checkpoint" node=gw-2 '
                   f"head_id=6 count=6 checkpoint={token}\n")
    _sql(config, "DELETE FROM audit_events WHERE id = 6")
    assert audit_verify_command(config) == 0  # gw-1 alone cannot tell: it last saw event #5
    assert "anchored up to event #5" in capsys.readouterr().out
    assert audit_verify_command(config, [log]) == 1
    assert capsys.readouterr().out.startswith(
        "audit log TRUNCATED: the log ends at event #5 (5 events), but node gw-2's checkpoint")


def test_verify_says_which_events_no_checkpoint_covers(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    assert audit_verify_command(config) == 0
    assert capsys.readouterr().out == (
        "audit log intact: 5 events checked, but NOT ANCHORED: no checkpoint found in "
        f"{config.audit.checkpoint_dir}, so deleting the newest events would go unnoticed; the gateway writes "
        "checkpoints while it runs (or pass --checkpoints with a log that holds them)\n")
    _checkpoint(config)
    _with_audit(config, lambda audit, _: audit.record("logout", user="alice", source="10.0.0.5", outcome="success"))
    assert audit_verify_command(config) == 0
    assert capsys.readouterr().out.endswith(
        "(1 checkpoints from 1 nodes); the newest 1 events are not anchored yet: deleting them would go unnoticed "
        "until the next checkpoint\n")


def test_verify_needs_the_key_to_read_checkpoints(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(config)
    _checkpoint(config)
    config.audit.checkpoint_key_file.unlink()
    assert audit_verify_command(config) == 1
    assert capsys.readouterr().err == (
        f"deskgate: cannot check the audit checkpoints: the key file {config.audit.checkpoint_key_file} is "
        "missing; copy it from a gateway node (every node uses the same)\n")


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
