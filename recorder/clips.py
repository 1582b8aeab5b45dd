"""Clip exports: a stretch of a recording rendered to its own MP4, tracked in the ``recording_clips`` table.

A reviewer asks for ``start`` to ``end`` seconds of a recording; the gateway that took the
request renders it in its worker pool and keeps the row up to date (state and progress), so
any gateway can say how far it is. :func:`check_clip_range` is the rule for what may be asked.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from base.db import Store
from base.times import isoformat_utc
from recorder.tables import recording_clips

#: The longest clip, in seconds: a training clip, not a copy of a whole day.
MAX_CLIP_SECONDS = 1800.0
#: The shortest clip, in seconds.
MIN_CLIP_SECONDS = 1.0
_CLIP_ID = re.compile(r"[0-9a-f]{16}")


class ClipState(StrEnum):
    """How far a clip's export is."""

    QUEUED = "queued"
    RENDERING = "rendering"
    READY = "ready"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (ClipState.READY, ClipState.FAILED)


def is_clip_id(text: str) -> bool:
    return _CLIP_ID.fullmatch(text) is not None


def check_clip_range(start: object, end: object, duration: float,
                     max_seconds: float = MAX_CLIP_SECONDS) -> tuple[float, float]:
    """``(start, end)`` as seconds within a recording of ``duration``; ValueError says what is wrong.

    An ``end`` past the recording's end is the end (a player's last frame may be a little later).
    """
    for name, value in (("from", start), ("to", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number of seconds into the recording")
    assert isinstance(start, (int, float)) and isinstance(end, (int, float))
    start, end = float(start), min(float(end), duration)
    if start < 0 or start >= duration:
        raise ValueError(f"from must be between 0 and the recording's end ({duration:.1f} s)")
    if end - start < MIN_CLIP_SECONDS:
        raise ValueError(f"the clip must be at least {MIN_CLIP_SECONDS:g} s long: choose a later 'to'")
    if end - start > max_seconds:
        raise ValueError(f"a clip may be at most {max_seconds:g} s long; choose a shorter stretch")
    return start, end


def clip_path(root: Path, clip_id: str) -> Path:
    """Where the clip's MP4 goes: ``<storage.recordings>/clips/<id>.mp4``."""
    if not is_clip_id(clip_id):
        raise ValueError(f"{clip_id!r} is not a clip id")
    return root / "clips" / f"{clip_id}.mp4"


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip export: what was asked, by whom, and how far it is."""

    id: str
    recording_id: str
    owner: str
    start: float
    end: float
    state: ClipState
    progress: float
    error: str | None
    path: str | None
    node: str
    created: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "recording": self.recording_id, "owner": self.owner, "from": self.start,
                "to": self.end, "state": self.state.value, "progress": round(self.progress, 3),
                "error": self.error, "created": isoformat_utc(self.created)}


def _clip(row: Any) -> Clip:
    return Clip(row.id, row.recording_id, row.owner, row.clip_start, row.clip_end, ClipState(row.state),
                row.progress, row.error, row.path, row.node, row.created)


class ClipStore:
    """The ``recording_clips`` rows: create, follow, finish, list."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def create(self, recording_id: str, owner: str, start: float, end: float, node: str) -> Clip:
        """A new queued clip of ``start`` to ``end`` seconds of the recording, rendered on ``node``."""
        clip = Clip(secrets.token_hex(8), recording_id, owner, start, end, ClipState.QUEUED, 0.0, None, None, node,
                    datetime.fromtimestamp(self.clock(), UTC))
        async with self.store.transaction() as connection:
            await connection.execute(insert(recording_clips).values(
                id=clip.id, recording_id=recording_id, owner=owner, clip_start=start, clip_end=end,
                state=clip.state.value, progress=0.0, node=node, created=clip.created))
        return clip

    async def get(self, recording_id: str, clip_id: str) -> Clip | None:
        table = recording_clips.c
        async with self.store.read() as connection:
            row = (await connection.execute(select(recording_clips).where(
                table.id == clip_id, table.recording_id == recording_id))).first()
        return _clip(row) if row is not None else None

    async def for_recording(self, recording_id: str) -> list[Clip]:
        """The recording's clips, newest first."""
        table = recording_clips.c
        query = select(recording_clips).where(table.recording_id == recording_id).order_by(
            table.created.desc(), table.id)
        async with self.store.read() as connection:
            return [_clip(row) for row in (await connection.execute(query)).all()]

    async def rendering(self, clip_id: str, progress: float) -> None:
        await self._update(clip_id, state=ClipState.RENDERING.value, progress=min(max(progress, 0.0), 1.0))

    async def ready(self, clip_id: str, path: Path | str) -> None:
        await self._update(clip_id, state=ClipState.READY.value, progress=1.0, path=str(path))

    async def failed(self, clip_id: str, error: str) -> None:
        await self._update(clip_id, state=ClipState.FAILED.value, error=error)

    async def abandon(self, node: str, reason: str) -> int:
        """Fail ``node``'s clips that were still queued or rendering (its gateway stopped); how many."""
        table = recording_clips.c
        async with self.store.transaction() as connection:
            result = await connection.execute(update(recording_clips).where(
                table.node == node, table.state.in_([ClipState.QUEUED.value, ClipState.RENDERING.value]))
                .values(state=ClipState.FAILED.value, error=reason))
        return result.rowcount

    async def _update(self, clip_id: str, **values: Any) -> None:
        async with self.store.transaction() as connection:
            await connection.execute(update(recording_clips).where(recording_clips.c.id == clip_id).values(**values))
