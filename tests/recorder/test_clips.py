"""Clip exports: the rule for what may be asked, and the rows that follow each export."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from base.db import Store
from recorder.clips import ClipState, ClipStore, check_clip_range, clip_path, is_clip_id
from recorder.index import RecordingIndex
from tests.recorder.test_index import SAMPLES
from tests.text_keys import TEXT_KEYS

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("start", "end", "duration", "expected"), [
    (0, 10, 60.0, (0.0, 10.0)),
    (12.5, 42.25, 60.0, (12.5, 42.25)),
    (50, 75, 60.0, (50.0, 60.0)),  # past the end: to the end
    (0, 1800, 3600.0, (0.0, 1800.0)),
])
def test_clip_ranges_that_are_accepted(start: float, end: float, duration: float,
                                       expected: tuple[float, float]) -> None:
    assert check_clip_range(start, end, duration) == expected


@pytest.mark.parametrize(("start", "end", "duration", "message"), [
    (-1, 10, 60.0, "from must be between 0 and the recording's end (60.0 s)"),
    (60, 70, 60.0, "from must be between 0 and the recording's end"),
    (10, 10.5, 60.0, "the clip must be at least 1 s long"),
    (10, 5, 60.0, "the clip must be at least 1 s long"),
    (59.5, 90, 60.0, "the clip must be at least 1 s long"),
    (0, 1800.5, 3600.0, "a clip may be at most 1800 s long"),
    ("0", 10, 60.0, "from must be a number"),
    (0, None, 60.0, "to must be a number"),
    (0, math.nan, 60.0, "to must be a number"),
    (True, 10, 60.0, "from must be a number"),
])
def test_clip_ranges_that_are_refused(start: object, end: object, duration: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_clip_range(start, end, duration)


def test_the_longest_clip_is_a_parameter() -> None:
    assert check_clip_range(0, 100, 200.0, max_seconds=100) == (0.0, 100.0)
    with pytest.raises(ValueError, match="at most 99 s"):
        check_clip_range(0, 100, 200.0, max_seconds=99)


def test_clip_files_are_under_the_recordings_root(tmp_path: Path) -> None:
    assert clip_path(tmp_path, "0123456789abcdef") == tmp_path / "clips" / "0123456789abcdef.mp4"
    for bad in ("../../etc/passwd", "0123456789ABCDEF", "0123456789abcde", ""):
        assert not is_clip_id(bad)
        with pytest.raises(ValueError):
            clip_path(tmp_path, bad)


async def test_a_clip_row_follows_its_export(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    for summary in SAMPLES:
        await index.add(summary, sha256=None, node="gw-1")
    clips = ClipStore(store, clock=lambda: NOW)
    clip = await clips.create(SAMPLES[1].id, "sue", 10.0, 70.0, "gw-1")
    assert is_clip_id(clip.id) and clip.state == ClipState.QUEUED
    assert await clips.get(SAMPLES[1].id, clip.id) == clip
    assert await clips.get(SAMPLES[0].id, clip.id) is None  # another recording's
    await clips.rendering(clip.id, 0.4567)
    found = await clips.get(SAMPLES[1].id, clip.id)
    assert found is not None and (found.state, found.progress) == (ClipState.RENDERING, 0.4567)
    assert found.to_json() == {"id": clip.id, "recording": SAMPLES[1].id, "owner": "sue", "from": 10.0, "to": 70.0,
                               "state": "rendering", "progress": 0.457, "error": None,
                               "created": "2026-11-27T09:30:00.000000Z"}
    await clips.ready(clip.id, Path("/r/clips/x.mp4"))
    found = await clips.get(SAMPLES[1].id, clip.id)
    assert found is not None and (found.state, found.progress, found.path) == (ClipState.READY, 1.0, "/r/clips/x.mp4")
    assert found.state.finished


async def test_a_stopped_gateway_abandons_only_its_unfinished_clips(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    await index.add(SAMPLES[0], sha256=None, node="gw-1")
    clips = ClipStore(store, clock=lambda: NOW)
    queued = await clips.create(SAMPLES[0].id, "sue", 0.0, 10.0, "gw-1")
    running = await clips.create(SAMPLES[0].id, "sue", 0.0, 20.0, "gw-1")
    done = await clips.create(SAMPLES[0].id, "sue", 0.0, 30.0, "gw-1")
    elsewhere = await clips.create(SAMPLES[0].id, "sue", 0.0, 40.0, "gw-2")
    await clips.rendering(running.id, 0.5)
    await clips.ready(done.id, Path("/r/c.mp4"))
    assert await clips.abandon("gw-1", "the gateway restarted; export it again") == 2
    states = {clip.id: (clip.state, clip.error) for clip in await clips.for_recording(SAMPLES[0].id)}
    assert states == {queued.id: (ClipState.FAILED, "the gateway restarted; export it again"),
                      running.id: (ClipState.FAILED, "the gateway restarted; export it again"),
                      done.id: (ClipState.READY, None), elsewhere.id: (ClipState.QUEUED, None)}
