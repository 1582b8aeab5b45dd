"""Recording metadata for search and playback, kept in the database.

:class:`RecordingIndex` stores journals' summaries (:mod:`recorder.summary`) in the ``recordings``, ``recording_events`` and
``recording_sources`` tables of :mod:`recorder.tables` and answers searches, newest first: by
user (exact, or part of the name), target, time, duration, end reason, source address (exact
or a network) and event type. It also gives a recording's typed text
(:mod:`recorder.typed_text`), read from the journal in a worker thread and cached: key
strokes are never copied into the database.
A search may be narrowed to what one viewer may see (:class:`Visibility`: some users'
recordings, and those of members of some groups — the user's groups as the journal's HEADER
recorded them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, false, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from base.db import Store
from base.times import isoformat_utc
from recorder.pii import without_personal_data
from recorder.records import SessionEvent
from recorder.screen_search import ScreenTexts, contains_pattern
from recorder.summary import (
    MIN_QUIET_SECONDS,
    ActivityBucket,
    QuietStretch,
    RecordingMetadata,
    RecordingSummary,
    TimelineEvent,
    quiet_stretches,
    summarize_journal,
)
from recorder.tables import recording_events, recording_sources, recordings
from recorder.text_index import TextKeys
from recorder.typed_text import TypedText, read_typed_text

log = logging.getLogger(__name__)

MAX_SEARCH_LIMIT = 1000
#: Typed texts kept in memory, and read from journals at once: each read is a pass over a whole journal.
TYPED_TEXT_CACHE = 16
TYPED_TEXT_READERS = 2
#: Recordings whose source is filled in for network search at once, the first time one is asked for.
SOURCE_BACKFILL_BATCH = 5000
IPNetwork = IPv4Network | IPv6Network


class VideoState(StrEnum):
    """Whether a recording's video exists."""

    NONE = "none"  # not asked for yet
    PENDING = "pending"  # queued or rendering
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RecordingRow(RecordingMetadata):
    """One indexed recording (without its events and activity, which are loaded on demand)."""

    sha256: str | None
    video_state: VideoState
    video_path: str | None
    node: str
    user_groups: tuple[str, ...] | None = None
    display_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields of ``GET /api/v1/recordings``."""
        return {
            "id": self.id, "user": self.user, "source": self.source, "target": self.target,
            "protocol": self.protocol, "started": isoformat_utc(self.started),
            "ended": isoformat_utc(self.ended) if self.ended else None, "duration": self.duration,
            "end_reason": self.end_reason, "bytes": self.bytes, "keys": self.keys, "clicks": self.clicks,
            "video": self.video_state.value,
            "groups": list(self.user_groups) if self.user_groups is not None else None,
            "display_name": self.display_name,
        }


@dataclass(frozen=True, slots=True)
class Visibility:
    """The recordings one viewer may find: those of ``users``, and those of anyone in one of ``groups``."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


# ---------------------------------------------------------------- the index


def _row(mapping: RowMapping) -> RecordingRow:
    values = {name: mapping[name] for name in RecordingRow.__dataclass_fields__}
    values["video_state"] = VideoState(values["video_state"])
    values["user_groups"] = groups_from_column(values["user_groups"])
    return RecordingRow(**values)


def _groups_column(groups: tuple[str, ...] | None) -> str | None:
    """The ``user_groups`` column: a compact JSON array, sorted, ASCII-only (see :meth:`RecordingIndex._visible`)."""
    return None if groups is None else json.dumps(sorted(groups), ensure_ascii=True, separators=(",", ":"))


