"""SessionRecorder on a real disk: records and their times, flushing, backpressure, closing, refusal to start."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from base import __version__
from base.metrics import Metrics
from gateway.rfb.messages import RGBX8888
from recorder.batches import BATCH_BYTES
from recorder.errors import RecordingUnavailable
from recorder.journal import (
    JournalFile,
    JournalReader,
    JournalRecord,
    RecordKind,
    recording_path,
)
from recorder.records import SessionHeader
from recorder.seal import verify_journal
from recorder.writer import SessionRecorder, failure_reason, journal_writers, session_header

SESSION_ID = "20261125T080000Z-1a2b3c4d"
STARTED = 1795593600.0
KEY = bytes(range(32))
KEY_EVENT = b"\x04\x01\x00\x00\x00\x00\xff\x0d"
NEVER = 3600.0  # an fsync interval that does not elapse during a test


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def header(session_id: str = SESSION_ID) -> SessionHeader:
    return session_header(
        session_id=session_id, user="alice", source="192.0.2.7", target="desk-01", started_epoch=STARTED,
        width=1024, height=768, pixel_format=RGBX8888, desktop_name=b"x11 \xff desk", policy="operators",
        record_input="full", clipboard="off", groups=frozenset({"operators"}),
    )


async def open_recorder(root: Path, metrics: Metrics, **options: Any) -> SessionRecorder:
    settings: dict[str, Any] = {"key": KEY, "fsync_interval": NEVER, "metrics": metrics, **options}
    return await SessionRecorder.open(recording_path(root, SESSION_ID), header(), **settings)


def records(path: Path) -> list[JournalRecord]:
    return list(JournalReader(path))


def decoded(record: JournalRecord) -> tuple[str, int, Any]:
    payload: Any = record.payload
    if record.kind in (RecordKind.EVENT, RecordKind.INPUT_COUNTS, RecordKind.END):
        payload = json.loads(record.payload)
    return record.kind.name, record.offset_us, payload


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"deskgate_{name}", labels) or 0.0


async def until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait (bounded) for the flusher's worker thread to make ``condition`` true."""
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_session_is_journaled_with_monotonic_offsets_and_sealed(tmp_path: Path) -> None:
    metrics, clock = Metrics(), FakeClock()
    recorder = await open_recorder(tmp_path, metrics, clock=clock)
    clock.now += 0.00001
    recorder.server_data(b"\x00\x00\x00\x01")
    clock.now += 0.5
    recorder.client_data(KEY_EVENT)
    recorder.event("resize", width=800, height=600)
    recorder.server_data(b"")  # nothing to record
    clock.now += 0.75
    result = await recorder.close("browser closed")

    path = recording_path(tmp_path, SESSION_ID)
    reader = JournalReader(path)
    assert reader.header == header().to_json() and reader.header["pixel_format"]["bits_per_pixel"] == 32
    ended = {"ended": "2026-11-25T08:00:01.250010Z", "ended_epoch": STARTED + 1.25001, "reason": "browser closed",
             "crashed": False, "torn_at": None}
    assert [decoded(r) for r in reader] == [
        ("EVENT", 0, {"type": "session_start"}),
        ("SERVER_DATA", 10, b"\x00\x00\x00\x01"),
        ("CLIENT_DATA", 500_010, KEY_EVENT),
        ("EVENT", 500_010, {"type": "resize", "width": 800, "height": 600}),
        ("EVENT", 1_250_010, {"type": "session_end", "reason": "browser closed"}),
        ("END", 1_250_010, ended),
    ]
    assert reader.torn_at is None
    size = path.stat().st_size
    assert (result.path, result.session_id, result.size, result.end_reason) == (path, SESSION_ID, size, "browser closed")
    assert result.sealed and result.failure is None
    verify_journal(path, KEY)
    assert sample(metrics, "recording_bytes_total") == size
    assert not recorder.failure.done()


async def test_close_is_idempotent_and_appends_after_it_are_ignored(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics())
    first, second = await asyncio.gather(recorder.close("terminated"), recorder.close("other"))
    content = recorder.path.read_bytes()
    recorder.server_data(b"late")
    recorder.client_data(b"late")
    recorder.event("idle_warning")
    recorder.input_counted("keys")
    third = await recorder.close("again")
    assert first == second == third and first.end_reason == "terminated"
    assert recorder.path.read_bytes() == content and recorder.buffered_bytes == 0
    verify_journal(recorder.path, KEY)


async def test_offsets_never_go_back_even_if_the_clock_does(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    recorder = await open_recorder(tmp_path, Metrics(), clock=clock)
    for now in (101.0, 100.5, 102.0, 99.0):
        clock.now = now
        recorder.server_data(b"x")
    await recorder.close("done")
    assert [r.offset_us for r in records(recorder.path) if r.kind == RecordKind.SERVER_DATA] == [
        1_000_000, 1_000_000, 2_000_000, 2_000_000]


async def test_data_longer_than_a_record_is_split(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics(), max_record=1000)
    data = bytes(range(256)) * 10
    recorder.server_data(memoryview(data))
    await recorder.close("done")
    chunks = [r.payload for r in records(recorder.path) if r.kind == RecordKind.SERVER_DATA]
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 560] and b"".join(chunks) == data


