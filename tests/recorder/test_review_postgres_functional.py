"""The review queries on PostgreSQL: part of a name, source networks, events, bookmarks, clips, the backfill."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest
from sqlalchemy import delete, text

from base.db import Store
from recorder.bookmarks import Bookmarks
from recorder.clips import ClipState, ClipStore
from recorder.index import RecordingIndex
from recorder.records import SessionEvent
from recorder.summary import TimelineEvent
from recorder.tables import recording_sources
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)
from tests.recorder.test_index import SAMPLES
from tests.text_keys import TEXT_KEYS

pytestmark = pytest.mark.functional
SOURCES = ["10.0.0.9", "10.0.0.200", "2001:db8::7", "192.168.1.9"]
USERS = ["alice", "Alicia", "a_b", "佐藤"]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:  # noqa: F811
    store = await Store.open(postgres_url)
    async with store.transaction() as connection:
        await connection.execute(text("TRUNCATE recordings, recording_events RESTART IDENTITY CASCADE"))
    try:
        yield store
    finally:
        await store.close()


async def test_review_queries_on_postgresql(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    blocked = TimelineEvent(3.0, SessionEvent.clipboard_blocked("to_local", 5))
    for n, (user, source) in enumerate(zip(USERS, SOURCES), start=1):
        await index.add(dataclasses.replace(SAMPLES[0], id=f"20261125T080000Z-0000000{n}", user=user, source=source,
                                            started=SAMPLES[0].started + timedelta(minutes=n),
                                            events=[blocked] if n % 2 else []), None, "gw-1")

    def ids(rows: list) -> list[str]:  # type: ignore[type-arg]
        return [row.id[-1] for row in rows]

    assert ids(await index.search(user_contains="LIC")) == ["2", "1"]
    assert ids(await index.search(user_contains="_")) == ["3"]
    assert ids(await index.search(user_contains="佐")) == ["4"]
    assert ids(await index.search(source=ip_network("10.0.0.0/24"))) == ["2", "1"]
    assert ids(await index.search(source=ip_network("10.0.0.128/25"))) == ["2"]
    assert ids(await index.search(source=ip_network("2001:db8::/32"))) == ["3"]
    assert ids(await index.search(event="clipboard_blocked")) == ["3", "1"]
    async with store.transaction() as connection:
        await connection.execute(delete(recording_sources))
    assert ids(await RecordingIndex(store, TEXT_KEYS).search(source=ip_network("0.0.0.0/0"))) == ["4", "2", "1"]

    bookmarks = Bookmarks(store)
    made = await bookmarks.add("20261125T080000Z-00000001", "sue", 2.5, "training")
    assert await bookmarks.for_recording(made.recording_id) == [made]
    assert [bookmark for bookmark, _ in await bookmarks.by_owner("sue")] == [made]
    assert await bookmarks.delete(made.recording_id, made.id)

    clips = ClipStore(store)
    clip = await clips.create(made.recording_id, "sue", 1.0, 5.0, "gw-1")
    await clips.rendering(clip.id, 0.5)
    await clips.ready(clip.id, Path("/r/clips/c.mp4"))
    found = await clips.get(made.recording_id, clip.id)
    assert found is not None and found.state == ClipState.READY
    assert await clips.abandon("gw-1", "stopped") == 0
