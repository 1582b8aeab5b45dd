"""A journal's summary: who, from where, to what, when, how long, why it ended, and its activity.

:func:`summarize_journal` reads one journal (blocking; run it in a thread) into a
:class:`RecordingSummary`: its size, input counts, events, and *activity* — keys, clicks and
bytes of screen updates per 5-second bucket, which the player's timeline draws and its idle
skipping jumps over (:func:`quiet_stretches`). Input is counted from the journal's client
data (each KeyEvent press and each PointerEvent button press, at its record's time) or, for
recordings that keep only input counts, from each INPUT_COUNTS record at its time (so at flush
granularity); screen changes are the desktop's bytes (it sends updates only when its picture
changes). Only non-empty buckets are kept. A terminal recording's input is counted one key per
typed character, and its output's text (:mod:`recorder.terminal_text`) is kept for search. :mod:`recorder.index` stores summaries for search.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.input_presses import InputPresses
from recorder.errors import JournalCorrupt
from recorder.journal import MAX_RECORD, JournalReader, JournalRecord, RecordKind, decode_json
from recorder.records import TERMINAL_PROTOCOL, InputCounts, SessionEnd, SessionEvent, SessionHeader
from recorder.terminal_text import ScreenText

log = logging.getLogger(__name__)

ACTIVITY_BUCKET_SECONDS = 5
#: The shortest stretch without input or screen change that the player offers to skip.
MIN_QUIET_SECONDS = 10.0
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    """Input and screen updates in the ``ACTIVITY_BUCKET_SECONDS`` starting ``t`` seconds into the recording.

    ``screen`` is bytes of the desktop's updates; None for recordings indexed before it was counted.
    """

    t: float
    keys: int
    clicks: int
    screen: int | None = 0

    @property
    def active(self) -> bool:
        return bool(self.keys or self.clicks or self.screen)

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "keys": self.keys, "clicks": self.clicks, "screen": self.screen}


@dataclass(frozen=True, slots=True)
class QuietStretch:
    """From ``start`` to ``end`` seconds the operator gave no input and the screen did not change."""

    start: float
    end: float

    def to_json(self) -> dict[str, float]:
        return {"from": self.start, "to": self.end}


def quiet_stretches(buckets: list[ActivityBucket], duration: float,
                    min_seconds: float = MIN_QUIET_SECONDS) -> list[QuietStretch] | None:
    """The stretches of at least ``min_seconds`` between ``buckets`` (in time order) and up to ``duration``.

    None when the buckets do not say whether the screen changed (indexed before it was counted).
    """
    if any(bucket.screen is None for bucket in buckets):
        return None
    stretches, quiet_since = [], 0.0
    for bucket in buckets:
        if not bucket.active:
            continue
        if bucket.t - quiet_since >= min_seconds:
            stretches.append(QuietStretch(quiet_since, bucket.t))
        quiet_since = max(quiet_since, bucket.t + ACTIVITY_BUCKET_SECONDS)
    if duration - quiet_since >= min_seconds:
        stretches.append(QuietStretch(quiet_since, duration))
    return stretches


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
    screen_text: str | None = None  # terminal recordings: the text that appeared (recorder.terminal_text)
    display_name: str | None = None  # the name people know the user by, when the journal says


class _ActivityTally:
    """Key presses, button presses and screen update bytes per activity bucket."""

    def __init__(self, max_record: int) -> None:
        # The journal holds what the proxy forwarded, so its own limits were already applied:
        # these only bound memory while reading a hostile file.
        self._framer = ClientMessageFramer(max_cut_text=max_record, max_encodings=1024, max_screens=256)
        self._presses = InputPresses()
        self._failed = False
        self.keys: Counter[int] = Counter()
        self.clicks: Counter[int] = Counter()
        self.screen: Counter[int] = Counter()

    def server_data(self, t: float, size: int) -> None:
        self.screen[_bucket(t)] += size

    def typed(self, t: float, data: bytes) -> None:
        """Terminal input: one key per character (UTF-8 continuation bytes are not characters)."""
        self.keys[_bucket(t)] += sum(1 for byte in data if byte & 0xC0 != 0x80)

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
        starts = sorted(start for start in self.keys.keys() | self.clicks.keys() | self.screen.keys()
                        if self.keys[start] or self.clicks[start] or self.screen[start])
        return [ActivityBucket(float(start), self.keys[start], self.clicks[start], self.screen[start])
                for start in starts]


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
    tally = _ActivityTally(max_record)
    events: list[TimelineEvent] = []
    screen = ScreenText() if header.protocol == TERMINAL_PROTOCOL else None
    for record in reader:
        t = record.offset_us / 1e6
        if record.kind == RecordKind.SERVER_DATA:
            tally.server_data(t, len(record.payload))
            if screen is not None:
                screen.feed(record.payload)
        elif record.kind == RecordKind.CLIENT_DATA:
            if screen is not None:
                tally.typed(t, record.payload)
            else:
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
        user_groups=header.groups, screen_text=None if screen is None else screen.text(),
        display_name=header.display_name,
    )
