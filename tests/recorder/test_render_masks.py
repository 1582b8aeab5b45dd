"""Masks in renders: every frame, the poster and a clip hide the masked regions while they are active."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from recorder.masking import MaskRegion, MaskStyle, TimedMask
from recorder.render import render_journal
from tests.recorder.test_render import ENCODERS, HEIGHT, WIDTH, read_video, typing_session

FIELD = MaskRegion(8, 8, 32, 16, "card number")


def test_configured_masks_hide_their_region_in_every_frame_and_the_poster(tmp_path: Path) -> None:
    session = typing_session(ENCODERS["raw"](), updates=6)
    journal = session.write(tmp_path / "session.dgj")
    poster = tmp_path / "poster.jpg"
    result = render_journal(journal, tmp_path / "masked.mp4", poster=poster,
                            masks=[TimedMask(FIELD, desktop=(WIDTH, HEIGHT))])
    assert not result.last_frame[8:24, 8:40].any()
    outside = result.last_frame.copy()
    outside[8:24, 8:40] = session.expected[8:24, 8:40]
    assert np.array_equal(outside, session.expected)
    assert all(int(frame[10:22, 10:38].max()) <= 24 for frame in read_video(result.output).frames)
    with av.open(str(poster)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert int(picture[10:22, 10:38].max()) <= 24
    assert session.expected[8:24, 8:40].any()  # what was hidden had content


def test_timed_masks_follow_session_time_in_a_clip_and_scale(tmp_path: Path) -> None:
    session = typing_session(ENCODERS["raw"](), updates=12)
    journal = session.write(tmp_path / "session.dgj")
    late = TimedMask(MaskRegion(0, 0, WIDTH // 2, HEIGHT // 2), start=1.0, style=MaskStyle.BLACK,
                     desktop=(WIDTH // 2, HEIGHT // 2))  # drawn on a desktop half the size: scaled to all of it
    result = render_journal(journal, tmp_path / "clip.mp4", start=1.2, end=2.0, masks=[late])
    assert not result.last_frame.any()
    early = render_journal(journal, tmp_path / "early.mp4", start=0.0, end=0.9, masks=[late])
    assert early.last_frame.any()
