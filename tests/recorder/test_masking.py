"""Masked regions: validation, scaling, painting, timing, and the mask set recorded with a journal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recorder.errors import JournalCorrupt
from recorder.masking import (
    MASKS_EVENT,
    MaskRegion,
    MaskSet,
    MaskStyle,
    TimedMask,
    apply_masks,
    apply_timed_masks,
    mask_sets_from_event,
    masks_event_fields,
    recorded_masks,
    whole_recording,
)
from tests.recorder.test_index import end_record, event, write_journal

CARD = MaskRegion(10, 20, 30, 8, "card number")


@pytest.mark.parametrize("fields", [(-1, 0, 5, 5), (0, 0, 0, 5), (0, 0, 5, 0), (0, 1.5, 5, 5), (True, 0, 5, 5)])
def test_a_region_is_whole_pixels_and_not_empty(fields: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        MaskRegion(*fields)  # type: ignore[arg-type]


def test_a_mask_set_refuses_a_region_outside_its_desktop() -> None:
    with pytest.raises(ValueError, match="outside the 40x20 desktop"):
        MaskSet((40, 20), (CARD,))


def test_regions_scale_outwards_to_another_desktop_size() -> None:
    mask_set = MaskSet((100, 50), (CARD,))
    assert mask_set.regions_for(100, 50) == (CARD,)
    assert mask_set.regions_for(200, 100) == (MaskRegion(20, 40, 60, 16, "card number"),)
    (half,) = mask_set.regions_for(33, 17)  # never smaller than the area it hides, never outside
    assert half.x <= 10 * 33 / 100 and half.x + half.width >= 40 * 33 / 100 and half.x + half.width <= 33
    assert half.y <= 20 * 17 / 50 and half.y + half.height >= 28 * 17 / 50 and half.y + half.height <= 17


def test_black_hides_the_region_and_leaves_the_rest_and_the_original() -> None:
    frame = np.random.default_rng(1).integers(1, 255, (50, 100, 3), dtype=np.uint8)
    masked = apply_masks(frame, [CARD])
    assert not masked[20:28, 10:40].any()
    masked[20:28, 10:40] = frame[20:28, 10:40]
    assert np.array_equal(masked, frame) and frame[20:28, 10:40].all()


def test_blur_leaves_no_detail_inside_the_region() -> None:
    frame = np.zeros((50, 100, 3), np.uint8)
    frame[20:28, 10:40:2] = 255  # stripes: text-like detail
    blurred = apply_masks(frame, [CARD], MaskStyle.BLUR)[20:28, 10:40]
    assert len({tuple(pixel) for row in blurred for pixel in row}) <= 2  # one colour per square (16 px)
    assert blurred.any()


def test_timed_masks_apply_only_while_active_and_scale() -> None:
    frame = np.full((100, 200, 3), 200, np.uint8)
    timed = [TimedMask(MaskRegion(0, 0, 10, 10), start=5.0, end=8.0),
             TimedMask(MaskRegion(0, 0, 50, 25), desktop=(100, 50))]
    assert apply_timed_masks(frame, [], 1.0) is frame
    early = apply_timed_masks(frame, timed, 1.0)
    assert not early[:50, :100].any() and early[50:, 100:].all()
    assert apply_timed_masks(frame, timed[:1], 6.0)[:10, :10].max() == 0
    assert apply_timed_masks(frame, timed[:1], 8.0) is frame
    assert frame.all()


def test_the_masks_event_round_trips_and_is_read_from_a_journal(tmp_path: Path) -> None:
    sets = (MaskSet((100, 50), (CARD,), MaskStyle.BLUR), MaskSet((1280, 800), (MaskRegion(0, 0, 1, 1),)))
    assert mask_sets_from_event(masks_event_fields(sets)) == sets
    journal = write_journal(tmp_path, [event(0.0, "session_start"), event(0.0, MASKS_EVENT, **masks_event_fields(sets)),
                                       end_record(1.0)])
    assert recorded_masks(journal) == sets
    assert whole_recording(sets)[0] == TimedMask(CARD, style=MaskStyle.BLUR, desktop=(100, 50))
    assert recorded_masks(write_journal(tmp_path / "none", [event(0.0, "session_start"), end_record(1.0)])) == ()


def test_a_malformed_masks_event_fails_the_render_instead_of_showing_the_pixels(tmp_path: Path) -> None:
    journal = write_journal(tmp_path, [event(0.0, MASKS_EVENT, sets=[{"desktop": [10, 10], "regions": [{"x": 1}]}])])
    with pytest.raises(JournalCorrupt, match="masks event"):
        recorded_masks(journal)
