"""Clip exports through the RecordingService: real journals, a real render pool, rows in a real database."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.recording_service import CLIPS_ABANDONED, ClipRefused, RecordingService, RecordingSettings
from recorder.clips import Clip, ClipState
from recorder.index import RecordingIndex, RecordingRow, VideoState
from recorder.journal import JOURNAL_MAGIC, RecordKind, encode_record
from recorder.worker import RenderPool
from tests.gateway.test_recording_service import KEY
from tests.recorder.test_render import HEIGHT, WIDTH, RawEncoder, journal_header, read_video, typing_session
from tests.text_keys import TEXT_KEYS


async def indexed(tmp_path: Path, store: Store, updates: int = 200) -> RecordingRow:
    """A 320x240 session of ``updates`` updates 0.25 s apart, indexed."""
    journal = tmp_path / "recordings/2026/11/25/20261125T080000Z-0123abcd.dgj"
    journal.parent.mkdir(parents=True)
    session = typing_session(RawEncoder(), updates=updates, interval=0.25)
    end = session.last_us / 1e6 + 1.0
    started = datetime.fromisoformat(str(journal_header(WIDTH, HEIGHT)["started"])).timestamp()
    end_json = {"ended": "2026-11-25T08:10:00Z", "ended_epoch": started + end, "reason": "closed"}
    journal.write_bytes(JOURNAL_MAGIC + b"".join(session.records)
                        + encode_record(RecordKind.END, round(end * 1e6), json.dumps(end_json).encode()))
    index = RecordingIndex(store, TEXT_KEYS)
    await index.add_journal(journal, None, "gw-1")
    row = await index.get("20261125T080000Z-0123abcd")
    assert row is not None
    return row


def clip_service(tmp_path: Path, store: Store, pool: RenderPool | None, **limits: int) -> RecordingService:
    return RecordingService(RecordingSettings(tmp_path / "recordings", KEY, 3600.0), Metrics(), RecordingIndex(store, TEXT_KEYS),
                            AuditLog(store), pool, **limits)  # type: ignore[arg-type]


async def finished(service: RecordingService, clip: Clip) -> Clip:
    async with asyncio.timeout(60):
        while True:
            found = await service.clips.get(clip.recording_id, clip.id)
            assert found is not None
            if found.state.finished:
                return found
            await asyncio.sleep(0.05)


def metric(service: RecordingService, name: str, **labels: str) -> float:
    value = service._metrics.registry.get_sample_value(f"deskgate_{name}", labels or None)
    return value or 0.0


async def test_a_clip_is_exported_with_its_progress(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store)
    service = clip_service(tmp_path, store, RenderPool(1, progress_interval=0.02))
    seen: set[tuple[ClipState, float]] = set()
    try:
        clip = await service.export_clip(row, Path(row.path), "sue", 10.0, 40.0)
        assert (clip.state, clip.start, clip.end, clip.owner) == (ClipState.QUEUED, 10.0, 40.0, "sue")
        assert metric(service, "clip_exports_running") == 1
        async with asyncio.timeout(60):
            while not (found := await service.clips.get(row.id, clip.id)).state.finished:  # type: ignore[union-attr]
                seen.add((found.state, found.progress))  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
    finally:
        await service.close()
    done = await service.clips.get(row.id, clip.id)
    assert done is not None and done.state == ClipState.READY and done.progress == 1.0, done
    assert done.path == str(tmp_path / "recordings" / "clips" / f"{clip.id}.mp4")
    video = read_video(Path(done.path))
    assert video.times[0] == 0.0 and video.times[-1] == pytest.approx(30.0, abs=0.001)
    assert any(state == ClipState.RENDERING for state, _ in seen)
    assert (tmp_path / "recordings" / "clips").stat().st_mode & 0o777 == 0o700
    assert metric(service, "clip_exports_total", outcome="ready") == 1
    assert metric(service, "clip_exports_running") == 0


async def test_clip_exports_are_bounded_per_gateway_and_per_person(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store)
    service = clip_service(tmp_path, store, RenderPool(1), max_clip_jobs=2, max_clip_jobs_per_user=1)
    try:
        first = await service.export_clip(row, Path(row.path), "sue", 0.0, 20.0)
        with pytest.raises(ClipRefused, match="you have 1 clip exports under way; wait for one to finish") as mine:
            await service.export_clip(row, Path(row.path), "sue", 0.0, 20.0)
        await service.export_clip(row, Path(row.path), "sam", 0.0, 20.0)
        with pytest.raises(ClipRefused, match="the gateway is exporting 2 clips already") as busy:
            await service.export_clip(row, Path(row.path), "tom", 0.0, 20.0)
        assert (mine.value.reason, busy.value.reason) == ("clips_per_user", "clips_busy")
        assert metric(service, "review_refused_total", reason="clips_busy") == 1
        assert metric(service, "review_refused_total", reason="clips_per_user") == 1
        await finished(service, first)
        await asyncio.sleep(0)  # the export's task has ended: sue may export again
        await service.export_clip(row, Path(row.path), "sue", 5.0, 10.0)
    finally:
        await service.close()


async def test_a_bad_range_is_refused_before_anything_is_queued(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store, updates=20)  # 5 s
    service = clip_service(tmp_path, store, RenderPool(1), max_clip_seconds=2)  # type: ignore[arg-type]
    try:
        with pytest.raises(ValueError, match="a clip may be at most 2 s long"):
            await service.export_clip(row, Path(row.path), "sue", 0.0, 4.0)
        with pytest.raises(ValueError, match="from must be between 0 and the recording's end"):
            await service.export_clip(row, Path(row.path), "sue", 9.0, 10.0)
        assert await service.clips.for_recording(row.id) == []
    finally:
        await service.close()


async def test_without_render_workers_there_are_no_clips(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store, updates=20)
    service = clip_service(tmp_path, store, None)
    with pytest.raises(ClipRefused, match="this gateway renders no videos") as refused:
        await service.export_clip(row, Path(row.path), "sue", 0.0, 3.0)
    assert refused.value.reason == "clips_unavailable"


async def test_an_export_that_fails_says_why(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store, updates=20)
    Path(row.path).write_bytes(b"no longer a journal")
    service = clip_service(tmp_path, store, RenderPool(1))
    try:
        clip = await service.export_clip(row, Path(row.path), "sue", 0.0, 3.0)
        failed = await finished(service, clip)
    finally:
        await service.close()
    assert failed.state == ClipState.FAILED and failed.error is not None
    assert failed.error.startswith("the export failed: ")
    assert metric(service, "clip_exports_total", outcome="failed") == 1


async def test_stopping_or_restarting_the_gateway_fails_unfinished_exports(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store)
    service = clip_service(tmp_path, store, RenderPool(1))
    clip = await service.export_clip(row, Path(row.path), "sue", 0.0, 45.0)
    await service.close()
    stopped = await service.clips.get(row.id, clip.id)
    assert stopped is not None and (stopped.state, stopped.error) == (ClipState.FAILED, CLIPS_ABANDONED)

    left = await service.clips.create(row.id, "sue", 0.0, 5.0, service._node)  # as a crash leaves it: queued
    restarted = clip_service(tmp_path, store, None)
    await restarted.recover()
    found = await restarted.clips.get(row.id, left.id)
    assert found is not None and found.state == ClipState.FAILED


async def test_a_rendered_recording_has_a_poster_next_to_its_video(tmp_path: Path, store: Store) -> None:
    row = await indexed(tmp_path, store, updates=20)
    service = clip_service(tmp_path, store, RenderPool(1))
    try:
        await service.render(row.id, Path(row.path))
    finally:
        await service.close()
    rendered = await RecordingIndex(store, TEXT_KEYS).get(row.id)
    assert rendered is not None and rendered.video_state == VideoState.READY
    assert Path(row.path).with_suffix(".jpg").stat().st_size > 1000
