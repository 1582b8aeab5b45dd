"""Bookmarks: moments of recordings that reviewers marked with a note, in the ``recording_bookmarks`` table.

A supervisor marks a moment ("training: good handling of a complaint") to come back to it or
to show it to newcomers. Each bookmark belongs to the person who made it; who may read a
recording may read its bookmarks (the routes decide that). A bookmark goes with its recording.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.engine import RowMapping

from base.db import Store
from base.times import isoformat_utc
from recorder.index import groups_from_column
from recorder.tables import recording_bookmarks, recordings

#: Characters in one note at most.
MAX_NOTE_CHARS = 500
#: Bookmarks one person may keep on one recording at most.
MAX_BOOKMARKS_PER_RECORDING = 200
#: Bookmarks listed at once at most (a person's own, newest first).
MAX_LISTED = 1000


class BookmarkLimitReached(Exception):
    """The person already keeps the most bookmarks allowed on this recording."""


@dataclass(frozen=True, slots=True)
class Bookmark:
    """A moment ``t`` seconds into recording ``recording_id``, marked by ``owner`` with ``note``."""

    id: int
    recording_id: str
    owner: str
    t: float
    note: str
    created: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "recording": self.recording_id, "owner": self.owner, "t": self.t, "note": self.note,
                "created": isoformat_utc(self.created)}


@dataclass(frozen=True, slots=True)
class BookmarkedRecording:
    """What a list of one's bookmarks shows of the recording each is in."""

    id: str
    user: str
    target: str
    started: datetime
    user_groups: tuple[str, ...] | None = None  # the recorded user's groups (None: recorded before groups were)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "target": self.target, "started": isoformat_utc(self.started)}


def clean_note(note: object) -> str:
    """The note as stored: text, trimmed, with no control characters; ValueError says what is wrong."""
    if not isinstance(note, str):
        raise ValueError("note must be text")
    note = note.strip()
    if not note:
        raise ValueError("write a note saying what the moment shows")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"the note is longer than {MAX_NOTE_CHARS} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in note):
        raise ValueError("the note contains control or invisible characters")
    return note


def check_moment(t: object) -> float:
    """``t`` as seconds into a recording; ValueError if it is not a finite number of at least 0."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ValueError("t must be a number of seconds from 0")
    return float(t)


def _bookmark(row: RowMapping) -> Bookmark:
    return Bookmark(row["id"], row["recording_id"], row["owner"], row["t"], row["note"], row["created"])


class Bookmarks:
    """Add, list and remove bookmarks; ``clock`` gives their creation time."""

    def __init__(self, store: Store, *, max_per_recording: int = MAX_BOOKMARKS_PER_RECORDING,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.max_per_recording = max_per_recording
        self.clock = clock

    async def add(self, recording_id: str, owner: str, t: float, note: object) -> Bookmark:
        """Mark ``t`` with ``note`` (see :func:`clean_note`); BookmarkLimitReached past the per-recording limit."""
        note, t = clean_note(note), check_moment(t)
        created = datetime.fromtimestamp(self.clock(), UTC)
        table = recording_bookmarks.c
        async with self.store.transaction() as connection:
            kept = await connection.scalar(select(func.count()).where(table.recording_id == recording_id,
                                                                      table.owner == owner))
            if (kept or 0) >= self.max_per_recording:
                raise BookmarkLimitReached(f"you already keep {self.max_per_recording} bookmarks on this recording; "
                                           "delete one you no longer need first")
            result = await connection.execute(insert(recording_bookmarks).values(
                recording_id=recording_id, owner=owner, t=t, note=note, created=created))
            inserted = result.inserted_primary_key
            assert inserted is not None
        return Bookmark(int(inserted[0]), recording_id, owner, t, note, created)

    async def for_recording(self, recording_id: str) -> list[Bookmark]:
        """Everyone's bookmarks on the recording, in time order."""
        table = recording_bookmarks.c
        query = select(recording_bookmarks).where(table.recording_id == recording_id).order_by(table.t, table.id)
        async with self.store.read() as connection:
            return [_bookmark(row) for row in (await connection.execute(query)).mappings().all()]

    async def by_owner(self, owner: str, limit: int = MAX_LISTED) -> list[tuple[Bookmark, BookmarkedRecording]]:
        """``owner``'s bookmarks, newest first, each with the recording it is in."""
        table = recording_bookmarks.c
        query = (select(recording_bookmarks, recordings.c.user, recordings.c.target, recordings.c.started,
                        recordings.c.user_groups)
                 .join(recordings, recordings.c.id == table.recording_id)
                 .where(table.owner == owner).order_by(table.created.desc(), table.id.desc()).limit(limit))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [(_bookmark(row), BookmarkedRecording(row["recording_id"], row["user"], row["target"], row["started"],
                                                     groups_from_column(row["user_groups"])))
                for row in rows]

    async def get(self, recording_id: str, bookmark_id: int) -> Bookmark | None:
        table = recording_bookmarks.c
        query = select(recording_bookmarks).where(table.id == bookmark_id, table.recording_id == recording_id)
        async with self.store.read() as connection:
            row = (await connection.execute(query)).mappings().first()
        return _bookmark(row) if row is not None else None

    async def delete(self, recording_id: str, bookmark_id: int) -> bool:
        """Remove the bookmark; False if the recording has no such bookmark."""
        table = recording_bookmarks.c
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(recording_bookmarks).where(
                and_(table.id == bookmark_id, table.recording_id == recording_id)))
        return result.rowcount > 0
