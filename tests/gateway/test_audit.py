"""The audit log: hash chain, tamper detection, concurrent appends (tasks, processes), listing;
checkpoints of the chain's head that make a cut tail or a rolled-back table visible."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from base.db import Store
from base.errors import ConfigError
from base.metrics import Metrics
from gateway.audit import (
    EMPTY_CHAIN,
    GENESIS_HASH,
    AuditLog,
    ChainHead,
    CheckpointWriter,
    VerifyResult,
    audit_events,
    canonical_json,
    chain_hash,
)
from gateway.audit_checkpoints import (
    Checkpoint,
    CheckpointKey,
    append_checkpoint,
    checkpoint_file,
    checkpoint_files,
    last_checkpoint,
    read_checkpoints,
)
from gateway.config import load_config

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.fixture
def audit(store: Store) -> AuditLog:
    return AuditLog(store, clock=FakeClock())


async def record_five(audit: AuditLog) -> None:
    await audit.record("login", user="alice", source="10.0.0.5", outcome="success", method="local")
    await audit.record("login", user="mallory", source="10.0.0.6", outcome="failure", reason="wrong password")
    await audit.record("session.open", user="alice", source="10.0.0.5", target="desk-01", outcome="allowed")
    await audit.record("recording.view", user="bob", source="10.0.0.7", target="20261125T080000Z-0123abcd",
                       outcome="denied", reason="no policy lets this user see recordings")
    await audit.record("session.close", user="alice", source="10.0.0.5", target="desk-01", outcome="success",
                       bytes=1234, reason="closed")


async def test_events_are_chained_from_the_genesis_hash(audit: AuditLog) -> None:
    first = await audit.record("login", user="alice", source="10.0.0.5", outcome="success", method="local")
    second = await audit.record("logout", user="alice", source="10.0.0.5", outcome="success")
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    expected = canonical_json({"time": "2026-11-25T08:00:01.500000Z", "user": "alice", "source": "10.0.0.5",
                               "action": "login", "target": None, "outcome": "success", "reason": None,
                               "detail": {"method": "local"}})
    assert first.hash == hashlib.sha256((GENESIS_HASH + expected).encode()).hexdigest()
    assert (first.id, second.id) == (1, 2)


async def test_detail_is_stored_as_the_database_gives_it_back(audit: AuditLog) -> None:
    event = await audit.record("admin.user_add", user="root", source=None, outcome="success",
                               groups=("ops", "dev"), address=Path("/x"))
    assert event.detail == {"groups": ["ops", "dev"], "address": "/x"}
    assert (await audit.list())[0] == event
    assert (await audit.verify()).ok


async def test_every_event_is_also_a_structured_log_line(audit: AuditLog, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        allowed = await audit.record("recording.list", user="sue", source="10.0.0.9", outcome="allowed", count=3)
        await audit.record("login", user="eve", source="10.0.0.66", outcome="failure", reason="wrong code")
    first, second = caplog.records
    assert first.getMessage() == "audit recording.list" and first.levelno == logging.INFO
    ctx = first.ctx  # type: ignore[attr-defined]
    assert ctx["user"] == "sue" and ctx["source"] == "10.0.0.9" and ctx["outcome"] == "allowed"
    assert ctx["detail"] == {"count": 3} and ctx["hash"] == allowed.hash and ctx["audit_id"] == allowed.id
    assert second.levelno == logging.WARNING and second.ctx["reason"] == "wrong code"  # type: ignore[attr-defined]


async def test_list_filters_by_user_and_time_and_keeps_the_newest(audit: AuditLog) -> None:
    await record_five(audit)
    assert [e.action for e in await audit.list(user="alice")] == ["login", "session.open", "session.close"]
    since = datetime.fromtimestamp(T0 + 4.5, UTC)  # the third event's time
    assert [e.id for e in await audit.list(since=since)] == [3, 4, 5]
    assert [e.id for e in await audit.list(limit=2)] == [4, 5]
    assert await audit.list(user="nobody") == []


async def test_verify_accepts_an_intact_chain(audit: AuditLog) -> None:
    assert await audit.verify() == VerifyResult(True, 0)
    await record_five(audit)
    verdict = await audit.verify()
    assert (verdict.ok, verdict.checked, verdict.first_bad_id) == (True, 5, None)


@pytest.mark.parametrize("change", [
    {"outcome": "success"},
    {"user": "someone-else"},
    {"reason": None},
    {"detail": '{"bytes":1}'},
    {"time": datetime(2026, 11, 25, 9, 0, tzinfo=UTC)},
])
async def test_verify_detects_an_edited_event(audit: AuditLog, store: Store, change: dict[str, object]) -> None:
    await record_five(audit)
    async with store.transaction() as connection:
        await connection.execute(update(audit_events).where(audit_events.c.id == 4).values(**change))
    verdict = await audit.verify()
    assert (verdict.ok, verdict.checked, verdict.first_bad_id) == (False, 3, 4)
    assert verdict.reason == "event #4 was edited: its contents do not match its hash"


async def test_verify_detects_detail_that_is_no_longer_json(audit: AuditLog, store: Store) -> None:
    await record_five(audit)
    async with store.transaction() as connection:
        await connection.execute(update(audit_events).where(audit_events.c.id == 2).values(detail="{oops"))
    verdict = await audit.verify()
    assert (verdict.ok, verdict.first_bad_id) == (False, 2)
    assert "not JSON" in (verdict.reason or "")


@pytest.mark.parametrize(("deleted", "first_bad"), [(1, 2), (3, 4)])
async def test_verify_detects_a_deleted_event(audit: AuditLog, store: Store, deleted: int, first_bad: int) -> None:
    await record_five(audit)
    async with store.transaction() as connection:
        await connection.execute(delete(audit_events).where(audit_events.c.id == deleted))
    verdict = await audit.verify()
    assert (verdict.ok, verdict.first_bad_id) == (False, first_bad)
    assert "deleted or inserted" in (verdict.reason or "")


async def test_verify_detects_an_inserted_event_even_with_a_valid_own_hash(audit: AuditLog, store: Store) -> None:
    """A forger who links the new event to its predecessor still breaks the link of its successor."""
    await record_five(audit)
    forged_time = datetime(2026, 11, 25, 8, 0, 3, 500000, tzinfo=UTC)
    fields: dict[str, object] = {"time": "2026-11-25T08:00:03.500000Z", "user": "alice", "source": "10.0.0.5", "action": "logout",
              "target": None, "outcome": "success", "reason": None, "detail": {}}
    async with store.transaction() as connection:
        for moved in (5, 4, 3):  # make room after event #2
            await connection.execute(update(audit_events).where(audit_events.c.id == moved).values(id=moved + 1))
        predecessor = str(await connection.scalar(select(audit_events.c.hash).where(audit_events.c.id == 2)))
        await connection.execute(insert(audit_events).values(
            id=3, time=forged_time, user="alice", source="10.0.0.5", action="logout", target=None,
            outcome="success", reason=None, detail="{}", prev_hash=predecessor,
            hash=chain_hash(predecessor, fields)))
    verdict = await audit.verify()
    assert (verdict.ok, verdict.checked, verdict.first_bad_id) == (False, 3, 4)
    assert verdict.reason == ("event #4 does not follow event #3: an event between them was deleted or inserted, "
                              "or the link was edited")


async def test_concurrent_appends_from_two_stores_stay_one_chain(tmp_path: Path) -> None:
    """Two Store objects stand for two processes: only the database serializes them."""
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = await Store.open(url), await Store.open(url)
    try:
        logs = [AuditLog(first), AuditLog(second)]
        await asyncio.gather(*(logs[n % 2].record("login", user=f"u{n}", source="10.0.0.1", outcome="success")
                               for n in range(40)))
        verdict = await logs[0].verify()
        assert (verdict.ok, verdict.checked) == (True, 40)
    finally:
        await first.close()
        await second.close()


WRITER = """
import asyncio, sys
from gateway.audit import AuditLog
from base.db import Store

