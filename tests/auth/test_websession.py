"""Web sessions in the database: new id per login, idle and absolute expiry, ending with a reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from auth.identity import Identity
from auth.tables import web_sessions
from auth.totp_store import token_hash
from auth.websession import (
    EXPIRED_ABSOLUTE,
    EXPIRED_IDLE,
    WebSessionStore,
    csrf_token_for,
)
from base.db import Store
from tests.auth.conftest import Clock

ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="local")
BOB = Identity("bob", frozenset(), admin=True, backend="ldap")


@pytest.fixture
def sessions(store: Store, clock: Clock) -> WebSessionStore:
    return WebSessionStore(store, idle_timeout=600, absolute_timeout=3600, clock=clock, touch_interval=10)


async def test_create_and_get(sessions: WebSessionStore, clock: Clock) -> None:
    session = await sessions.create(ALICE, "10.0.0.5")
    found = await sessions.get(session.id)
    assert found is not None
    assert (found.identity, found.source, found.created) == (ALICE, "10.0.0.5", clock.now)
    assert (await sessions.get(session.id[:-1] + "x")) is None


async def test_every_login_gets_a_new_unguessable_id(sessions: WebSessionStore) -> None:
    ids = {(await sessions.create(ALICE, "10.0.0.5")).id for _ in range(5)}
    assert len(ids) == 5 and all(len(session_id) >= 43 for session_id in ids)  # 256 bits


async def test_the_database_keeps_only_a_hash_of_the_id(sessions: WebSessionStore, store: Store) -> None:
    session = await sessions.create(ALICE, "10.0.0.5")
    async with store.read() as connection:
        row = (await connection.execute(select(web_sessions))).one()
    assert row.id_hash == token_hash(session.id) and session.id not in [str(value) for value in row]


async def test_the_csrf_token_is_derived_from_the_id(sessions: WebSessionStore) -> None:
    first, second = await sessions.create(ALICE, "a"), await sessions.create(ALICE, "a")
    assert first.csrf_token == csrf_token_for(first.id) != second.csrf_token
    assert first.csrf_token not in first.id


async def test_idle_expiry_and_touching(sessions: WebSessionStore, clock: Clock) -> None:
    session = await sessions.create(ALICE, "10.0.0.5")
    clock.advance(599)
    assert await sessions.get(session.id) is not None  # touched: idle starts again
    clock.advance(599)
    assert await sessions.get(session.id) is not None
    clock.advance(600)
    assert await sessions.get(session.id) is None
    assert await sessions.why_ended([session.id]) == {session.id: EXPIRED_IDLE}


async def test_touches_are_written_at_most_every_touch_interval(sessions: WebSessionStore, clock: Clock) -> None:
    session = await sessions.create(ALICE, "10.0.0.5")
    clock.advance(5)
    assert (await sessions.get(session.id)).last_seen == clock.now - 5  # type: ignore[union-attr]
    clock.advance(5)
    assert (await sessions.get(session.id)).last_seen == clock.now  # type: ignore[union-attr]


async def test_absolute_expiry_even_when_busy(sessions: WebSessionStore, clock: Clock) -> None:
    session = await sessions.create(ALICE, "10.0.0.5")
    for _ in range(11):
        clock.advance(300)
        assert await sessions.get(session.id) is not None
    clock.advance(300)  # 3600 s after login
    assert await sessions.get(session.id) is None
    assert await sessions.why_ended([session.id]) == {session.id: EXPIRED_ABSOLUTE}


async def test_ending_one_or_all_of_a_users_sessions_keeps_the_reason(sessions: WebSessionStore) -> None:
    first, second = await sessions.create(ALICE, "a"), await sessions.create(ALICE, "b")
    other = await sessions.create(BOB, "c")
    assert await sessions.end(first.id, "you signed out")
    assert not await sessions.end(first.id, "again")
    assert await sessions.get(first.id) is None and await sessions.get(second.id) is not None
    assert await sessions.end_user("alice", "your account was disabled") == 1
    assert await sessions.get(second.id) is None and await sessions.get(other.id) is not None
    assert await sessions.why_ended([first.id, second.id, other.id, "never-issued"]) == {
        first.id: "you signed out", second.id: "your account was disabled", "never-issued": "your sign-in ended"}


async def test_keep_alive_counts_as_activity(sessions: WebSessionStore, clock: Clock) -> None:
    session = await sessions.create(ALICE, "a")
    clock.advance(500)
    await sessions.keep_alive([session.id])
    clock.advance(500)
    assert await sessions.why_ended([session.id]) == {}


async def test_purge_drops_long_dead_sessions(sessions: WebSessionStore, clock: Clock) -> None:
    ended, idle = await sessions.create(ALICE, "a"), await sessions.create(BOB, "b")
    await sessions.end(ended.id, "you signed out")
    assert await sessions.purge(keep_ended=100) == 0
    clock.advance(800)
    assert await sessions.purge(keep_ended=100) == 2
    assert await sessions.why_ended([ended.id, idle.id]) == {ended.id: "your sign-in ended", idle.id: "your sign-in ended"}


def test_timeouts_must_make_sense(store: Store) -> None:
    for idle, absolute in ((0, 10), (20, 10), (-1, 10)):
        with pytest.raises(ValueError):
            WebSessionStore(store, idle, absolute)
