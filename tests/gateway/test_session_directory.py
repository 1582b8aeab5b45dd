"""The live-session directory on a real SQLite database: publish, keep current, expire, end across nodes, count viewers.

Two :class:`SessionDirectory` objects on one database play two nodes; each has its own clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from base.db import Store
from base.metrics import Metrics
from gateway.errors import TargetInUse
from gateway.session_directory import SessionDirectory
from gateway.sessions import (
    EndRequest,
    LiveSession,
    SessionControl,
    SessionRegistry,
    is_live_session_id,
    new_session_id,
)
from tests.functional.auth_helpers import Clock

STARTED = 1_795_564_800.0  # 2026-11-25 00:00 UTC


def live(session_id: str, user: str = "alice", *groups: str) -> LiveSession:
    return LiveSession(session_id, "vnc", user, "10.0.0.5", "desk-01", "web-" + session_id,
                       frozenset(groups or ("operators",)), started=STARTED)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = STARTED + 60
    return clock


@pytest.fixture
def nodes(store: Store, clock: Clock) -> tuple[SessionDirectory, SessionDirectory]:
    return SessionDirectory(store, "gw-a", clock), SessionDirectory(store, "gw-b", clock)


def test_session_ids_are_unique_across_nodes_and_checked() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_live_session_id(session_id) for session_id in ids)
    assert new_session_id(STARTED).startswith("6b062500-")
    for bad in ("", "../etc", "6b062500-0001", "6A1F2A80-0123abcd", "6b062500-0123abcd/x"):
        assert not is_live_session_id(bad)


async def test_every_node_lists_every_nodes_sessions(nodes: tuple[SessionDirectory, SessionDirectory],
                                                     clock: Clock) -> None:
    a, b = nodes
    await a.publish(live("6b062500-000000a1", "alice", "operators", "staff"))
    await b.publish(live("6b062500-000000b2", "bob"))
    for node in nodes:
        assert [(e.id, e.username, e.node) for e in await node.list()] == [
            ("6b062500-000000a1", "alice", "gw-a"), ("6b062500-000000b2", "bob", "gw-b")]
    entry = await b.get("6b062500-000000a1")
    assert entry is not None
    clock.advance(30)
    assert entry.to_json(clock()) == {
        "id": "6b062500-000000a1", "user": "alice", "source": "10.0.0.5", "target": "desk-01", "protocol": "vnc",
        "started": "2026-11-25T00:00:00.000000Z", "idle_seconds": 30, "viewers": 0, "node": "gw-a",
        "groups": ["operators", "staff"], "ending": False, "display_name": None,
    }
    await a.withdraw("6b062500-000000a1")
    assert [e.id for e in await b.list()] == ["6b062500-000000b2"] and await b.get("6b062500-000000a1") is None


async def test_rows_a_dead_node_left_expire_and_a_live_node_renews_its_own(
        nodes: tuple[SessionDirectory, SessionDirectory], clock: Clock) -> None:
    a, b = nodes
    registry = SessionRegistry(Metrics())
    kept = live("6b062500-000000a1")
    await a.publish(kept)
    await b.publish(live("6b062500-000000b2", "bob"))  # node b dies now
    control = registry.add(kept)
    for _ in range(4):
        clock.advance(10)
        await a.sync(registry.controls())
    assert [e.id for e in await b.list()] == ["6b062500-000000a1"]  # b's row is 40 s past its heartbeat
    assert await a.get("6b062500-000000b2") is None
    assert await b.purge() == 1
    # A row purged while its node was cut off from the database comes back at the next sync.
    clock.advance(60)
    assert await b.purge() == 1 and await a.list() == []
    await a.sync([control])
    assert [e.id for e in await b.list()] == ["6b062500-000000a1"]


async def test_sync_never_brings_back_a_session_withdrawn_while_it_ran(
        nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, _ = nodes
    registry = SessionRegistry(Metrics())
    session = live("6b062500-000000a1")
    await a.publish(session, max_sessions=1)
    registry.add(session)
    snapshot = registry.controls()  # the watcher's round starts ...
    registry.remove(session)  # ... the session ends, and its row is withdrawn
    await a.withdraw(session.id)
    await a.sync(snapshot)
    assert await a.list() == []
    await a.publish(live("6b062500-000000a2"), max_sessions=1)  # the desktop is free again at once


async def test_sync_keeps_the_operators_last_input(nodes: tuple[SessionDirectory, SessionDirectory],
                                                   clock: Clock) -> None:
    a, _ = nodes
    session = live("6b062500-000000a1")
    await a.publish(session)
    control = SessionControl(session)
    control.last_input = asyncio.get_running_loop().time() - 42  # the operator typed 42 s ago
    await a.sync([control])
    entry = await a.get(session.id)
    assert entry is not None
    assert abs(entry.last_input.timestamp() - (datetime.now(UTC).timestamp() - 42)) < 1


async def test_an_end_request_from_any_node_reaches_the_node_holding_the_session(
        nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, b = nodes
    await a.publish(live("6b062500-000000a1"))
    await a.publish(live("6b062500-000000a2", "carol"))
    assert await a.end_requests(["6b062500-000000a1", "6b062500-000000a2"]) == {}
    assert await b.request_end("6b062500-000000a1", EndRequest("sam", "training break"))
    assert not await b.request_end("6b062500-000000a1", EndRequest("root", "again"))  # the first request wins
    assert not await b.request_end("6b062500-ffffffff", EndRequest("sam", "gone"))
    assert await a.end_requests(["6b062500-000000a1", "6b062500-000000a2"]) == {
        "6b062500-000000a1": EndRequest("sam", "training break")}
    entry = await a.get("6b062500-000000a1")
    assert entry is not None and entry.end_request == EndRequest("sam", "training break")
    assert entry.to_json(STARTED)["ending"] is True
    with pytest.raises(ValueError, match="a reason is 1 to 300 characters"):
        await b.request_end("6b062500-000000a2", EndRequest("sam", "x" * 301))


async def test_viewers_are_counted_from_any_node_and_never_below_zero(
        nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, b = nodes
    await a.publish(live("6b062500-000000a1"))
    await b.viewer_joined("6b062500-000000a1")
    await a.viewer_joined("6b062500-000000a1")
    entry = await a.get("6b062500-000000a1")
    assert entry is not None and entry.viewers == 2
    for _ in range(3):
        await b.viewer_left("6b062500-000000a1")
    entry = await a.get("6b062500-000000a1")
    assert entry is not None and entry.viewers == 0


def test_expiry_must_outlast_missed_heartbeats(store: Store) -> None:
    with pytest.raises(ValueError, match="3 \\* sync_interval <= expiry"):
        SessionDirectory(store, sync_interval=5, expiry=10)


async def test_the_registry_ends_a_session_on_request_once(tmp_path: Path) -> None:
    registry = SessionRegistry(Metrics())
    control = registry.add(live("6b062500-000000a1"))
    assert registry.end("6b062500-000000a1", EndRequest("sam", "training"))
    assert not registry.end("6b062500-000000a1", EndRequest("root", "later"))
    assert not registry.end("6b062500-ffffffff", EndRequest("sam", "gone"))
    assert control.terminated.result() == "ended by sam: training"
    assert control.end_request == EndRequest("sam", "training")
    other = registry.add(live("6b062500-000000a2"))
    other.terminate("you signed out")  # not a person's request: no end_request
    assert not other.end(EndRequest("sam", "too late")) and other.end_request is None


def on(target: str, session_id: str, user: str) -> LiveSession:
    return LiveSession(session_id, "vnc", user, "10.0.0.5", target, "web-" + session_id, frozenset({"operators"}),
                       started=STARTED)


async def test_max_sessions_is_kept_across_nodes(nodes: tuple[SessionDirectory, SessionDirectory],
                                                 clock: Clock) -> None:
    a, b = nodes
    await a.publish(on("desk-07", "6b062500-000000a1", "alice"), max_sessions=1)
    with pytest.raises(TargetInUse) as caught:
        await b.publish(on("desk-07", "6b062500-000000b2", "bob"), max_sessions=1)
    assert caught.value.reason == "desk-07 is in use by another operator; choose another desktop or try again later"
    assert caught.value.metric_reason == "in_use" and caught.value.holders == ("alice",)
    assert await b.holders("desk-07") == ["alice"]
    with pytest.raises(TargetInUse) as caught:  # the holder's own second window
        await b.publish(on("desk-07", "6b062500-000000a3", "alice"), max_sessions=1)
    assert caught.value.reason.startswith("you already have desk-07 open in another window or tab")
    await b.publish(on("desk-08", "6b062500-000000b4", "bob"), max_sessions=1)  # another target
    await a.withdraw("6b062500-000000a1")
    await b.publish(on("desk-07", "6b062500-000000b2", "bob"), max_sessions=1)
    assert await a.holders("desk-07") == ["bob"]


async def test_a_dead_nodes_sessions_stop_counting_when_they_expire(
        nodes: tuple[SessionDirectory, SessionDirectory], clock: Clock) -> None:
    a, b = nodes
    await a.publish(on("desk-07", "6b062500-000000a1", "alice"), max_sessions=1)
    clock.now += a.expiry + 1  # gw-a stopped renewing its rows
    await b.publish(on("desk-07", "6b062500-000000b2", "bob"), max_sessions=1)


async def test_shared_targets_count_up_to_their_limit(nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, b = nodes
    await a.publish(on("wall", "6b062500-000000a1", "alice"), max_sessions=2)
    await b.publish(on("wall", "6b062500-000000b2", "bob"), max_sessions=2)
    with pytest.raises(TargetInUse) as caught:
        await a.publish(on("wall", "6b062500-000000c3", "carol"), max_sessions=2)
    assert caught.value.metric_reason == "too_many"
    assert caught.value.reason.startswith("wall already has 2 sessions open, its limit")
    await a.publish(on("wall", "6b062500-000000c3", "carol"))  # no limit


async def test_of_simultaneous_opens_on_two_nodes_exactly_one_wins(
        nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, b = nodes
    opens = [node.publish(on("desk-07", f"6b062500-0000{index:04x}", f"user{index}"), max_sessions=1)
             for index in range(8) for node in (nodes[index % 2],)]
    results = await asyncio.gather(*opens, return_exceptions=True)
    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, TargetInUse) for result in results if result is not None)
    assert len(await a.holders("desk-07")) == 1 and len(await b.holders("desk-07")) == 1


async def test_journal_events_posted_on_any_node_are_taken_once_by_the_holding_node(
        nodes: tuple[SessionDirectory, SessionDirectory], clock: Clock) -> None:
    a, b = nodes
    await b.post_event("6b062500-000000a1", "viewed_by", {"by": "sam", "from": "2026-11-25T00:01:00Z"})
    await b.post_event("6b062500-000000a2", "viewed_by", {"by": "tess"})
    await b.post_event("6b062500-000000a1", "viewed_by", {"by": "sam", "to": "2026-11-25T00:02:00Z"})
    taken = await a.take_events(["6b062500-000000a1"])
    assert [(event.session_id, event.fields) for event in taken] == [
        ("6b062500-000000a1", {"by": "sam", "from": "2026-11-25T00:01:00Z"}),
        ("6b062500-000000a1", {"by": "sam", "to": "2026-11-25T00:02:00Z"})]
    assert await a.take_events(["6b062500-000000a1"]) == () and await a.take_events([]) == ()
    clock.now += a.expiry + 1  # nobody took tess's: it goes with the expired rows
    await a.purge()
    assert await a.take_events(["6b062500-000000a2"]) == ()


async def test_the_registry_journals_events_only_for_a_session_with_a_journal(tmp_path: Path) -> None:
    registry = SessionRegistry(Metrics())
    control = registry.add(live("6b062500-000000a1"))
    assert not registry.journal("6b062500-000000a1", "viewed_by", {"by": "sam"})  # no journal yet
    written: list[tuple[str, dict[str, object]]] = []

    class Journal:
        def event(self, type: str, **fields: object) -> None:
            written.append((type, fields))

    control.journal = Journal()
    assert registry.journal("6b062500-000000a1", "viewed_by", {"by": "sam", "from": "x"})
    assert not registry.journal("6b062500-ffffffff", "viewed_by", {"by": "sam"})
    assert written == [("viewed_by", {"by": "sam", "from": "x"})]


async def test_every_node_shows_the_display_name(nodes: tuple[SessionDirectory, SessionDirectory]) -> None:
    a, b = nodes
    await a.publish(replace(live("6b062500-000000c3", "sato"), display_name="佐藤 次郎"))
    entry = await b.get("6b062500-000000c3")
    assert entry is not None and entry.to_json(STARTED)["display_name"] == "佐藤 次郎"