async def main() -> None:
    store = await Store.open(sys.argv[1])
    audit = AuditLog(store)
    for n in range(int(sys.argv[2])):
        await audit.record("login", user="child", source="10.0.0.2", outcome="success", n=n)
    await store.close()

asyncio.run(main())
"""


async def test_appends_from_another_process_interleave_into_one_chain(tmp_path: Path, audit: AuditLog) -> None:
    url = f"sqlite:///{tmp_path}/deskgate.db"
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, url, "60",
                                                 cwd=Path(__file__).parents[2], stderr=subprocess.PIPE)
    mine = 0
    while child.returncode is None and mine < 5000:  # until the child is done
        await audit.record("login", user="parent", source="10.0.0.1", outcome="success")
        mine += 1
        await asyncio.sleep(0)
    _, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, stderr.decode()
    verdict = await audit.verify()
    assert verdict.ok and verdict.checked == 60 + mine
    users = "".join(event.user[0] for event in await audit.list(limit=None) if event.user)
    assert "pc" in users and "cp" in users  # the two writers really interleaved


# --- checkpoints: the chain's head, anchored outside the database ---

KEY = CheckpointKey(bytes(range(32)))
OTHER_KEY = CheckpointKey(bytes(32))
CHECKPOINT_TIME = datetime(2026, 11, 25, 8, 1, tzinfo=UTC)


def writer_for(audit: AuditLog, directory: Path, node: str = "gw-1", metrics: Metrics | None = None,
               interval: float = 60.0) -> CheckpointWriter:
    return CheckpointWriter(audit, KEY, directory, node, interval, metrics, clock=lambda: CHECKPOINT_TIME.timestamp())


async def delete_events_after(store: Store, last_kept: int) -> None:
    async with store.transaction() as connection:
        await connection.execute(delete(audit_events).where(audit_events.c.id > last_kept))


def test_a_checkpoint_token_opens_only_with_its_key_and_unaltered() -> None:
    checkpoint = Checkpoint("gw-1", CHECKPOINT_TIME, 5, 5, "ab" * 32)
    token = KEY.sign(checkpoint)
    assert token.startswith("dgcp1:gw-1:20261125T080100Z:5:5:" + "ab" * 32 + ":" + KEY.key_id + ":")
    assert KEY.open(token) == checkpoint
    for field_index, altered in [(3, "6"), (4, "4"), (2, "20261125T080200Z"), (1, "gw-2")]:
        parts = token.split(":")
        parts[field_index] = altered
        with pytest.raises(ValueError, match="wrong HMAC: the checkpoint was forged or altered"):
            KEY.open(":".join(parts))
    with pytest.raises(ValueError, match=f"made with key {KEY.key_id}, but the key file holds key {OTHER_KEY.key_id}"):
        OTHER_KEY.open(token)
    forged = OTHER_KEY.sign(checkpoint).replace(OTHER_KEY.key_id, KEY.key_id)  # a forger copies the key id
    with pytest.raises(ValueError, match="wrong HMAC"):
        KEY.open(forged)
    for malformed in ("dgcp1:gw-1", token + "0", token.replace("gw-1", "gw/1"), token.replace(":5:5:", ":5:-5:")):
        with pytest.raises(ValueError, match="not a well-formed checkpoint"):
            KEY.open(malformed)
    with pytest.raises(ValueError, match="count that does not fit"):
        KEY.open(KEY.sign(Checkpoint("gw-1", CHECKPOINT_TIME, 3, 4, "ab" * 32)))


def test_checkpoint_files_are_append_only_private_and_read_back_with_their_places(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    path = checkpoint_file(directory, "gw-1")
    first, second = (Checkpoint("gw-1", CHECKPOINT_TIME, n, n, f"{n:064x}") for n in (3, 7))
    append_checkpoint(path, KEY.sign(first))
    append_checkpoint(path, KEY.sign(second))
    assert path.stat().st_mode & 0o777 == 0o600 and directory.stat().st_mode & 0o777 == 0o700
    assert last_checkpoint(path, KEY) == second
    assert last_checkpoint(tmp_path / "none.checkpoints", KEY) is None
    log = tmp_path / "gateway.log"  # a log line holds the same token
    log.write_text(f'time=x level=info msg="audit checkpoint" node=gw-2 checkpoint={KEY.sign(first)}\n'
                   f"checkpoint={OTHER_KEY.sign(second)}\n")
    with open(path, "a") as file:
        file.write(KEY.sign(second)[:40])  # the node died while writing its next checkpoint
    (directory / "notes.txt").write_text("not a checkpoint file")
    assert checkpoint_files(directory) == [path] and checkpoint_files(tmp_path / "missing") == []
    reading = read_checkpoints(KEY, [path, log])
    assert [(found.checkpoint, found.where) for found in reading.found] == [
        (first, f"{path}:1"), (second, f"{path}:2"), (first, f"{log}:1")]
    assert reading.torn == (f"{path}:3",)
    assert reading.rejected == (f"{log}:2: checkpoint was made with key {OTHER_KEY.key_id}, but the key file "
                                f"holds key {KEY.key_id}: give this command the key file of the gateway nodes, "
                                "or the checkpoint is forged",)
    assert last_checkpoint(path, KEY) == second  # past the torn line


async def test_head_counts_the_chain_and_says_whether_an_earlier_head_still_holds(audit: AuditLog,
                                                                                   store: Store) -> None:
    assert await audit.head() == (EMPTY_CHAIN, True)
    await record_five(audit)
    head, holds = await audit.head()
    assert (head.id, head.count, holds) == (5, 5, True)
    third = ChainHead(3, (await audit.list())[2].hash, 3)
    assert await audit.head(third) == (head, True)
    await delete_events_after(store, 2)
    head, holds = await audit.head(third)
    assert (head.id, head.count, holds) == (2, 2, False)
    await audit.record("login", user="mallory", source="10.0.0.6", outcome="success")
    head, holds = await audit.head(third)  # SQLite gives the new event id 3 again: another hash
    assert (head.id, head.count, holds) == (3, 3, False)


async def test_the_writer_checkpoints_the_head_to_its_file_and_the_log_when_it_moved(
        audit: AuditLog, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    writer = writer_for(audit, tmp_path / "checkpoints", metrics=metrics)
    await record_five(audit)
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        checkpoint = await writer.write()
        assert await writer.write() is None  # nothing new
    head = (await audit.list())[-1]
    assert checkpoint == Checkpoint("gw-1", CHECKPOINT_TIME, 5, 5, head.hash)
    token = (tmp_path / "checkpoints" / "gw-1.checkpoints").read_text()
    assert token == KEY.sign(checkpoint) + "\n"
    [line] = [record for record in caplog.records if record.getMessage() == "audit checkpoint"]
    assert line.ctx == {"node": "gw-1", "head_id": 5, "count": 5, "head_hash": head.hash,  # type: ignore[attr-defined]
                        "checkpoint": token.strip()}
    assert metrics.audit_checkpoints_total.labels(result="written")._value.get() == 1
    await audit.record("logout", user="alice", source="10.0.0.5", outcome="success")
    moved = await writer.write()
    assert moved is not None and (moved.head_id, moved.count) == (6, 6)


async def test_the_writer_reports_a_rollback_of_what_it_checkpointed(audit: AuditLog, store: Store, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    writer = writer_for(audit, tmp_path, metrics=metrics)
    await record_five(audit)
    await writer.write()
    await delete_events_after(store, 3)
    with caplog.at_level(logging.ERROR, logger="gateway.audit"):
        checkpoint = await writer.write()
    assert checkpoint is not None and (checkpoint.head_id, checkpoint.count) == (3, 3)
    assert "audit log rolled back" in caplog.text
    assert metrics.audit_chain_rollbacks_total._value.get() == 1
    verdict = await audit.verify(read_checkpoint_file(tmp_path / "gw-1.checkpoints"))
    assert not verdict.ok and verdict.truncated  # the newer checkpoint does not absolve the older one


def read_checkpoint_file(path: Path) -> list[Checkpoint]:
    reading = read_checkpoints(KEY, [path])
    assert not reading.rejected and not reading.torn
    return [found.checkpoint for found in reading.found]


async def test_running_checkpoints_at_start_at_intervals_and_at_shutdown(audit: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "gw-1.checkpoints"
    await audit.record("login", user="alice", source="10.0.0.5", outcome="success")
    async with writer_for(audit, tmp_path, interval=0.01).running():
        assert [c.count for c in read_checkpoint_file(path)] == [1]  # at start-up
        await audit.record("logout", user="alice", source="10.0.0.5", outcome="success")
        async with asyncio.timeout(10):
            while len(read_checkpoint_file(path)) < 2:
                await asyncio.sleep(0.01)
        last = await audit.record("login", user="bob", source="10.0.0.7", outcome="success")
    checkpoints = read_checkpoint_file(path)
    assert (checkpoints[-1].head_hash, checkpoints[-1].count) == (last.hash, 3)  # at shutdown at the latest
    assert [c.count for c in checkpoints] == sorted({c.count for c in checkpoints})  # only when the head moved
    async with writer_for(audit, tmp_path).running():  # a restart with nothing new adds nothing
        pass
    assert read_checkpoint_file(path) == checkpoints


async def test_verify_names_the_newest_checkpoint_and_the_events_after_it(audit: AuditLog, tmp_path: Path) -> None:
    writer = writer_for(audit, tmp_path)
    await record_five(audit)
    checkpoint = await writer.write()
    await audit.record("logout", user="alice", source="10.0.0.5", outcome="success")
    verdict = await audit.verify([checkpoint] if checkpoint else [])
    assert verdict == VerifyResult(True, 6, anchor=checkpoint, unanchored=1)


@pytest.mark.parametrize("kept", [3, 0])
async def test_verify_detects_deleted_newest_events_up_to_the_checkpoint(audit: AuditLog, store: Store,
                                                                         tmp_path: Path, kept: int) -> None:
    writer = writer_for(audit, tmp_path)
    await record_five(audit)
    checkpoint = await writer.write()
    assert checkpoint is not None
    assert (await audit.verify()).ok  # without the checkpoint the cut is invisible
    await delete_events_after(store, kept)
    verdict = await audit.verify([checkpoint])
    assert (verdict.ok, verdict.truncated, verdict.checked, verdict.first_bad_id) == (False, True, kept, None)
    ends = "ends at event #3 (3 events)" if kept else "is empty"
    assert verdict.reason == (f"the log {ends}, but node gw-1's checkpoint of 2026-11-25T08:01:00.000000Z "
                              f"recorded 5 events up to event #5: at least {5 - kept} of the newest events, "
                              "recorded before 2026-11-25T08:01:00.000000Z, were deleted")


async def test_verify_detects_a_rollback_even_when_new_events_follow(audit: AuditLog, store: Store,
                                                                     tmp_path: Path) -> None:
    """Tail cut (or an old copy restored), then the gateway goes on: SQLite reuses the ids."""
    writer = writer_for(audit, tmp_path)
    await record_five(audit)
    first = await writer.write()
    await audit.record("logout", user="alice", source="10.0.0.5", outcome="success")
    second = await writer.write()
    await delete_events_after(store, 3)
    for _ in range(4):
        await audit.record("login", user="mallory", source="10.0.0.6", outcome="success")
    verdict = await audit.verify([c for c in (second, first) if c])
    assert (verdict.ok, verdict.checked, verdict.first_bad_id, verdict.anchor) == (False, 0, 1, None)
    assert verdict.reason == (
        "event #5 is not the event node gw-1's checkpoint of 2026-11-25T08:01:00.000000Z recorded as #5: the log "
        "was rolled back (its newest events deleted, or an older copy restored) and other events were written "
        "since; events from #1 on are not the ones checkpointed")
    early = Checkpoint("gw-1", CHECKPOINT_TIME, 2, 2, (await audit.list())[1].hash)
    verdict = await audit.verify([early, *(c for c in (second, first) if c)])
    assert (verdict.checked, verdict.first_bad_id, verdict.anchor) == (2, 3, early)


async def test_verify_detects_a_checkpointed_event_the_chain_skips(audit: AuditLog, store: Store,
                                                                   tmp_path: Path) -> None:
    """As on PostgreSQL, whose ids are never reused: the tail is cut and new events get new ids."""
    writer = writer_for(audit, tmp_path)
    await record_five(audit)
    checkpoint = await writer.write()
    await delete_events_after(store, 3)
    await audit.record("login", user="mallory", source="10.0.0.6", outcome="success")
    async with store.transaction() as connection:
        await connection.execute(update(audit_events).where(audit_events.c.id == 4).values(id=9))
    verdict = await audit.verify([checkpoint] if checkpoint else [])
    assert (verdict.ok, verdict.first_bad_id) == (False, 1)
    assert (verdict.reason or "").startswith("event #5, which node gw-1's checkpoint of 2026-11-25T08:01:00.000000Z "
                                             "recorded, is gone and the log goes on without it: the log was rolled "
                                             "back")


async def test_checkpoints_of_several_nodes_on_one_database_agree(tmp_path: Path) -> None:
    """Two nodes (two Stores on one database) record and checkpoint in turn, each to its own file."""
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = await Store.open(url), await Store.open(url)
    try:
        logs = [AuditLog(first), AuditLog(second)]
        writers = [writer_for(logs[0], tmp_path / "cp", "gw-1"), writer_for(logs[1], tmp_path / "cp", "gw-2")]
        for n in range(12):
            await logs[n % 2].record("login", user=f"u{n}", source="10.0.0.1", outcome="success")
            if n % 3 == 2:
                await writers[n % 2].write()
        files = checkpoint_files(tmp_path / "cp")
        assert [path.name for path in files] == ["gw-1.checkpoints", "gw-2.checkpoints"]
        checkpoints = [found.checkpoint for found in read_checkpoints(KEY, files).found]
        assert sorted((c.node, c.count) for c in checkpoints) == [("gw-1", 3), ("gw-1", 9), ("gw-2", 6), ("gw-2", 12)]
        verdict = await logs[0].verify(checkpoints)
        assert verdict.ok and verdict.anchor is not None and (verdict.anchor.node, verdict.checked) == ("gw-2", 12)
        await delete_events_after(first, 10)
        verdict = await logs[1].verify(checkpoints)
        assert verdict.truncated and "node gw-2's checkpoint" in (verdict.reason or "")
        verdict = await logs[1].verify([c for c in checkpoints if c.node == "gw-1"])  # one node's file alone
        assert verdict.ok and verdict.unanchored == 1  # gw-1 last anchored event #9
    finally:
        await first.close()
        await second.close()


def test_the_audit_section_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text("")
    audit = load_config(path).audit
    assert audit.checkpoint_key_file == tmp_path / "var/audit.key"
    assert audit.checkpoint_dir == tmp_path / "var/audit-checkpoints"
    assert audit.checkpoint_interval == 60.0 and audit.node
    path.write_text("audit: {node: gw-7, checkpoint_interval: 10s, checkpoint_dir: /srv/cp, "
                    "checkpoint_key_file: keys/audit.key}\n")
    audit = load_config(path).audit
    assert (audit.node, audit.checkpoint_interval, audit.checkpoint_dir, audit.checkpoint_key_file) == (
        "gw-7", 10.0, Path("/srv/cp"), tmp_path / "keys/audit.key")
    path.write_text("audit:\n  node: ../gw\n")
    with pytest.raises(ConfigError, match=r"2: audit.node: '../gw' is not a node name"):
        load_config(path)


async def test_from_config_creates_the_key_file_once(audit: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text("audit: {node: gw-1}\n")
    config = load_config(path).audit
    writer = CheckpointWriter.from_config(audit, config)
    assert config.checkpoint_key_file.stat().st_mode & 0o777 == 0o600
    assert CheckpointWriter.from_config(audit, config).key.key_id == writer.key.key_id
    assert writer.path == tmp_path / "var/audit-checkpoints/gw-1.checkpoints"


async def test_verify_reports_checkpoints_that_disagree_about_one_event(audit: AuditLog, tmp_path: Path) -> None:
    """A node that saw another event #5 (the table was changed, checkpointed, then restored) still tells."""
    await record_five(audit)
    genuine = await writer_for(audit, tmp_path).write()
    assert genuine is not None
    other = Checkpoint("gw-2", datetime(2026, 11, 25, 9, 0, tzinfo=UTC), 5, 5, "ab" * 32)
    verdict = await audit.verify([other, genuine])
    assert (verdict.ok, verdict.first_bad_id, verdict.anchor, verdict.checked) == (False, 5, genuine, 5)
    assert (verdict.reason or "").startswith("event #5 is not the event node gw-2's checkpoint of "
                                             "2026-11-25T09:00:00.000000Z recorded as #5")


async def test_a_users_history_includes_what_administrators_did_to_them(audit: AuditLog) -> None:
    await audit.record("login", user="alice", source="10.0.0.5", outcome="success")
    await audit.record("user.disable", user="root", source="cli", target="alice", outcome="success", note="left")
    await audit.record("user.totp_reset", user="root", source="cli", target="bob", outcome="success")
    await audit.record("session.open", user="bob", source="10.0.0.6", target="alice", outcome="allowed")  # a desktop
    await audit.record("user.enable", user="root", source="cli", target="alice", outcome="success")
    await audit.record("user.disable", user="root", source="cli", target="alice_b", outcome="success")
    assert [(e.user, e.action, e.target) for e in await audit.list(user="alice")] == [
        ("alice", "login", None), ("root", "user.disable", "alice"), ("root", "user.enable", "alice")]
    assert [e.action for e in await audit.list(user="root")] == ["user.disable", "user.totp_reset", "user.enable",
                                                                  "user.disable"]
    assert [e.action for e in await audit.list(user="bob")] == ["user.totp_reset", "session.open"]
    assert [e.action for e in await audit.list(user="alice_%")] == []  # a name is no pattern
