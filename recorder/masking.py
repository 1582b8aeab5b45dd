"""Masked regions: rectangles of a desktop that hold personal data, hidden in what supervisors see.

An administrator defines a :class:`MaskSet` per target (``masks:`` in the config): rectangles
in the coordinates of a desktop of a given size, painted black or blurred. The journal keeps
the original pixels; masks are applied to what is shown — the live view and wall tiles (the
gateway re-encodes the masked picture), the player's video, clips and the poster.

Masks that apply to a stretch of a recording (personal data found automatically, e.g. a card
number read on screen) are :class:`TimedMask`; configured ones cover the whole recording
(``start`` and ``end`` None). :func:`render_journal <recorder.render.render_journal>` takes a
sequence of them.

When the desktop's size differs from the size a mask set was drawn for, its rectangles are
**scaled** to the desktop's size (never skipped: a desktop at another resolution still hides
the same part of the screen, if the application scales with it) — the caller logs a warning.

The mask set in force when a session started is journaled as a ``masks`` EVENT right after the
session starts (:func:`masks_event_fields`), so a later config change does not unmask old
recordings; :func:`recorded_masks` reads it back (the only function here that reads a file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from recorder.errors import JournalCorrupt
from recorder.framebuffer import RGBArray
from recorder.journal import JournalReader, RecordKind, decode_json
from recorder.records import SessionEvent

#: The EVENT type that records the mask sets in force for a recording.
MASKS_EVENT = "masks"
#: How many records :func:`recorded_masks` reads looking for the ``masks`` event (it comes right after the start).
MASKS_EVENT_WITHIN = 16
#: Regions in one mask set at most (a config limit: each region costs work on every frame).
MAX_REGIONS = 64


class MaskStyle(StrEnum):
    """How a masked region is hidden."""

    BLACK = "black"
    BLUR = "blur"  # a coarse mosaic: squares as tall as the region, each its mean colour


@dataclass(frozen=True, slots=True)
class MaskRegion:
    """A rectangle of the screen (pixels; top-left ``x``, ``y``) and what it holds (``label``, for people)."""

    x: int
    y: int
    width: int
    height: int
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"a mask region's {name} must be a whole number of at least 0, not {value!r}")
        if self.width == 0 or self.height == 0:
            raise ValueError("a mask region must be at least 1 pixel wide and high")

    def inside(self, width: int, height: int) -> bool:
        return self.x + self.width <= width and self.y + self.height <= height

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height

    def scaled(self, from_size: tuple[int, int], to_size: tuple[int, int]) -> MaskRegion:
        """This region drawn on a ``from_size`` desktop, on a ``to_size`` one (rounded outwards, clipped)."""
        if from_size == to_size:
            return self
        sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
        x0, y0 = int(self.x * sx), int(self.y * sy)
        x1 = min(to_size[0], -int(-(self.x + self.width) * sx // 1))
        y1 = min(to_size[1], -int(-(self.y + self.height) * sy // 1))
        return MaskRegion(x0, y0, max(1, x1 - x0), max(1, y1 - y0), self.label)

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "label": self.label}


@dataclass(frozen=True, slots=True)
class MaskSet:
    """Regions drawn on a ``desktop`` of (width, height) pixels, all hidden with one ``style``."""

    desktop: tuple[int, int]
    regions: tuple[MaskRegion, ...]
    style: MaskStyle = MaskStyle.BLACK

    def __post_init__(self) -> None:
        width, height = self.desktop
        if width < 1 or height < 1:
            raise ValueError(f"a mask set's desktop must be at least 1x1, not {width}x{height}")
        for region in self.regions:
            if not region.inside(width, height):
                raise ValueError(f"region {region.width}x{region.height} at ({region.x}, {region.y}) is outside the "
                                 f"{width}x{height} desktop")

    def regions_for(self, width: int, height: int) -> tuple[MaskRegion, ...]:
        """The regions on a ``width`` x ``height`` desktop (scaled when its size differs)."""
        return tuple(region.scaled(self.desktop, (width, height)) for region in self.regions)

    def to_json(self) -> dict[str, Any]:
        return {"desktop": list(self.desktop), "style": self.style.value,
                "regions": [region.to_json() for region in self.regions]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> MaskSet:
        """The mask set of a ``masks`` event; ValueError says what is wrong."""
        try:
            desktop = value["desktop"]
            regions = tuple(MaskRegion(r["x"], r["y"], r["width"], r["height"], str(r.get("label", "")))
                            for r in value["regions"])
            return cls((int(desktop[0]), int(desktop[1])), regions, MaskStyle(value.get("style", "black")))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"a recorded mask set is malformed ({exc.__class__.__name__}: {exc})") from None


@dataclass(frozen=True, slots=True)
class TimedMask:
    """A region hidden from ``start`` to ``end`` (seconds of the recording; None: from its start, to its end).

    ``desktop`` is the desktop size ``region`` was drawn for (None: the recording's framebuffer
    coordinates, whatever its size) — the region is scaled to the framebuffer when they differ.
    """

    region: MaskRegion
    start: float | None = None
    end: float | None = None
    style: MaskStyle = MaskStyle.BLACK
    desktop: tuple[int, int] | None = None

    def active(self, t: float) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t < self.end)

    def region_on(self, width: int, height: int) -> MaskRegion:
        return self.region if self.desktop is None else self.region.scaled(self.desktop, (width, height))


def whole_recording(mask_sets: Iterable[MaskSet]) -> tuple[TimedMask, ...]:
    """Configured mask sets as masks over the whole recording."""
    return tuple(TimedMask(region, style=mask_set.style, desktop=mask_set.desktop)
                 for mask_set in mask_sets for region in mask_set.regions)


def masks_at(masks: Sequence[TimedMask], t: float) -> tuple[TimedMask, ...]:
    return tuple(mask for mask in masks if mask.active(t))


def apply_timed_masks(frame: RGBArray, masks: Sequence[TimedMask], t: float) -> RGBArray:
    """``frame`` with the masks active at ``t`` applied: a new array when any is, else ``frame`` itself."""
    active = masks_at(masks, t)
    if not active:
        return frame
    height, width = int(frame.shape[0]), int(frame.shape[1])
    masked = frame.copy()
    for mask in active:
        paint_region(masked, mask.region_on(width, height), mask.style)
    return masked


def apply_masks(frame: RGBArray, regions: Iterable[MaskRegion], style: MaskStyle = MaskStyle.BLACK) -> RGBArray:
    """``frame`` with ``regions`` hidden, as a new array (``frame`` is not changed)."""
    masked = frame.copy()
    for region in regions:
        paint_region(masked, region, style)
    return masked


def paint_region(frame: RGBArray, region: MaskRegion, style: MaskStyle) -> None:
    """Hide ``region`` of ``frame`` in place (the part of it inside the frame)."""
    area = frame[region.y:region.y + region.height, region.x:region.x + region.width]
    if area.size == 0:
        return
    if style is MaskStyle.BLACK:
        area[...] = 0
        return
    block = max(16, int(area.shape[0]))  # squares as tall as the region: no glyph survives
    for left in range(0, int(area.shape[1]), block):
        for top in range(0, int(area.shape[0]), block):
            square = area[top:top + block, left:left + block]
            square[...] = square.reshape(-1, 3).mean(axis=0).astype(np.uint8)


def unmasked_video_path(journal: Path) -> Path:
    """Where a recording's unmasked video is kept once rendered on demand: beside its journal."""
    return journal.with_name(f"{journal.stem}.unmasked.mp4")


