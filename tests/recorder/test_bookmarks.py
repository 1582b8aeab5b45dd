"""Bookmarks in a real SQLite store: add, list (per recording and one's own), limits, delete, cascade."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from base.db import Store
from recorder.bookmarks import (
    MAX_NOTE_CHARS,
    BookmarkedRecording,
    BookmarkLimitReached,
    Bookmarks,
    check_moment,
    clean_note,
)
from recorder.index import RecordingIndex
from recorder.tables import recordings
from tests.recorder.test_index import SAMPLES
from tests.text_keys import TEXT_KEYS

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp()


@pytest.fixture
async def bookmarks(store: Store) -> Bookmarks:
    index = RecordingIndex(store, TEXT_KEYS)
    for summary in SAMPLES:
        await index.add(summary, sha256=None, node="gw-1")
    clock = iter(NOW + n for n in range(1000))
    return Bookmarks(store, max_per_recording=3, clock=lambda: next(clock))


async def test_bookmarks_of_a_recording_are_in_time_order_with_their_owner(bookmarks: Bookmarks) -> None:
    recording = SAMPLES[1].id
    late = await bookmarks.add(recording, "sue", 120.5, "  training: good handling of a complaint ")
    early = await bookmarks.add(recording, "sam", 3, "caller gets angry")
    await bookmarks.add(SAMPLES[2].id, "sue", 1.0, "another recording")
    assert late.note == "training: good handling of a complaint" and early.t == 3.0
    assert await bookmarks.for_recording(recording) == [early, late]
    assert late.to_json() == {"id": late.id, "recording": recording, "owner": "sue", "t": 120.5,
                              "note": "training: good handling of a complaint", "created": "2026-11-27T09:30:00.000000Z"}


async def test_ones_own_bookmarks_are_newest_first_with_their_recording(bookmarks: Bookmarks) -> None:
    first = await bookmarks.add(SAMPLES[0].id, "sue", 5.0, "one")
    await bookmarks.add(SAMPLES[0].id, "sam", 6.0, "not sue's")
    second = await bookmarks.add(SAMPLES[3].id, "sue", 1.0, "two")
    mine = await bookmarks.by_owner("sue")
    assert [bookmark for bookmark, _ in mine] == [second, first]
    assert mine[0][1] == BookmarkedRecording(SAMPLES[3].id, "bob", "desk-02", SAMPLES[3].started)
    assert mine[0][1].to_json()["started"] == "2026-11-26T00:00:00.000000Z"
    assert await bookmarks.by_owner("nobody") == []


async def test_one_person_keeps_at_most_the_limit_on_one_recording(bookmarks: Bookmarks) -> None:
    for n in range(3):
        await bookmarks.add(SAMPLES[0].id, "sue", n, f"note {n}")
    with pytest.raises(BookmarkLimitReached, match="you already keep 3 bookmarks on this recording"):
        await bookmarks.add(SAMPLES[0].id, "sue", 9, "one too many")
    await bookmarks.add(SAMPLES[0].id, "sam", 9, "others are not limited by sue's")
    await bookmarks.add(SAMPLES[1].id, "sue", 9, "nor is another recording")


async def test_delete_removes_only_that_recordings_bookmark(bookmarks: Bookmarks) -> None:
    kept = await bookmarks.add(SAMPLES[0].id, "sue", 1.0, "kept")
    gone = await bookmarks.add(SAMPLES[0].id, "sue", 2.0, "gone")
    assert await bookmarks.get(SAMPLES[0].id, gone.id) == gone
    assert not await bookmarks.delete(SAMPLES[1].id, gone.id)  # not that recording's
    assert await bookmarks.get(SAMPLES[1].id, gone.id) is None
    assert await bookmarks.delete(SAMPLES[0].id, gone.id)
    assert not await bookmarks.delete(SAMPLES[0].id, gone.id)
    assert await bookmarks.for_recording(SAMPLES[0].id) == [kept]


async def test_bookmarks_go_with_their_recording(bookmarks: Bookmarks, store: Store) -> None:
    await bookmarks.add(SAMPLES[0].id, "sue", 1.0, "note")
    async with store.transaction() as connection:
        await connection.execute(delete(recordings).where(recordings.c.id == SAMPLES[0].id))
    assert await bookmarks.for_recording(SAMPLES[0].id) == [] and await bookmarks.by_owner("sue") == []


@pytest.mark.parametrize(("note", "message"), [
    (None, "note must be text"), (7, "note must be text"), ("   ", "write a note"),
    ("x" * (MAX_NOTE_CHARS + 1), f"longer than {MAX_NOTE_CHARS}"),
    ("bell\x07", "control or invisible"), ("zero\u200bwidth", "control or invisible"),
])
def test_notes_that_are_refused(note: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clean_note(note)


def test_notes_keep_their_text() -> None:
    assert clean_note(" 研修: クレーム対応の良い例 ") == "研修: クレーム対応の良い例"
    assert clean_note("x" * MAX_NOTE_CHARS) == "x" * MAX_NOTE_CHARS


@pytest.mark.parametrize("t", [-0.5, math.inf, math.nan, "3", True, None])
def test_a_moment_is_a_number_of_seconds_from_0(t: object) -> None:
    with pytest.raises(ValueError, match="t must be a number of seconds from 0"):
        check_moment(t)
    assert check_moment(0) == 0.0 and check_moment(12.5) == 12.5
