"""Recording metadata for search and playback: summarize a journal, keep it in the database.

:func:`summarize_journal` reads one journal (blocking; run it in a thread) into a
:class:`RecordingSummary`: who, from where, to what, when, how long, why it ended, its size,
input counts, events, and input *activity* — keys and clicks per 5-second bucket, which the
player's timeline draws. Activity is computed here, from the journal's client data (each
KeyEvent press and each PointerEvent button press, at its record's time) or, for recordings
that keep only input counts, from each INPUT_COUNTS record at its time (so at flush
granularity). Only non-empty buckets are kept.

:class:`RecordingIndex` stores summaries in the ``recordings`` and ``recording_events`` tables
of :mod:`recorder.tables` and answers searches, newest first. A search may be narrowed to what
one viewer may see (:class:`Visibility`: some users' recordings, and those of members of some
groups — the user's groups as the journal's HEADER recorded them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, delete, false, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from base.db import Store
from base.times import isoformat_utc
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.input_presses import InputPresses
from recorder.errors import JournalCorrupt
from recorder.journal import (
    MAX_RECORD,
    JournalReader,
    JournalRecord,
    RecordKind,
    decode_json,
)
from recorder.records import InputCounts, SessionEnd, SessionEvent, SessionHeader
from recorder.tables import recording_events, recordings

log = logging.getLogger(__name__)

ACTIVITY_BUCKET_SECONDS = 5
MAX_SEARCH_LIMIT = 1000
P = TypeVar("P")


class VideoState(StrEnum):
    """Whether a recording's video exists."""

    NONE = "none"  # not asked for yet
    PENDING = "pending"  # queued or rendering
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    """Input in the ``ACTIVITY_BUCKET_SECONDS`` starting ``t`` seconds into the recording."""

    t: float
    keys: int
    clicks: int

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "keys": self.keys, "clicks": self.clicks}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A session's event at ``t`` seconds into its recording (the EVENT record's time)."""

    t: float
    event: SessionEvent

    def to_json(self) -> dict[str, Any]:
        """The event's fields, its ``type`` and its ``t``: what the player's timeline gets."""
        return {**self.event.to_json(), "t": self.t}


@dataclass(frozen=True, slots=True)
class RecordingMetadata:
    """The fields a journal's summary and an index row share; ``ended`` is None without an END record."""

    id: str
    user: str
    source: str
    target: str
    protocol: str
    started: datetime
    ended: datetime | None
    duration: float
    end_reason: str | None
    bytes: int
    keys: int
    clicks: int
    path: str


@dataclass(frozen=True, slots=True)
class RecordingSummary(RecordingMetadata):
    """What a journal says about its session, with its events, input activity and the user's groups."""

    events: list[TimelineEvent] = field(default_factory=list)
    activity: list[ActivityBucket] = field(default_factory=list)
    user_groups: tuple[str, ...] | None = None  # None: the journal predates recorded groups


@dataclass(frozen=True, slots=True)
class RecordingRow(RecordingMetadata):
    """One indexed recording (without its events and activity, which are loaded on demand)."""

    sha256: str | None
    video_state: VideoState
    video_path: str | None
    node: str
    user_groups: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields of ``GET /api/v1/recordings``."""
        return {
            "id": self.id, "user": self.user, "source": self.source, "target": self.target,
            "protocol": self.protocol, "started": isoformat_utc(self.started),
            "ended": isoformat_utc(self.ended) if self.ended else None, "duration": self.duration,
            "end_reason": self.end_reason, "bytes": self.bytes, "keys": self.keys, "clicks": self.clicks,
            "video": self.video_state.value,
            "groups": list(self.user_groups) if self.user_groups is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Visibility:
    """The recordings one viewer may find: those of ``users``, and those of anyone in one of ``groups``."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


# ---------------------------------------------------------------- journal → summary


class _InputTally:
    """Key presses and button presses, in total and per activity bucket."""

    def __init__(self, max_record: int) -> None:
        # The journal holds what the proxy forwarded, so its own limits were already applied:
        # these only bound memory while reading a hostile file.
        self._framer = ClientMessageFramer(max_cut_text=max_record, max_encodings=1024, max_screens=256)
        self._presses = InputPresses()
        self._failed = False
        self.keys: Counter[int] = Counter()
        self.clicks: Counter[int] = Counter()

    def client_data(self, t: float, data: bytes, path: Path) -> None:
        if self._failed:
            return
        self._framer.receive_data(data)
        bucket = _bucket(t)
        for event in self._framer.events_received():
            if not isinstance(event, ClientMessageReceived):
                self._failed = True
                log.warning("client data unreadable; input counts stop here",
                            extra={"ctx": {"path": path, "t": t, "error": event.error}})
                return
            keys, clicks = self._presses.presses(event.message)
            self.keys[bucket] += keys
            self.clicks[bucket] += clicks

    def counted(self, t: float, counts: InputCounts) -> None:
        bucket = _bucket(t)
        self.keys[bucket] += counts.keys
        self.clicks[bucket] += counts.clicks

    def buckets(self) -> list[ActivityBucket]:
        starts = sorted(start for start in self.keys.keys() | self.clicks.keys()
                        if self.keys[start] or self.clicks[start])
        return [ActivityBucket(float(start), self.keys[start], self.clicks[start]) for start in starts]


