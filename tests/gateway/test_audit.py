"""The audit log: hash chain, tamper detection, concurrent appends (tasks, processes), listing, CLI."""

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
from gateway.audit import (
    GENESIS_HASH,
    AuditLog,
    VerifyResult,
    audit_events,
    canonical_json,
    chain_hash,
)

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
