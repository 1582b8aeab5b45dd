"""Where a recorded desktop changed, moment by moment: the regions worth reading as text.

:func:`screen_changes` replays a journal (:class:`~recorder.render.SessionReplay`) and, at most
once per ``interval`` of session time, compares the picture with the one it last looked at.
The pixels that differ are gathered into boxes (:func:`changed_boxes`): rows of changed tiles
make bands, changed columns within a band make boxes, each tightened to its changed pixels,
widened by a little context (a word typed letter by letter is read whole), and cut to a
bounded size; boxes too small to hold a character are dropped. A pointer that only moves
changes nothing: the picture compared is the framebuffer, without the cursor drawn.

Blocking and CPU-bound: run it in a worker process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recorder.framebuffer import RGBArray
from recorder.journal import JournalReader
from recorder.records import SessionHeader
from recorder.render import SessionReplay

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of the desktop, in pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def overlaps(self, other: Box) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def union(self, other: Box) -> Box:
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)

    def as_region(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.width, self.height


@dataclass(frozen=True, slots=True)
class BoxLimits:
    """How changed pixels become boxes to read; every size in pixels."""

    tile: int = 8  # changes are gathered on a grid of tiles this big
    column_gap: int = 3  # empty tiles within a band that still join two changed stretches (spaces between words)
    context_x: int = 96  # left and right of a change: the rest of a word or field typed letter by letter
    context_y: int = 2
    min_width: int = 6  # smaller changes (a caret blinking, a pointer trail) hold no character
    min_height: int = 8
    max_width: int = 1600  # a wider or taller change is read in pieces this big at most
    max_height: int = 320


def changed_mask(before: RGBArray, after: RGBArray) -> BoolArray | None:
    """Which pixels differ; None when the sizes differ (everything changed)."""
    if before.shape != after.shape:
        return None
    mask: BoolArray = (before != after).any(axis=2)
    return mask


def changed_boxes(mask: BoolArray, limits: BoxLimits = BoxLimits()) -> list[Box]:
    """The boxes worth reading where ``mask`` is set, left to right within bands top to bottom."""
    height, width = mask.shape
    tile = limits.tile
    rows, columns = -(-height // tile), -(-width // tile)
    padded = np.zeros((rows * tile, columns * tile), np.bool_)
    padded[:height, :width] = mask
    grid = _any(padded.reshape(rows, tile, columns, tile), (1, 3))
    boxes: list[Box] = []
    for top, bottom in _runs(_any(grid, 1), 0):
        for left, right in _runs(_any(grid[top:bottom], 0), limits.column_gap):
            y0, y1 = top * tile, min(bottom * tile, height)
            x0, x1 = left * tile, min(right * tile, width)
            tight = _tighten(mask[y0:y1, x0:x1], x0, y0)
            if tight.width < limits.min_width or tight.height < limits.min_height:
                continue
            widened = _clip(Box(tight.x - limits.context_x, tight.y - limits.context_y,
                                tight.width + 2 * limits.context_x, tight.height + 2 * limits.context_y),
                            width, height)
            boxes.extend(_pieces(widened, limits.max_width, limits.max_height))
    return boxes


@dataclass(frozen=True, slots=True, eq=False)
class ScreenChange:
    """The desktop at ``t`` seconds, first changed at ``since`` after the picture looked at before.

    ``changed`` says which pixels differ from that picture (None: the size changed, so all did).
    """

    t: float
    since: float
    frame: RGBArray
    changed: BoolArray | None
    boxes: list[Box]

    def touches(self, box: Box) -> bool:
        """Whether any pixel of ``box`` changed."""
        if self.changed is None:
            return True
        return bool(self.changed[box.y:box.bottom, box.x:box.right].any())


def screen_changes(journal: Path, *, interval: float = 1.0,
                   limits: BoxLimits = BoxLimits()) -> Iterator[ScreenChange]:
    """The recording's changes, looked at no more often than every ``interval`` seconds of session time.

    A change is reported at the time of the picture it shows: the last update before the look.
    Raises DecodeError (and JournalCorrupt, OSError) where the journal cannot be replayed.
    """
    if interval <= 0:
        raise ValueError(f"interval must be positive, not {interval}")
    reader = JournalReader(journal)
    replay = SessionReplay(SessionHeader.from_json(reader.header))
    seen = replay.framebuffer.pixels.copy()  # black: what the desktop showed before its first update
    last_look = -interval
    since: float | None = None  # the first change not looked at yet
    changed_at = 0.0
    for record in reader:
        t = record.offset_us / 1e6
        if since is not None and t >= last_look + interval and not replay.updating:
            change = _look(seen, replay.framebuffer.pixels, changed_at, since, limits)
            last_look, since = t, None
            if change is not None:
                seen = change.frame
                yield change
        if replay.apply(record) and not replay.updating:
            changed_at = t
            since = t if since is None else since
    if since is not None:
        change = _look(seen, replay.framebuffer.pixels, changed_at, since, limits)
        if change is not None:
            yield change


def _look(seen: RGBArray, now: RGBArray, t: float, since: float, limits: BoxLimits) -> ScreenChange | None:
    mask = changed_mask(seen, now)
    if mask is not None and not mask.any():
        return None
    height, width = now.shape[:2]
    boxes = changed_boxes(mask, limits) if mask is not None else _pieces(Box(0, 0, width, height),
                                                                        limits.max_width, limits.max_height)
    return ScreenChange(t, since, now.copy(), mask, boxes)


def _any(array: BoolArray, axis: int | tuple[int, ...]) -> BoolArray:
    return np.asarray(np.any(array, axis=axis), dtype=np.bool_)


def _runs(flags: BoolArray, gap: int) -> Iterator[tuple[int, int]]:
    """[start, end) of the runs of True in ``flags``, joining runs separated by at most ``gap`` False."""
    indices = np.flatnonzero(flags)
    if indices.size == 0:
        return
    start = previous = int(indices[0])
    for index in indices[1:].tolist():
        if index - previous > gap + 1:
            yield start, previous + 1
            start = index
        previous = index
    yield start, previous + 1


def _tighten(mask: BoolArray, x0: int, y0: int) -> Box:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return Box(x0, y0, 0, 0)
    return Box(x0 + int(columns[0]), y0 + int(rows[0]), int(columns[-1] - columns[0]) + 1,
               int(rows[-1] - rows[0]) + 1)


def _clip(box: Box, width: int, height: int) -> Box:
    x, y = max(0, box.x), max(0, box.y)
    return Box(x, y, max(0, min(box.right, width) - x), max(0, min(box.bottom, height) - y))


def _pieces(box: Box, max_width: int, max_height: int) -> list[Box]:
    return [Box(x, y, min(max_width, box.right - x), min(max_height, box.bottom - y))
            for y in range(box.y, box.bottom, max_height) for x in range(box.x, box.right, max_width)]

