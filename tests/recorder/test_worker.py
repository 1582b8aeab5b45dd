"""The render pool: renders in spawned worker processes, with progress read from shared slots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from base.metrics import Metrics
from recorder.worker import RenderPool
from tests.recorder.test_render import RawEncoder, read_video, typing_session


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return typing_session(RawEncoder(), updates=600, interval=0.25).write(tmp_path / "s.dgj")


async def test_a_clip_renders_in_a_worker_with_its_progress_and_poster(tmp_path: Path, journal: Path) -> None:
    pool = RenderPool(1, progress_interval=0.01)
    reported: list[float] = []

    async def progress(fraction: float) -> None:
        reported.append(fraction)

    try:
        result = await pool.submit(journal, tmp_path / "clip.mp4", start=5.0, end=145.0, poster=tmp_path / "c.jpg",
                                   progress=progress)
    finally:
        await pool.close()
    assert result.error is None and result.duration == pytest.approx(140.0)
    assert read_video(tmp_path / "clip.mp4").times[0] == 0.0
    assert (tmp_path / "c.jpg").stat().st_size > 0
    assert reported and reported == sorted(reported) and all(0 < fraction <= 1 for fraction in reported)


async def test_the_pool_counts_its_workers_and_the_cpu_time_each_second_of_video_cost(tmp_path: Path,
                                                                                       journal: Path) -> None:
    metrics = Metrics()
    pool = RenderPool(2, metrics)

    def sample(name: str) -> float:
        value = metrics.registry.get_sample_value(name)
        assert value is not None
        return value

    try:
        assert sample("deskgate_render_workers") == 2
        first = await pool.submit(journal, tmp_path / "a.mp4")
        second = await pool.submit(journal, tmp_path / "b.mp4", start=10.0, end=40.0)
    finally:
        await pool.close()
    assert first.cpu_seconds > 0 and second.cpu_seconds > 0
    assert sample("deskgate_render_cpu_seconds_total") == pytest.approx(first.cpu_seconds + second.cpu_seconds)
    assert sample("deskgate_render_video_seconds_total") == pytest.approx(first.duration + 30.0)
    assert sample("deskgate_render_queue_length") == 0


async def test_renders_beyond_the_progress_slots_finish_without_progress(tmp_path: Path, journal: Path) -> None:
    pool = RenderPool(2, progress_slots=1, progress_interval=0.01)
    reports: dict[str, list[float]] = {"a": [], "b": []}

    def recorder(name: str) -> object:
        async def progress(fraction: float) -> None:
            reports[name].append(fraction)
        return progress

    try:
        results = await asyncio.gather(*(pool.submit(journal, tmp_path / f"{name}.mp4", start=0.0, end=30.0,
                                                     progress=recorder(name))  # type: ignore[arg-type]
                                         for name in reports))
    finally:
        await pool.close()
    assert [result.error for result in results] == [None, None]
    assert [bool(reports["a"]), bool(reports["b"])].count(True) <= 1  # one slot: one render reports at a time


async def test_a_failing_progress_report_does_not_stop_the_render(tmp_path: Path, journal: Path) -> None:
    pool = RenderPool(1, progress_interval=0.01)

    async def broken(fraction: float) -> None:
        raise OSError("database gone")

    try:
        result = await pool.submit(journal, tmp_path / "s.mp4", progress=broken)
    finally:
        await pool.close()
    assert result.error is None and result.frames > 100


async def test_the_pools_videos_have_at_most_its_frames_a_second(tmp_path: Path, journal: Path) -> None:
    pool = RenderPool(1, max_fps=2)  # storage.export_fps: 2; the journal has an update every 0.25 s
    try:
        result = await pool.submit(journal, tmp_path / "s.mp4", start=0.0, end=20.0)
    finally:
        await pool.close()
    times = read_video(tmp_path / "s.mp4").times
    assert result.error is None and min(b - a for a, b in zip(times, times[1:])) >= 0.5 - 0.0005
    assert len(times) <= 1 + 20 * 2 + 2


def test_the_pool_needs_workers_and_slots() -> None:
    for arguments in ({"workers": 0}, {"workers": 1, "progress_slots": 0}, {"workers": 1, "progress_interval": 0}):
        with pytest.raises(ValueError):
            RenderPool(**arguments)  # type: ignore[arg-type]
