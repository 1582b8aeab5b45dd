"""The text read off recordings and the personal data found in them, in the database.

:class:`ScreenTexts` keeps what :func:`~recorder.screen_index.read_recording_text` found for a
recording (tables ``screen_text`` and ``pii_findings``; a recording read again replaces its rows) and
answers where a text appeared: the *moments* of each recording, in time order, whose line contains
it. The search text is normalised like the stored text (NFKC, no spaces between CJK characters), so
``山田 太郎`` finds the 山田太郎 that Tesseract read as ``山 田 太 郎``; case is ignored for ASCII.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import RowMapping

from base.db import Store
from recorder.ocr import normalize_text
from recorder.pii import PiiFinding
from recorder.screen_index import RecordingText
from recorder.tables import pii_findings, screen_text

#: Moments given per recording at most in a search answer.
MOMENTS_PER_RECORDING = 20
#: Rows written per INSERT.
INSERT_BATCH = 1000


def contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def screen_text_pattern(text: str) -> str:
    """The LIKE pattern finding ``text`` in ``screen_text.text``: normalised as the stored lines are."""
    return contains_pattern(normalize_text(text))


@dataclass(frozen=True, slots=True)
class Moment:
    """``text`` was on screen at ``t`` seconds into the recording, in ``box`` (x, y, width, height; None: a terminal)."""

    t: float
    text: str
    box: tuple[int, int, int, int] | None

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "text": self.text, "box": list(self.box) if self.box is not None else None}


class ScreenTexts:
    """Screen text and personal-data findings per recording."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def replace(self, recording_id: str, found: RecordingText) -> None:
        """Keep ``found`` as the recording's screen text and findings (replacing what it had)."""
        lines = [{"recording_id": recording_id, "t": line.t, "text": line.text,
                  **_box_columns(line.box.as_region() if line.box is not None else None)} for line in found.lines]
        findings = [{"recording_id": recording_id, "t": finding.start, "until": finding.end, "kind": finding.kind,
                     "digest": finding.digest, **_box_columns(finding.region)} for finding in found.findings]
        async with self.store.transaction() as connection:
            await connection.execute(delete(screen_text).where(screen_text.c.recording_id == recording_id))
            await connection.execute(delete(pii_findings).where(pii_findings.c.recording_id == recording_id))
            for rows, table in ((lines, screen_text), (findings, pii_findings)):
                for start in range(0, len(rows), INSERT_BATCH):
                    await connection.execute(insert(table), rows[start:start + INSERT_BATCH])

    async def moments(self, recording_ids: Sequence[str], text: str,
                      per_recording: int = MOMENTS_PER_RECORDING) -> dict[str, list[Moment]]:
        """Where ``text`` appeared on each recording's screen: its first ``per_recording`` moments, in time order."""
        found: dict[str, list[Moment]] = {recording_id: [] for recording_id in recording_ids}
        if not recording_ids or not normalize_text(text):
            return found
        c = screen_text.c
        query = (select(c.recording_id, c.t, c.text, c.x, c.y, c.width, c.height)
                 .where(c.recording_id.in_(list(recording_ids)),
                        c.text.ilike(screen_text_pattern(text), escape="\\"))
                 .order_by(c.recording_id, c.t, c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        for row in rows:
            moments = found[row["recording_id"]]
            if len(moments) < per_recording:
                moments.append(Moment(row["t"], row["text"], _box(row)))
        return found

    async def findings(self, recording_id: str) -> list[PiiFinding]:
        """The personal data found in the recording, in time order (what the player masks)."""
        c = pii_findings.c
        query = (select(c.kind, c.digest, c.t, c.until, c.x, c.y, c.width, c.height)
                 .where(c.recording_id == recording_id).order_by(c.t, c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [PiiFinding(row["kind"], row["digest"], row["t"], row["until"], _box(row)) for row in rows]


def _box(row: RowMapping) -> tuple[int, int, int, int] | None:
    return (row["x"], row["y"], row["width"], row["height"]) if row["x"] is not None else None


def _box_columns(region: tuple[int, int, int, int] | None) -> dict[str, int | None]:
    x, y, width, height = region if region is not None else (None, None, None, None)
    return {"x": x, "y": y, "width": width, "height": height}