def masks_event_fields(mask_sets: Sequence[MaskSet]) -> dict[str, Any]:
    """The fields of the ``masks`` EVENT that records ``mask_sets`` with a recording."""
    return {"sets": [mask_set.to_json() for mask_set in mask_sets]}


def mask_sets_from_event(fields: Mapping[str, Any]) -> tuple[MaskSet, ...]:
    """The mask sets a ``masks`` event records; ValueError if it is malformed."""
    sets = fields.get("sets")
    if not isinstance(sets, list):
        raise ValueError("a masks event has no list 'sets'")
    return tuple(MaskSet.from_json(item) for item in sets)


def recorded_masks(journal: Path) -> tuple[MaskSet, ...]:
    """The mask sets recorded with ``journal`` (none when it has no ``masks`` event near its start).

    A malformed ``masks`` event raises JournalCorrupt: rendering without masks what should have them
    would show personal data, so the render must fail instead.
    """
    reader = JournalReader(journal)
    for seen, record in enumerate(reader):
        if seen >= MASKS_EVENT_WITHIN:
            break
        value = decode_json(record.payload) if record.kind == RecordKind.EVENT else None
        if value is not None and value.get("type") == MASKS_EVENT:
            try:
                return mask_sets_from_event(SessionEvent.from_json(value).fields)
            except ValueError as exc:
                raise JournalCorrupt(f"{journal.name}: its masks event is unreadable: {exc}") from None
    return ()
