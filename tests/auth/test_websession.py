from __future__ import annotations

import pytest

from auth.identity import Identity
from auth.websession import WebSessionStore

ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="local")
BOB = Identity("bob", frozenset(), admin=True, backend="local")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> WebSessionStore:
    return WebSessionStore(idle_timeout=600, absolute_timeout=3600, clock=clock)


def test_create_and_get(store: WebSessionStore, clock: Clock) -> None:
    session = store.create(ALICE, "127.0.0.1")
    assert (session.identity, session.source, session.created, session.last_seen) == (ALICE, "127.0.0.1", 1000, 1000)
    assert len(session.id) >= 43 and len(session.csrf_token) >= 43 and session.id != session.csrf_token
    clock.now += 10
    found = store.get(session.id)
    assert found is not None and found.id == session.id and found.last_seen == 1010 and found.created == 1000
    assert store.get("no-such-id") is None
    assert len(store) == 1


def test_every_login_gets_a_new_id(store: WebSessionStore) -> None:
    ids = {store.create(ALICE, "127.0.0.1").id for _ in range(50)}
    assert len(ids) == 50 and len(store) == 50


def test_idle_expiry_and_touching(store: WebSessionStore, clock: Clock) -> None:
    session = store.create(ALICE, "127.0.0.1")
    clock.now += 599
    assert store.get(session.id) is not None  # touched: idle clock restarts
    clock.now += 599
    assert store.get(session.id) is not None
    clock.now += 600
    assert store.get(session.id) is None
    assert len(store) == 0  # removed, not just hidden


def test_absolute_expiry_even_when_busy(store: WebSessionStore, clock: Clock) -> None:
    session = store.create(ALICE, "127.0.0.1")
    for _ in range(11):
        clock.now += 300
        assert store.get(session.id) is not None
    clock.now += 299  # 3599 s old
    assert store.get(session.id) is not None
    clock.now += 1
    assert store.get(session.id) is None


def test_revoke_and_revoke_user(store: WebSessionStore) -> None:
    first, second = store.create(ALICE, "127.0.0.1"), store.create(ALICE, "::1")
    other = store.create(BOB, "127.0.0.1")
    assert store.revoke(first.id) and not store.revoke(first.id)
    assert store.get(first.id) is None
    third = store.create(ALICE, "127.0.0.2")
    assert sorted(store.revoke_user("alice")) == sorted([second.id, third.id])
    assert store.revoke_user("alice") == []
    assert store.get(other.id) is not None and len(store) == 1


def test_create_purges_expired_sessions(store: WebSessionStore, clock: Clock) -> None:
    for _ in range(3):
        store.create(ALICE, "127.0.0.1")
    clock.now += 600
    store.create(BOB, "127.0.0.1")
    assert len(store) == 1


def test_timeouts_must_make_sense() -> None:
    with pytest.raises(ValueError):
        WebSessionStore(idle_timeout=0, absolute_timeout=10)
    with pytest.raises(ValueError):
        WebSessionStore(idle_timeout=20, absolute_timeout=10)