async def test_data_split_into_records_is_still_cut_into_batches_a_reader_opens(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics(), max_record=4096)
    data = bytes(range(256)) * (10 * BATCH_BYTES // 256)  # one message of ten batches' worth
    recorder.server_data(data)
    await recorder.close("done")
    reader = JournalReader(recorder.path, max_record=4096)  # a batch is at most a record over BATCH_BYTES
    chunks = [r.payload for r in reader if r.kind == RecordKind.SERVER_DATA]
    assert reader.torn_at is None and reader.end is not None and b"".join(chunks) == data
    assert reader.batches >= 10


async def test_input_counts_precede_each_flush_and_the_end(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics(), early_write=1)  # every append wakes the flusher
    for kind in ("keys", "keys", "keys", "clicks"):
        recorder.input_counted(kind)
    recorder.input_counted("pointer", 5)
    recorder.server_data(b"x")
    size = recorder.path.stat().st_size
    await until(lambda: recorder.path.stat().st_size > size)
    recorder.input_counted("cut_text")
    await recorder.close("done")
    assert [decoded(r)[::2] for r in records(recorder.path)] == [
        ("EVENT", {"type": "session_start"}),
        ("SERVER_DATA", b"x"),
        ("INPUT_COUNTS", {"keys": 3, "pointer": 5, "clicks": 1, "cut_text": 0}),
        ("INPUT_COUNTS", {"keys": 0, "pointer": 0, "clicks": 0, "cut_text": 1}),
        ("EVENT", {"type": "session_end", "reason": "done"}),
        ("END", json.loads(records(recorder.path)[-1].payload)),
    ]


async def test_data_is_fsynced_within_the_interval_while_the_session_runs(tmp_path: Path) -> None:
    metrics = Metrics()
    recorder = await open_recorder(tmp_path, metrics, fsync_interval=0.05)
    created = recorder.synced_size
    recorder.server_data(b"frame")
    await until(lambda: recorder.synced_size > created)
    assert [r.payload for r in records(recorder.path)][-1] == b"frame"  # readable while still open
    assert sample(metrics, "recording_bytes_total") == recorder.path.stat().st_size
    await recorder.close("done")


async def test_a_big_buffer_is_written_early_and_fsynced_on_time(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics(), early_write=64 * 1024)
    created = recorder.synced_size
    recorder.server_data(bytes(100_000))
    await until(lambda: recorder.path.stat().st_size > 100_000)
    assert recorder.synced_size == created  # written, but the fsync waits for its interval
    await recorder.close("done")
    assert recorder.synced_size == recorder.path.stat().st_size


async def test_backpressure_waits_until_a_flush_drained_the_buffer(tmp_path: Path) -> None:
    recorder = await open_recorder(tmp_path, Metrics(), early_write=1 << 30, high_water=64 * 1024)
    await asyncio.wait_for(recorder.backpressure(), 1)  # under the mark: no wait
    recorder.server_data(bytes(100_000))
    waiting = asyncio.ensure_future(recorder.backpressure())
    await asyncio.sleep(0)
    assert not waiting.done() and recorder.buffered_bytes > 64 * 1024
    await asyncio.wait_for(waiting, 5)
    assert recorder.buffered_bytes == 0 and recorder.path.stat().st_size > 100_000
    await recorder.close("done")


async def test_memory_stays_bounded_under_a_fast_producer(tmp_path: Path) -> None:
    high_water, chunk = 1 << 20, bytes(64 * 1024)
    recorder = await open_recorder(tmp_path, Metrics(), early_write=256 * 1024, high_water=high_water)
    most = 0
    for _ in range(512):  # 32 MiB, as fast as the pumps could go
        recorder.server_data(chunk)
        most = max(most, recorder.buffered_bytes)
        await recorder.backpressure()
    result = await recorder.close("done")
    assert most <= high_water + len(chunk) + 64
    assert result.size > 512 * len(chunk) and result.sealed


@pytest.mark.parametrize("root, why", [
    ("file", "Not a directory"),  # the recordings directory is a regular file: fails for root too
    ("/proc/deskgate-recordings", "No such file or directory"),
])
async def test_a_session_that_cannot_be_recorded_is_refused(tmp_path: Path, root: str, why: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    metrics = Metrics()
    with pytest.raises(RecordingUnavailable) as refused:
        await open_recorder(tmp_path / root, metrics)
    assert str(refused.value) == f"recording storage is not writable ({why}); the session cannot start unrecorded"
    assert sample(metrics, "recording_failures_total", reason="create_failed") == 1
    assert sample(metrics, "recording_bytes_total") == 0


async def test_an_existing_journal_is_never_reused(tmp_path: Path) -> None:
    metrics = Metrics()
    first = await open_recorder(tmp_path, metrics)
    with pytest.raises(RecordingUnavailable, match="File exists"):
        await open_recorder(tmp_path, metrics)
    first.server_data(b"still mine")
    await first.close("done")
    verify_journal(first.path, KEY)
    assert sample(metrics, "recording_failures_total", reason="create_failed") == 1


@pytest.mark.parametrize("path_id, header_changes", [
    ("20261125T080000Z-00000000", {}),
    (SESSION_ID, {"session_id": "../../x"}),
    (SESSION_ID, {"started_epoch": None}),
])
async def test_a_header_that_does_not_fit_the_path_is_a_programming_error(
    tmp_path: Path, path_id: str, header_changes: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await SessionRecorder.open(recording_path(tmp_path, path_id), dataclasses.replace(header(), **header_changes),
                                   key=KEY, fsync_interval=1, metrics=Metrics())
    assert list(tmp_path.iterdir()) == []


async def test_a_cancelled_open_releases_its_journal(tmp_path: Path) -> None:
    opening = asyncio.ensure_future(open_recorder(tmp_path, Metrics()))
    await asyncio.sleep(0)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    path = recording_path(tmp_path, SESSION_ID)

    def released() -> bool:
        if not path.exists():
            return False
        journal = JournalFile.reopen(path)
        if journal is not None:
            journal.close()
        return journal is not None

    await until(released)


def test_session_header_fields() -> None:
    assert header().to_json() == {
        "format": 1, "session_id": SESSION_ID, "user": "alice", "source": "192.0.2.7", "target": "desk-01",
        "protocol": "vnc", "started": "2026-11-25T08:00:00.000000Z", "started_epoch": STARTED,
        "width": 1024, "height": 768,
        "pixel_format": {"bits_per_pixel": 32, "depth": 24, "big_endian": False, "true_colour": True,
                         "red_max": 255, "green_max": 255, "blue_max": 255,
                         "red_shift": 16, "green_shift": 8, "blue_shift": 0},
        "desktop_name": "x11 \ufffd desk", "gateway_version": __version__, "node": header().node,
        "policy": "operators", "record_input": "full", "clipboard": "off", "groups": ["operators"],
    }
    assert isinstance(header().node, str) and header().node


@pytest.mark.parametrize("code, reason", [
    (errno.ENOSPC, "disk_full"), (errno.EDQUOT, "disk_full"), (errno.EFBIG, "file_too_large"),
    (errno.EIO, "io_error"), (errno.EBADF, "io_error"), (errno.EROFS, "permission"), (errno.EACCES, "permission"),
])
def test_failure_reasons(code: int, reason: str) -> None:
    assert failure_reason(OSError(code, "x")) == reason


async def test_the_seal_uses_the_digest_taken_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_second_pass(path: Path) -> tuple[int, str]:
        raise AssertionError(f"{path} was read again to seal it")

    monkeypatch.setattr("recorder.seal._digest", no_second_pass)
    recorder = await open_recorder(tmp_path, Metrics(), fsync_interval=0.01)
    for _ in range(3):
        recorder.server_data(bytes(range(256)) * 4096)
        await asyncio.sleep(0.02)
    result = await recorder.close("browser closed")
    monkeypatch.undo()
    assert result.sealed
    verify_journal(result.path, KEY)  # the digest matches the bytes on disk


async def test_fsynced_bytes_leave_the_page_cache_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[tuple[int, int]] = []
    fadvise = os.posix_fadvise

    def recording_fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        dropped.append((offset, length))
        fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    recorder = await open_recorder(tmp_path, Metrics(), fsync_interval=0.01)
    recorder.server_data(b"\x00" * 100_000)
    await until(lambda: recorder.synced_size > 100_000)
    recorder.server_data(b"\x01" * 50_000)
    result = await recorder.close("browser closed")
    covered = 0
    for offset, length in dropped:
        assert offset == covered and length > 0  # each range once, in order, no gaps
        covered += length
    assert len(dropped) >= 3 and covered == result.size  # created, while running, at the end


async def test_journal_writers_run_on_their_own_cpus(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    writers = journal_writers([cpu])
    try:
        assert await asyncio.get_running_loop().run_in_executor(writers, os.sched_getaffinity, 0) == {cpu}
        recorder = await open_recorder(tmp_path, Metrics(), executor=writers)
        recorder.server_data(b"pixels")
        assert (await recorder.close("browser closed")).sealed
    finally:
        writers.shutdown()
    assert [decoded(r)[2] for r in records(recording_path(tmp_path, SESSION_ID)) if r.kind == RecordKind.SERVER_DATA] == [b"pixels"]


async def test_journal_writers_on_cpus_out_of_reach_run_unpinned(caplog: pytest.LogCaptureFixture) -> None:
    writers = journal_writers([4096])
    try:
        cpus = await asyncio.get_running_loop().run_in_executor(writers, os.sched_getaffinity, 0)
    finally:
        writers.shutdown()
    assert cpus == os.sched_getaffinity(0)
    assert "run unpinned" in caplog.text
