"""The notice board on a real SQLite database: posting, the fast path, delivery across nodes, replay, bounds.

Two :class:`NoticeBoard` objects on one database play two nodes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from base.db import Store
from base.metrics import Metrics
from gateway.notices import (
    IdleWarning,
    NoticeBoard,
    PostedNotice,
    SessionEnded,
    Subscription,
    ViewingEnded,
    ViewingStarted,
    notices,
)
from tests.functional.auth_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def boards(store: Store, clock: Clock) -> AsyncIterator[tuple[NoticeBoard, NoticeBoard]]:
    first, second = NoticeBoard(store, Metrics(), clock), NoticeBoard(store, Metrics(), clock)
    yield first, second
    await first.close()
    await second.close()


async def received(page: Subscription, timeout: float = 0.01) -> list[tuple[str, dict[str, object]]]:
    """What the page has been handed so far, as (type, fields)."""
    found = []
    while (notice := await page.next(timeout)) is not None:
        found.append((notice.type, dict(notice.fields)))
    return found


def test_notices_are_typed_and_checked() -> None:
    assert ViewingStarted("sam", "desk-01").type == "viewing_started"
    assert SessionEnded("sam", "training").target is None
    for build, message in [
        (lambda: ViewingStarted("", "desk-01"), "ViewingStarted.by must be a non-empty text"),
        (lambda: ViewingEnded(None), "ViewingEnded.by must be a non-empty text"),  # type: ignore[arg-type]
        (lambda: SessionEnded("sam", ""), "SessionEnded.reason must be a non-empty text"),
        (lambda: IdleWarning(math.nan), "IdleWarning.deadline_epoch must be a time"),
        (lambda: IdleWarning(True), "IdleWarning.deadline_epoch must be a time"),
    ]:
        with pytest.raises(ValueError, match=message):
            build()


async def test_a_post_reaches_the_users_pages_on_this_node_at_once(
        boards: tuple[NoticeBoard, NoticeBoard], clock: Clock) -> None:
    board, _ = boards
    alice_tab, alice_other_tab, bob = (board.subscribe("alice", "w1"), board.subscribe("alice", "w2"),
                                       board.subscribe("bob", "w3"))
    notice_id = await board.post("alice", ViewingStarted("sam", "desk-01"))
    for page in (alice_tab, alice_other_tab):
        notice = await page.next(0)
        assert notice == PostedNotice(notice_id, "alice", "viewing_started", {"by": "sam", "target": "desk-01"},
                                      clock())
        assert notice.to_json() == {"id": notice_id, "type": "viewing_started", "posted": clock(), "by": "sam",
                                    "target": "desk-01"}
    assert await received(bob) == []
    assert await board.deliver_new() == 0  # the delivery loop does not hand it out again


async def test_a_post_on_another_node_is_delivered_by_the_delivery_loop(
        boards: tuple[NoticeBoard, NoticeBoard]) -> None:
    node_a, node_b = boards
    page = node_a.subscribe("alice", "w1")
    assert await node_a.deliver_new() == 0
    await node_b.post("alice", SessionEnded("sam", "training", "desk-01"))
    await node_b.post("bob", SessionEnded("sam", "lunch"))  # nobody of bob's is connected to node a
    assert await received(page) == []
    assert await node_a.deliver_new() == 1
    assert await received(page) == [("session_ended", {"by": "sam", "reason": "training", "target": "desk-01"})]
    assert await node_a.deliver_new() == 0


async def test_the_delivery_loop_looks_back_for_late_commits(boards: tuple[NoticeBoard, NoticeBoard],
                                                             store: Store, clock: Clock) -> None:
    """A notice that becomes visible after newer ones were delivered is still delivered (PostgreSQL commit order)."""
    node_a, node_b = boards
    page = node_a.subscribe("alice", "w1")
    late = await node_b.post("alice", ViewingStarted("sam", "desk-01"))
    async with store.transaction() as connection:  # hide it, as an uncommitted transaction would
        await connection.execute(update(notices).where(notices.c.id == late).values(username="nobody-yet"))
    await node_b.post("alice", ViewingEnded("tom"))
    assert await node_a.deliver_new() == 1
    async with store.transaction() as connection:
        await connection.execute(update(notices).where(notices.c.id == late).values(username="alice"))
    clock.advance(5)
    assert await node_a.deliver_new() == 1
    assert [notice[0] for notice in await received(page)] == ["viewing_ended", "viewing_started"]
    clock.advance(node_a.lookback + 1)
    assert await node_a.deliver_new() == 0


async def test_recent_replays_what_has_not_expired(boards: tuple[NoticeBoard, NoticeBoard], clock: Clock) -> None:
    board, _ = boards
    started = await board.post("alice", ViewingStarted("sam", "desk-01"))
    warned = await board.post("alice", IdleWarning(clock() + 30, "desk-01"))
    ended = await board.post("alice", SessionEnded("sam", "training"))
    await board.post("bob", ViewingStarted("sam", "desk-02"))
    assert [n.id for n in await board.recent("alice")] == [started, warned, ended]
    assert [n.id for n in await board.recent("alice", after_id=started)] == [warned, ended]
    clock.advance(91)  # the idle warning's deadline is a minute past
    assert [n.id for n in await board.recent("alice")] == [started, ended]
    clock.advance(300)
    assert [n.id for n in await board.recent("alice")] == [started]  # the viewer is still there
    assert await board.purge() == 2
    clock.advance(12 * 3600)
    assert await board.recent("alice") == [] and await board.purge() == 2


async def test_one_user_holds_a_bounded_number_of_pages(store: Store) -> None:
    metrics = Metrics()
    board = NoticeBoard(store, metrics, max_streams_per_user=2)
    first, second = board.subscribe("alice", "w1"), board.subscribe("alice", "w1")
    third = board.subscribe("alice", "w1")  # a third tab: the oldest page (likely closed) gives way
    assert (first.ended, second.ended, third.ended) == ("replaced", None, None)
    assert metrics.registry.get_sample_value("deskgate_notice_streams_open") == 2
    board.unsubscribe(second)
    board.unsubscribe(second)  # twice is harmless
    assert metrics.registry.get_sample_value("deskgate_notice_streams_open") == 1
    assert metrics.registry.get_sample_value("deskgate_notice_streams_ended_total", {"reason": "closed"}) == 1
    assert metrics.registry.get_sample_value("deskgate_notice_streams_ended_total", {"reason": "replaced"}) == 1
    single = NoticeBoard(store, Metrics(), max_streams_per_user=1)
    old, new = single.subscribe("bob", "w2"), single.subscribe("bob", "w2")
    assert (old.ended, new.ended, single.web_session_ids()) == ("replaced", None, {"w2"})
    await single.post("bob", ViewingEnded("sam"))
    assert await received(new) == [("viewing_ended", {"by": "sam", "target": None})]


async def test_a_page_that_does_not_read_is_ended_not_buffered_without_bound(store: Store) -> None:
    board = NoticeBoard(store, Metrics(), queue_size=3)
    page = board.subscribe("alice", "w1")
    for n in range(5):
        await board.post("alice", ViewingEnded(f"viewer{n}"))
    assert page.ended == "overflow" and await page.next(0) is None


async def test_pages_end_with_their_sign_in_and_at_shutdown(store: Store) -> None:
    board = NoticeBoard(store, Metrics())
    alice, alice_laptop, bob = (board.subscribe("alice", "w1"), board.subscribe("alice", "w2"),
                                board.subscribe("bob", "w3"))
    assert board.web_session_ids() == {"w1", "w2", "w3"}
    waiting = asyncio.create_task(alice.next(30))
    board.end_web_sessions({"w1": "you signed out"})
    assert await asyncio.wait_for(waiting, 1) is None  # a waiting stream wakes up at once
    assert (alice.ended, alice_laptop.ended) == ("signed_out", None)
    assert board.web_session_ids() == {"w2", "w3"}
    await board.close()
    assert alice_laptop.ended == bob.ended == "shutdown" and board.web_session_ids() == set()


async def test_posting_in_the_background_logs_a_database_failure(caplog: pytest.LogCaptureFixture,
                                                                 store: Store) -> None:
    board = NoticeBoard(store, Metrics())
    async with store.transaction() as connection:  # the database cannot take the notice
        await connection.exec_driver_sql("DROP TABLE notices")
    with caplog.at_level(logging.WARNING, logger="gateway.notices"):
        board.post_nowait("alice", IdleWarning(0.0))
        await board.close()
    assert [record.msg for record in caplog.records] == ["cannot post a notice"]