def _bucket(t: float) -> int:
    return int(t // ACTIVITY_BUCKET_SECONDS) * ACTIVITY_BUCKET_SECONDS


def _payload(read: Callable[[Mapping[str, Any]], P], record: JournalRecord, path: Path) -> P | None:
    """A JSON record's payload; a CRC-valid record that is not a readable one is skipped, not fatal to the index."""
    value = decode_json(record.payload)
    if value is None:
        log.warning("journal record skipped: not a JSON object",
                    extra={"ctx": {"path": path, "kind": record.kind.name, "position": record.position}})
        return None
    try:
        return read(value)
    except JournalCorrupt as exc:
        log.warning("journal record skipped: malformed",
                    extra={"ctx": {"path": path, "kind": record.kind.name, "position": record.position, "error": exc}})
        return None


def _session_end(end: Mapping[str, Any], at_epoch: float, path: Path) -> SessionEnd:
    """The END record's payload; one that does not parse still ends the recording, at ``at_epoch`` (its own time)."""
    try:
        return SessionEnd.from_json(end)
    except JournalCorrupt as exc:
        log.warning("journal END record malformed; the recording ends at its time",
                    extra={"ctx": {"path": path, "error": exc}})
        return SessionEnd.salvage(end, at_epoch)


def summarize_journal(path: Path, *, max_events: int = 10_000, max_record: int = MAX_RECORD) -> RecordingSummary:
    """Read the journal at ``path`` into a summary; blocking, so call it in a worker thread.

    A torn or unfinished journal is summarized up to its last whole record (``ended`` None).
    Raises JournalCorrupt when the magic or header is unusable; a (CRC-valid) EVENT or
    INPUT_COUNTS record that is not a readable one is skipped with a warning. Events past
    ``max_events`` are dropped (a resize flood must not bloat the index).
    """
    reader = JournalReader(path, max_record=max_record)
    try:
        header = SessionHeader.from_json(reader.header)
    except JournalCorrupt as exc:
        raise JournalCorrupt(f"{path}: {exc}") from exc
    tally = _InputTally(max_record)
    events: list[TimelineEvent] = []
    for record in reader:
        t = record.offset_us / 1e6
        if record.kind == RecordKind.CLIENT_DATA:
            tally.client_data(t, record.payload, path)
        elif record.kind == RecordKind.INPUT_COUNTS:
            counts = _payload(InputCounts.from_json, record, path)
            if counts is not None:
                tally.counted(t, counts)
        elif record.kind == RecordKind.EVENT and len(events) < max_events:
            event = _payload(SessionEvent.from_json, record, path)
            if event is not None:
                events.append(TimelineEvent(t, event))
    started = header.started
    ended, end_reason, duration = None, None, reader.last_offset_us / 1e6
    if reader.end is not None:
        end = _session_end(reader.end, started.timestamp() + reader.last_offset_us / 1e6, path)
        ended, end_reason = end.ended, end.reason
        duration = max(0.0, (ended - started).total_seconds())
    activity = tally.buckets()
    return RecordingSummary(
        id=header.session_id, user=header.user, source=header.source, target=header.target,
        protocol=header.protocol, started=started, ended=ended, duration=duration, end_reason=end_reason,
        bytes=path.stat().st_size, keys=sum(bucket.keys for bucket in activity),
        clicks=sum(bucket.clicks for bucket in activity), path=str(path), events=events, activity=activity,
        user_groups=header.groups,
    )


# ---------------------------------------------------------------- the index


def _row(mapping: RowMapping) -> RecordingRow:
    values = {name: mapping[name] for name in RecordingRow.__dataclass_fields__}
    values["video_state"] = VideoState(values["video_state"])
    values["user_groups"] = _groups_from_column(values["user_groups"])
    return RecordingRow(**values)


def _groups_column(groups: tuple[str, ...] | None) -> str | None:
    """The ``user_groups`` column: a compact JSON array, sorted, ASCII-only (see :meth:`RecordingIndex._visible`)."""
    return None if groups is None else json.dumps(sorted(groups), ensure_ascii=True, separators=(",", ":"))


def _groups_from_column(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    groups = json.loads(text)
    return tuple(group for group in groups if isinstance(group, str)) if isinstance(groups, list) else None


_ROW_COLUMNS = [recordings.c[name] for name in RecordingRow.__dataclass_fields__]


class RecordingIndex:
    """Recording summaries in the database: add, mark rendered, search, fetch."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, summary: RecordingSummary, sha256: str | None, node: str) -> None:
        """Index ``summary`` (replacing an earlier summary of the same id, but keeping its video state)."""
        row = {
            **{name: getattr(summary, name) for name in RecordingMetadata.__dataclass_fields__},
            "activity": json.dumps([[bucket.t, bucket.keys, bucket.clicks] for bucket in summary.activity]),
            "sha256": sha256, "node": node, "user_groups": _groups_column(summary.user_groups),
        }
        events = [
            {"recording_id": summary.id, "t": timed.t, "type": timed.event.type,
             "detail": json.dumps(dict(timed.event.fields), default=str)}
            for timed in summary.events
        ]
        async with self.store.transaction() as connection:
            await connection.execute(self.store.upsert(recordings, row, keep=("video_state", "video_path")))
            await connection.execute(delete(recording_events).where(recording_events.c.recording_id == summary.id))
            if events:
                await connection.execute(insert(recording_events), events)

    async def add_journal(self, path: Path, sha256: str | None, node: str) -> RecordingSummary:
        """Summarize the journal at ``path`` in a worker thread, and index it."""
        summary = await asyncio.to_thread(summarize_journal, path)
        await self.add(summary, sha256, node)
        return summary

    async def set_video(self, recording_id: str, state: VideoState, path: Path | str | None = None) -> bool:
        """Record the video's state (and file, once ready); False if no such recording is indexed."""
        async with self.store.transaction() as connection:
            result = await connection.execute(
                update(recordings).where(recordings.c.id == recording_id)
                .values(video_state=VideoState(state).value, video_path=str(path) if path is not None else None))
        return result.rowcount > 0

    async def search(
        self,
        user: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        end_reason: str | None = None,
        limit: int = 100,
        visible: Visibility | None = None,
    ) -> list[RecordingRow]:
        """Recordings matching every given filter, newest first; ``since <= started < until``.

        ``visible`` narrows them to what one viewer may see (None: everything).
        """
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        query = select(*_ROW_COLUMNS)
        c = recordings.c
        if user is not None:
            query = query.where(c.user == user)
        if target is not None:
            query = query.where(c.target == target)
        if since is not None:
            query = query.where(c.started >= since)
        if until is not None:
            query = query.where(c.started < until)
        if min_duration is not None:
            query = query.where(c.duration >= min_duration)
        if max_duration is not None:
            query = query.where(c.duration <= max_duration)
        if end_reason is not None:
            query = query.where(c.end_reason == end_reason)
        if visible is not None:
            query = query.where(self._visible(visible))
        query = query.order_by(c.started.desc(), c.id.desc()).limit(limit)
        async with self.store.read() as connection:
            result = await connection.execute(query)
            return [_row(mapping) for mapping in result.mappings()]

    def _visible(self, visible: Visibility) -> ColumnElement[bool]:
        """Rows of ``visible.users``, or whose ``user_groups`` array holds one of ``visible.groups``.

        A group is found by its JSON spelling at the start of an element: ``["g"`` or ``,"g"``. In
        the stored ASCII-only array, a ``"`` inside a name is always escaped (``\\"``), so a ``"``
        after ``[`` or ``,`` always opens an element, and a JSON string ends at its first unescaped
        ``"``: the match is exact. The search is case-sensitive on both databases, like group names.
        """
        c = recordings.c
        position = func.instr if self.store.dialect == "sqlite" else func.strpos
        conditions: list[ColumnElement[bool]] = []
        if visible.users:
            conditions.append(c.user.in_(sorted(visible.users)))
        for group in sorted(visible.groups):
            element = json.dumps(group, ensure_ascii=True)
            conditions.extend(position(c.user_groups, opening + element) > 0 for opening in ("[", ","))
        return or_(*conditions) if conditions else false()

    async def get(self, recording_id: str) -> RecordingRow | None:
        async with self.store.read() as connection:
            result = await connection.execute(select(*_ROW_COLUMNS).where(recordings.c.id == recording_id))
            mapping = result.mappings().first()
        return _row(mapping) if mapping is not None else None

    async def events(self, recording_id: str) -> list[TimelineEvent]:
        """The recording's events in time order."""
        query = (select(recording_events.c.t, recording_events.c.type, recording_events.c.detail)
                 .where(recording_events.c.recording_id == recording_id)
                 .order_by(recording_events.c.t, recording_events.c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [TimelineEvent(row["t"], SessionEvent(row["type"], json.loads(row["detail"]))) for row in rows]

    async def activity(self, recording_id: str) -> list[ActivityBucket]:
        """Keys and clicks per 5-second bucket (non-empty buckets only, in time order)."""
        async with self.store.read() as connection:
            stored: str | None = await connection.scalar(
                select(recordings.c.activity).where(recordings.c.id == recording_id))
        return [ActivityBucket(t, keys, clicks) for t, keys, clicks in json.loads(stored or "[]")]
