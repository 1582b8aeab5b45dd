"""The text read off recordings and the personal data found in them, in the database, sealed.

:class:`ScreenTexts` keeps what :func:`~recorder.screen_index.read_recording_text` found for a
recording (tables ``screen_text`` and ``pii_findings``; a recording read again replaces its rows) and
a terminal recording's output (``recording_text``). The text is stored sealed, with its blind index
in ``text_tokens`` (:mod:`recorder.text_index`), kept per minute of the recording (:data:`BUCKET_SECONDS`;
a terminal's output as one): a search narrows the recordings, and within them the minutes, to those
holding every token of the text searched for, in the database, then opens only those minutes' lines
and keeps the recordings that contain the text, with the *moments* (in time order) of the lines that
contain it. The search text is normalised like the
stored text (NFKC, no spaces between CJK characters), so ``山田 太郎`` finds the 山田太郎 that
Tesseract read as ``山 田 太 郎``; case is ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, union
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from base.db import Store
from recorder.errors import RecordingKeyError
from recorder.pii import PiiFinding
from recorder.screen_index import RecordingText
from recorder.tables import pii_findings, recording_text, screen_text, text_tokens
from recorder.text_index import TextKeys, searchable

log = logging.getLogger(__name__)

#: Moments given per recording at most in a search answer.
MOMENTS_PER_RECORDING = 20
#: Rows written per INSERT.
INSERT_BATCH = 1000
#: Recordings whose clear text (stored before it was sealed) is sealed and indexed at once.
SEAL_BATCH = 100
SCREEN, TERMINAL = "screen", "terminal"
#: Seconds of a recording whose lines share one set of tokens: a search opens the lines of the minutes that
#: hold every token of the text it looks for.
BUCKET_SECONDS = 60.0
#: Time ranges of minutes asked for in one query at most.
RANGES_PER_QUERY = 200
Tokens = dict[int, set[int]]  # bucket → tokens


def bucket_of(t: float) -> int:
    return int(t // BUCKET_SECONDS)


def contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Moment:
    """``text`` was on screen at ``t`` seconds into the recording, in ``box`` (x, y, width, height; None: a terminal)."""

    t: float
    text: str
    box: tuple[int, int, int, int] | None

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "text": self.text, "box": list(self.box) if self.box is not None else None}


class ScreenTexts:
    """Sealed screen text, its blind index, and personal-data findings per recording.

    Without ``keys`` only the findings can be read (a command that lists recordings needs no keys).
    """

    def __init__(self, store: Store, keys: TextKeys | None) -> None:
        self.store = store
        self._keys = keys

    @property
    def keys(self) -> TextKeys:
        if self._keys is None:
            raise RecordingKeyError("screen text is sealed: this needs the recording keys (storage.recording_key_file "
                                    "and storage.recording_keys)")
        return self._keys

    async def replace(self, recording_id: str, found: RecordingText) -> None:
        """Keep ``found`` as the recording's screen text and findings (replacing what it had)."""
        lines, tokens = await asyncio.to_thread(self._sealed_lines, recording_id, found)
        findings = [{"recording_id": recording_id, "t": finding.start, "until": finding.end, "kind": finding.kind,
                     "digest": finding.digest, **_box_columns(finding.region)} for finding in found.findings]
        async with self.store.transaction() as connection:
            await connection.execute(delete(screen_text).where(screen_text.c.recording_id == recording_id))
            await connection.execute(delete(pii_findings).where(pii_findings.c.recording_id == recording_id))
            await _replace_tokens(connection, recording_id, SCREEN, tokens)
            for rows, table in ((lines, screen_text), (findings, pii_findings)):
                await _insert(connection, table, rows)

    def _sealed_lines(self, recording_id: str, found: RecordingText) -> tuple[list[dict[str, Any]], Tokens]:
        lines = [{"recording_id": recording_id, "t": line.t, "text": self.keys.seal(recording_id, line.text),
                  **_box_columns(line.box.as_region() if line.box is not None else None)} for line in found.lines]
        return lines, self._bucket_tokens((line.t, line.text) for line in found.lines)

    def _bucket_tokens(self, lines: Iterable[tuple[float, str]]) -> Tokens:
        """The tokens of each minute's lines."""
        texts: dict[int, list[str]] = {}
        for t, text in lines:
            texts.setdefault(bucket_of(t), []).append(text)
        return {bucket: self.keys.text_tokens(bucket_texts) for bucket, bucket_texts in texts.items()}

    async def replace_terminal(self, connection: AsyncConnection, recording_id: str, text: str) -> None:
        """In ``connection``'s transaction: keep ``text`` as the terminal recording's output (none if empty)."""
        sealed, tokens = await asyncio.to_thread(
            lambda: (self.keys.seal(recording_id, text), self.keys.text_tokens([text])))
        await connection.execute(delete(recording_text).where(recording_text.c.recording_id == recording_id))
        await _replace_tokens(connection, recording_id, TERMINAL, {0: tokens} if text else {})
        if text:
            await connection.execute(insert(recording_text), [{"recording_id": recording_id, "text": sealed}])

    def may_contain(self, recording_id: ColumnElement[str], text: str) -> ColumnElement[bool]:
        """A condition on ``recording_id`` (a column) true for every recording whose text contains ``text``.

        It is true for a few more (a minute of its text has each pair of characters of ``text``, not
        in that order): :meth:`containing` tells them apart.
        """
        tokens = sorted(self.keys.query_tokens(text))
        t = text_tokens.c
        having = (select(t.recording_id).where(t.token.in_(tokens)).group_by(t.recording_id, t.origin, t.bucket)
                  .having(func.count(t.token) == len(tokens)))
        return recording_id.in_(having)

    async def containing(self, recording_ids: Sequence[str], text: str) -> set[str]:
        """Those of ``recording_ids`` whose screen or terminal text contains ``text``."""
        wanted = searchable(text)
        found: set[str] = set()
        if not wanted:
            return found
        tokens = self.keys.query_tokens(text)
        for recording_id in recording_ids:
            if await self._buckets(recording_id, TERMINAL, tokens):
                terminal = await self._terminal_text(recording_id)
                if terminal is not None and wanted in searchable(terminal):
                    found.add(recording_id)
                    continue
            if await self._moments(recording_id, wanted, tokens, 1):
                found.add(recording_id)
        return found

    async def moments(self, recording_ids: Sequence[str], text: str,
                      per_recording: int = MOMENTS_PER_RECORDING) -> dict[str, list[Moment]]:
        """Where ``text`` appeared on each recording's screen: its first ``per_recording`` moments, in time order."""
        wanted = searchable(text)
        tokens = self.keys.query_tokens(text)
        return {recording_id: await self._moments(recording_id, wanted, tokens, per_recording) if wanted else []
                for recording_id in recording_ids}

    async def _buckets(self, recording_id: str, origin: str, tokens: set[int]) -> list[int]:
        """The recording's minutes (of ``origin``) that hold every one of ``tokens``, in time order."""
        t = text_tokens.c
        query = (select(t.bucket).where(t.recording_id == recording_id, t.origin == origin, t.token.in_(sorted(tokens)))
                 .group_by(t.bucket).having(func.count(t.token) == len(tokens)).order_by(t.bucket))
        async with self.store.read() as connection:
            buckets: list[int] = list((await connection.execute(query)).scalars())
            return buckets

    async def _moments(self, recording_id: str, wanted: str, tokens: set[int], most: int) -> list[Moment]:
        moments: list[Moment] = []
        ranges = _ranges(await self._buckets(recording_id, SCREEN, tokens))
        for start in range(0, len(ranges), RANGES_PER_QUERY):
            moments += await self._moments_in(recording_id, wanted, ranges[start:start + RANGES_PER_QUERY],
                                              most - len(moments))
            if len(moments) >= most:
                break
        return moments

    async def _moments_in(self, recording_id: str, wanted: str, ranges: list[tuple[float, float]],
                          most: int) -> list[Moment]:
        """The first ``most`` moments of lines containing ``wanted`` within ``ranges`` of the recording."""
        c = screen_text.c
        query = (select(c.t, c.text, c.x, c.y, c.width, c.height)
                 .where(c.recording_id == recording_id, or_(*(and_(c.t >= low, c.t < high) for low, high in ranges)))
                 .order_by(c.t, c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()

        def matching() -> list[Moment]:
            moments: list[Moment] = []
            lines = self.keys.open_all(recording_id, (row["text"] for row in rows))
            for row, line in zip(rows, lines, strict=True):
                if wanted in line.lower():
                    moments.append(Moment(row["t"], line, _box(row)))
                    if len(moments) == most:
                        break
            return moments

        try:
            return await asyncio.to_thread(matching)
        except RecordingKeyError as exc:
            _unreadable(recording_id, exc)
            return []

    async def _terminal_text(self, recording_id: str) -> str | None:
        async with self.store.read() as connection:
            stored: str | None = await connection.scalar(
                select(recording_text.c.text).where(recording_text.c.recording_id == recording_id))
        try:
            return None if stored is None else await asyncio.to_thread(self.keys.open, recording_id, stored)
        except RecordingKeyError as exc:
            _unreadable(recording_id, exc)
            return None

    async def findings(self, recording_id: str) -> list[PiiFinding]:
        """The personal data found in the recording, in time order (what the player masks)."""
        c = pii_findings.c
        query = (select(c.kind, c.digest, c.t, c.until, c.x, c.y, c.width, c.height)
                 .where(c.recording_id == recording_id).order_by(c.t, c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [PiiFinding(row["kind"], row["digest"], row["t"], row["until"], _box(row)) for row in rows]

    async def seal_clear_rows(self) -> int:
        """Seal and index the text of recordings stored before text was sealed; how many recordings were.

        Such a recording has text but no tokens. Nodes may do this at the same time: a recording
        another node sealed meanwhile is left to it.
        """
        done, after = 0, ""
        while batch := await self._unindexed(after, SEAL_BATCH):
            for recording_id in batch:
                try:
                    await self._seal_recording(recording_id)
                    done += 1
                except IntegrityError:
                    log.info("another node sealed the recording's text", extra={"ctx": {"recording": recording_id}})
                except RecordingKeyError as exc:
                    log.warning("the recording's screen text cannot be indexed",
                                extra={"ctx": {"recording": recording_id, "error": str(exc)}})
            after = batch[-1]
        if done:
            log.info("sealed and indexed the screen text stored in clear", extra={"ctx": {"recordings": done}})
        return done

    async def _unindexed(self, after: str, most: int) -> list[str]:
        """Recordings (by id, after ``after``) with screen or terminal text and no tokens for it."""
        t = text_tokens.c
        queries = [select(table.c.recording_id.label("recording_id")).where(
            table.c.recording_id > after,
            ~select(t.recording_id).where(t.recording_id == table.c.recording_id, t.origin == origin).exists())
            for table, origin in ((screen_text, SCREEN), (recording_text, TERMINAL))]
        subquery = union(*queries).subquery()
        async with self.store.read() as connection:
            result = await connection.execute(
                select(subquery.c.recording_id).order_by(subquery.c.recording_id).limit(most))
            return [row[0] for row in result]

    async def _seal_recording(self, recording_id: str) -> None:
        c = screen_text.c
        async with self.store.transaction() as connection:
            result = await connection.execute(select(c.id, c.t, c.text).where(c.recording_id == recording_id))
            rows: list[tuple[int, float, str]] = [(row[0], row[1], row[2]) for row in result]
            terminal = await connection.scalar(
                select(recording_text.c.text).where(recording_text.c.recording_id == recording_id))

            def sealed() -> tuple[list[tuple[int, str]], Tokens, str | None, Tokens]:
                opened = self.keys.open_all(recording_id, (stored for _, _, stored in rows))
                terminal_text = None if terminal is None else self.keys.open(recording_id, terminal)
                return ([(row_id, self.keys.seal(recording_id, line)) for (row_id, _, _), line in zip(rows, opened)],
                        self._bucket_tokens((t, line) for (_, t, _), line in zip(rows, opened)),
                        None if terminal_text is None else self.keys.seal(recording_id, terminal_text),
                        {0: self.keys.text_tokens([terminal_text])} if terminal_text else {})

            lines, screen_tokens, terminal_sealed, terminal_tokens = await asyncio.to_thread(sealed)
            for row_id, text in lines:
                await connection.execute(screen_text.update().where(c.id == row_id).values(text=text))
            if lines:
                await _replace_tokens(connection, recording_id, SCREEN, screen_tokens)
            if terminal_sealed is not None:
                await connection.execute(recording_text.update().where(recording_text.c.recording_id == recording_id)
                                         .values(text=terminal_sealed))
                await _replace_tokens(connection, recording_id, TERMINAL, terminal_tokens)


def _unreadable(recording_id: str, exc: RecordingKeyError) -> None:
    """A search passes over a recording whose text it cannot open (its key is missing), and says so."""
    log.warning("a recording's screen text cannot be searched", extra={"ctx": {"recording": recording_id,
                                                                                 "error": str(exc)}})


async def _replace_tokens(connection: AsyncConnection, recording_id: str, origin: str, tokens: Tokens) -> None:
    t = text_tokens.c
    await connection.execute(delete(text_tokens).where(t.recording_id == recording_id, t.origin == origin))
    await _insert(connection, text_tokens,
                  [{"recording_id": recording_id, "origin": origin, "bucket": bucket, "token": token}
                   for bucket, bucket_tokens in sorted(tokens.items()) for token in sorted(bucket_tokens)])


def _ranges(buckets: list[int]) -> list[tuple[float, float]]:
    """The time ranges (start inclusive, end exclusive) of ``buckets`` (in order), adjacent ones joined."""
    ranges: list[tuple[float, float]] = []
    for bucket in buckets:
        low, high = bucket * BUCKET_SECONDS, (bucket + 1) * BUCKET_SECONDS
        if ranges and ranges[-1][1] == low:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
    return ranges


async def _insert(connection: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_BATCH):
        await connection.execute(insert(table), rows[start:start + INSERT_BATCH])


def _box(row: RowMapping) -> tuple[int, int, int, int] | None:
    return (row["x"], row["y"], row["width"], row["height"]) if row["x"] is not None else None


def _box_columns(region: tuple[int, int, int, int] | None) -> dict[str, int | None]:
    x, y, width, height = region if region is not None else (None, None, None, None)
    return {"x": x, "y": y, "width": width, "height": height}