def groups_from_column(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    groups = json.loads(text)
    return tuple(group for group in groups if isinstance(group, str)) if isinstance(groups, list) else None


_ROW_COLUMNS = [recordings.c[name] for name in RecordingRow.__dataclass_fields__]


def _address_key(address: IPv4Address | IPv6Address) -> tuple[int, str]:
    """(IP version, the address as fixed-width hex): equal keys for equal addresses, ordered as they are."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, f"{int(address):0{address.max_prefixlen // 4}x}"


def _source_row(recording_id: str, source: str) -> dict[str, Any] | None:
    """The ``recording_sources`` row of a recording from ``source``; None if it is not an IP address."""
    try:
        version, address = _address_key(ip_address(source))
    except ValueError:
        return None
    return {"recording_id": recording_id, "version": version, "address": address}


def _source_rows(recordings_and_sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The ``recording_sources`` rows of (recording id, source) pairs whose source is an IP address."""
    return [row for row in (_source_row(*pair) for pair in recordings_and_sources) if row is not None]


def _network_range(network: IPNetwork) -> tuple[int, str, str]:
    """(IP version, lowest, highest address key) of ``network``; an IPv4-mapped IPv6 network is IPv4."""
    if isinstance(network, IPv6Network) and network.network_address.ipv4_mapped is not None \
            and network.prefixlen >= 96:
        mapped = IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
        return _network_range(mapped)
    version, low = _address_key(network.network_address)
    return version, low, _address_key(network.broadcast_address)[1]


class RecordingIndex:
    """Recording summaries in the database: add, mark rendered, search, fetch; typed text from the journals.

    ``typed_text_cache`` typed texts stay in memory; at most ``typed_text_readers`` journals are
    read for them at once (each read is a pass over a whole journal, in a worker thread). Screen and
    terminal text is sealed and searched with ``text_keys`` (:attr:`texts`; None: an index that neither stores
    recordings nor searches by text, e.g. to list them).
    """

    def __init__(self, store: Store, text_keys: TextKeys | None, *, typed_text_cache: int = TYPED_TEXT_CACHE,
                 typed_text_readers: int = TYPED_TEXT_READERS) -> None:
        if typed_text_cache < 0 or typed_text_readers < 1:
            raise ValueError("typed_text_cache must be 0 or more and typed_text_readers at least 1")
        self.store = store
        self.texts = ScreenTexts(store, text_keys)
        self._typed_cache: OrderedDict[tuple[str, int], TypedText] = OrderedDict()
        self._typed_cache_size = typed_text_cache
        self._typed_readers = asyncio.Semaphore(typed_text_readers)
        self._sources_backfilled = False

    async def add(self, summary: RecordingSummary, sha256: str | None, node: str) -> None:
        """Index ``summary`` (replacing an earlier summary of the same id, but keeping its video state)."""
        buckets = [[bucket.t, bucket.keys, bucket.clicks, bucket.screen] for bucket in summary.activity]
        row = {
            **{name: getattr(summary, name) for name in RecordingMetadata.__dataclass_fields__},
            "activity": json.dumps({"buckets": buckets}),
            "sha256": sha256, "node": node, "user_groups": _groups_column(summary.user_groups),
            "display_name": summary.display_name,
        }
        source = _source_row(summary.id, summary.source)
        events = [
            {"recording_id": summary.id, "t": timed.t, "type": timed.event.type,
             "detail": json.dumps(dict(timed.event.fields), default=str)}
            for timed in summary.events
        ]
        # never personal data in clear: the ocr job finds it, with its time
        terminal_text = await asyncio.to_thread(without_personal_data, summary.screen_text or "")
        async with self.store.transaction() as connection:
            await connection.execute(self.store.upsert(recordings, row, keep=("video_state", "video_path")))
            await connection.execute(delete(recording_events).where(recording_events.c.recording_id == summary.id))
            if events:
                await connection.execute(insert(recording_events), events)
            await connection.execute(delete(recording_sources).where(recording_sources.c.recording_id == summary.id))
            if source is not None:
                await connection.execute(insert(recording_sources), [source])
            await self.texts.replace_terminal(connection, summary.id, terminal_text)

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
        user_contains: str | None = None,
        source: IPNetwork | None = None,
        event: str | None = None,
        visible: Visibility | None = None,
        text: str | None = None,
    ) -> list[RecordingRow]:
        """Recordings matching every given filter, newest first; ``since <= started < until``.

        ``user`` is the exact name, ``user_contains`` any part of it or of the display name (山田
        finds 山田 太郎; case ignored for ASCII letters); ``source`` a network (a single address is a /32 or
        /128), matching IPv4 sources also in their IPv4-mapped IPv6 form; ``event`` a type of event the
        recording holds; ``text`` any part of the text that appeared on a terminal recording's screen, or of a
        line read off a desktop recording's screen (:mod:`recorder.screen_search`; case ignored for ASCII).
        ``visible`` narrows them to what one viewer may see (None: everything).
        """
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        query = select(*_ROW_COLUMNS)
        c = recordings.c
        if user is not None:
            query = query.where(c.user == user)
        if user_contains is not None:
            pattern = contains_pattern(user_contains)
            query = query.where(or_(c.user.ilike(pattern, escape="\\"), c.display_name.ilike(pattern, escape="\\")))
        if source is not None:
            await self._backfill_sources()
            version, low, high = _network_range(source)
            sources = recording_sources.c
            query = query.where(exists().where(sources.recording_id == c.id, sources.version == version,
                                               sources.address.between(low, high)))
        if event is not None:
            events = recording_events.c
            query = query.where(exists().where(events.recording_id == c.id, events.type == event))
        if text is not None:
            query = query.where(self.texts.may_contain(c.id, text))
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
        query = query.order_by(c.started.desc(), c.id.desc())
        if text is None:
            return await self._rows(query.limit(limit))
        return await self._containing(query, text, limit)

    async def _rows(self, query: Select[Any]) -> list[RecordingRow]:
        async with self.store.read() as connection:
            result = await connection.execute(query)
            return [_row(mapping) for mapping in result.mappings()]

    async def _containing(self, query: Select[Any], text: str, limit: int) -> list[RecordingRow]:
        """The first ``limit`` rows of ``query`` whose text really contains ``text``, page by page."""
        c = recordings.c
        found: list[RecordingRow] = []
        page = query
        while True:
            rows = await self._rows(page.limit(limit))
            containing = await self.texts.containing([row.id for row in rows], text)
            found.extend(row for row in rows if row.id in containing)
            if len(found) >= limit or len(rows) < limit:
                return found[:limit]
            last = rows[-1]
            page = query.where(or_(c.started < last.started, and_(c.started == last.started, c.id < last.id)))

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

    async def add_event(self, recording_id: str, event: SessionEvent, t: float = 0.0) -> None:
        """Add an event about the recording made after it ended (someone unmasked it) to its timeline at ``t``."""
        async with self.store.transaction() as connection:
            await connection.execute(insert(recording_events).values(
                recording_id=recording_id, t=t, type=event.type, detail=json.dumps(dict(event.fields), default=str)))

    async def activity(self, recording_id: str) -> list[ActivityBucket]:
        """Keys, clicks and screen bytes per 5-second bucket (non-empty buckets only, in time order)."""
        async with self.store.read() as connection:
            stored: str | None = await connection.scalar(
                select(recordings.c.activity).where(recordings.c.id == recording_id))
        return _buckets(stored)[0]

    async def quiet_stretches(self, recording_id: str,
                              min_seconds: float = MIN_QUIET_SECONDS) -> list[QuietStretch] | None:
        """The recording's stretches without input or screen change (see :func:`quiet_stretches`).

        None when it is not indexed, or was indexed before screen changes were counted.
        """
        query = select(recordings.c.activity, recordings.c.duration).where(recordings.c.id == recording_id)
        async with self.store.read() as connection:
            found = (await connection.execute(query)).first()
        if found is None:
            return None
        buckets, screen_counted = _buckets(found.activity)
        return quiet_stretches(buckets, found.duration, min_seconds) if screen_counted else None

    async def typed_text(self, recording_id: str, journal: Path) -> TypedText:
        """What was typed in the recording (from its journal, read in a worker thread), cached by id and size.

        Raises what :func:`~recorder.typed_text.read_typed_text` raises.
        """
        key = (recording_id, (await asyncio.to_thread(journal.stat)).st_size)  # a recovered journal may grow
        cached = self._typed_cache.get(key)
        if cached is not None:
            self._typed_cache.move_to_end(key)
            return cached
        async with self._typed_readers:
            typed = await asyncio.to_thread(read_typed_text, journal)
        if self._typed_cache_size:
            self._typed_cache[key] = typed
            while len(self._typed_cache) > self._typed_cache_size:
                self._typed_cache.popitem(last=False)
        return typed

    async def _backfill_sources(self) -> None:
        """Once per index: the ``recording_sources`` rows of recordings indexed before that table existed.

        In batches, the addresses parsed in a worker thread: there may be many.
        """
        if self._sources_backfilled:
            return
        after = ""
        insert_missing = (sqlite.insert if self.store.dialect == "sqlite" else postgresql.insert)(
            recording_sources).on_conflict_do_nothing()  # another node may be filling them in too
        while True:
            batch = (select(recordings.c.id, recordings.c.source)
                     .where(recordings.c.id > after,
                            ~exists().where(recording_sources.c.recording_id == recordings.c.id))
                     .order_by(recordings.c.id).limit(SOURCE_BACKFILL_BATCH))
            async with self.store.read() as connection:
                rows = [(found.id, found.source) for found in (await connection.execute(batch)).all()]
            if not rows:
                break
            added = await asyncio.to_thread(_source_rows, rows)
            if added:
                async with self.store.transaction() as connection:
                    await connection.execute(insert_missing, added)
            after = rows[-1][0]
        self._sources_backfilled = True


def _buckets(stored: str | None) -> tuple[list[ActivityBucket], bool]:
    """The stored activity's buckets, and whether it counted screen changes (not before they were)."""
    value = json.loads(stored or "[]")
    if isinstance(value, dict):
        return [ActivityBucket(t, keys, clicks, screen) for t, keys, clicks, screen in value["buckets"]], True
    return [ActivityBucket(t, keys, clicks, None) for t, keys, clicks in value], False
