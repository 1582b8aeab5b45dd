"""Fail-closed recording and crash safety with real processes, real limits and real filesystems.

Each scenario runs a child Python process that records a session through
:class:`SessionRecorder` (the code at the bottom of this module) and reports in JSON
lines on stdout. Write failures come from the kernel: RLIMIT_FSIZE (EFBIG) and a
1 MiB tmpfs (ENOSPC); a read-only tmpfs refuses the journal. Mounts happen inside
``unshare --mount`` (with ``--user --map-root-user`` when not root), so they vanish
with the child. Crashes are ``kill -9``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from base.metrics import Metrics
from gateway.rfb.messages import RGBX8888
from recorder.journal import JournalReader, RecordKind, new_session_id, recording_path
from recorder.recovery import finalize_orphans
from recorder.seal import load_or_create_key, seal_path, verify_journal
from recorder.writer import SessionRecorder, session_header

pytestmark = [pytest.mark.functional, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
KEY_EVENT = b"\x04\x01\x00\x00\x00\x00\x00\x61"
INTERVAL = 0.2  # the children's fsync interval (seconds)


def chunk(index: int) -> bytes:
    """The index-th SERVER_DATA payload: 4 KiB that say which one it is."""
    return index.to_bytes(4, "big") * 1024


@asynccontextmanager
async def child(tmp_path: Path, *args: str, mount: str | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child running :func:`child_main`; ``mount`` (tmpfs options) mounts a tmpfs on ``args[1]`` first."""
    command = [sys.executable, "-c", "import sys; from tests.functional.test_recording_failures_functional "
               "import child_main; child_main(sys.argv[1:])", *args]
    if mount is not None:
        namespace = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            namespace += ["--user", "--map-root-user"]
        command = [*namespace, "sh", "-c", f'mount -t tmpfs -o {mount} tmpfs "$0" && exec "$@"', args[1], *command]
    with open(tmp_path / f"child-{args[0]}-{time.monotonic_ns()}.stderr", "wb") as stderr:
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                       stderr=stderr)
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def next_report(process: asyncio.subprocess.Process, limit: float = 20.0) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), limit)
    assert line, f"the child ended without reporting (exit {await process.wait()})"
    report: dict[str, Any] = json.loads(line)
    return report


def check_failed_recording(report: dict[str, Any], path: Path, key: bytes, reason: str) -> None:
    """The session ended in time, with the reason, and the journal is kept and readable."""
    assert report["reason"] == reason
    assert report["message"].endswith("the session was ended because it can no longer be recorded")
    assert report["failures_metric"] == 1
    # Within one flush interval, plus slack for a loaded machine (the child's thread may wait for a core):
    # a writer that noticed only at a later interval, or never, is still caught.
    assert report["failed_after_limit"] <= INTERVAL + 1.0, report
    assert report["appends_after_failure_ignored"] and report["closed_twice_same"]
    reader = JournalReader(path)
    records = list(reader)
    data = [r.payload for r in records if r.kind == RecordKind.SERVER_DATA]
    assert data == [chunk(i) for i in range(len(data))]  # an unbroken prefix of what was sent
    assert len(data) > 100
    good_end = reader.valid_size()
    assert good_end >= report["synced_size"]  # everything fsynced is still there
    if reader.end is not None:  # cutting the partial record left room for END
        assert reader.end["reason"] == report["message"] and reader.end["crashed"] is False
        assert reader.end["torn_at"] == records[-1].position  # where the lost data began
    if report["sealed"]:
        verify_journal(path, key)
    else:  # no room for END or the seal: kept as it is; the next start's recovery seals it
        assert not seal_path(path).exists()
        assert finalize_orphans(path.parent, key) == [path]
        verify_journal(path, key)


async def test_a_write_over_the_file_size_limit_ends_the_session_in_time(tmp_path: Path) -> None:
    key_file = tmp_path / "recording.key"
    key = load_or_create_key(key_file)
    root = tmp_path / "recordings"
    async with child(tmp_path, "fill", str(root), str(key_file), str(2 << 20)) as process:
        report = await next_report(process)
    check_failed_recording(report, Path(report["path"]), key, "file_too_large")
    assert report["sealed"]  # cutting the partial record leaves room under the limit for END and the seal


async def test_a_full_filesystem_ends_the_session_in_time(tmp_path: Path) -> None:
    key_file = tmp_path / "recording.key"
    key = load_or_create_key(key_file)
    mounted, saved = tmp_path / "small", tmp_path / "saved"
    mounted.mkdir()
    async with child(tmp_path, "fill", str(mounted), str(key_file), "0", str(saved), mount="size=1m") as process:
        report = await next_report(process)
    assert report["filesystem"] == "tmpfs" and report["capacity"] <= 1 << 20
    check_failed_recording(report, saved / Path(report["path"]).name, key, "disk_full")
    assert list(mounted.iterdir()) == []  # the tmpfs was the child's own


async def test_a_read_only_recordings_directory_refuses_the_session(tmp_path: Path) -> None:
    key_file = tmp_path / "recording.key"
    load_or_create_key(key_file)
    mounted = tmp_path / "read-only"
    mounted.mkdir()
    async with child(tmp_path, "refused", str(mounted), str(key_file), mount="ro") as process:
        report = await next_report(process)
    assert report == {
        "error": "RecordingUnavailable",
        "message": "recording storage is not writable (Read-only file system); the session cannot start unrecorded",
        "create_failed_metric": 1,
        "files": [],
    }


async def test_kill_9_mid_session_leaves_a_journal_that_recovery_finalizes(tmp_path: Path) -> None:
    key_file = tmp_path / "recording.key"
    key = load_or_create_key(key_file)
    root = tmp_path / "recordings"
    async with child(tmp_path, "record", str(root), str(key_file)) as crashed, \
               child(tmp_path, "record", str(root), str(key_file)) as live:
        live_report = await next_report(live)
        syncs = [await next_report(crashed) for _ in range(4)]
        crashed.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(crashed.wait(), 10) == -signal.SIGKILL
        crashed_path, live_path = Path(syncs[0]["path"]), Path(live_report["path"])
        live_before = live_path.read_bytes()

        assert finalize_orphans(root, key) == [crashed_path]  # the live session's journal is not touched
        assert live_path.read_bytes()[: len(live_before)] == live_before and not seal_path(live_path).exists()

        reader = JournalReader(crashed_path)
        records = list(reader)
        assert reader.torn_at is None and reader.end is not None
        assert reader.end["reason"] == "gateway crashed" and reader.end["crashed"] is True
        assert reader.end["ended_epoch"] == reader.header["started_epoch"] + reader.last_offset_us / 1e6
        assert records[-1].kind == RecordKind.END and records[-1].offset_us == records[-2].offset_us
        data = [r.payload for r in records if r.kind == RecordKind.SERVER_DATA]
        assert data == [chunk(i) for i in range(len(data))]
        assert records[-1].position >= syncs[-1]["synced_size"] > syncs[0]["synced_size"]  # the fsynced part survived
        verify_journal(crashed_path, key)

        live.send_signal(signal.SIGKILL)
        await asyncio.wait_for(live.wait(), 10)
    assert finalize_orphans(root, key) == [live_path]  # once its writer is gone, it is an orphan too
    verify_journal(live_path, key)


# -- the children ---------------------------------------------------------------------------------


def child_main(argv: list[str]) -> None:
    """Entry point of the child processes: ``MODE ROOT KEY_FILE [ARGS...]``."""
    mode, root, key = argv[0], Path(argv[1]), Path(argv[2]).read_bytes()
    scenario = {"fill": _fill, "refused": _refused, "record": _record}[mode]
    asyncio.run(scenario(root, key, argv[3:]))


def _report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _open(root: Path, key: bytes, metrics: Metrics) -> SessionRecorder:
    started = time.time()
    session_id = new_session_id()
    header = session_header(
        session_id=session_id, user="alice", source="127.0.0.1", target="desk-01", started_epoch=started,
        width=1024, height=768, pixel_format=RGBX8888, desktop_name=b"desk", policy="operators",
        record_input="full", clipboard="off", groups=frozenset({"operators"}),
    )
    return await SessionRecorder.open(recording_path(root, session_id), header, key=key, fsync_interval=INTERVAL,
                                      metrics=metrics)


async def _fill(root: Path, key: bytes, args: list[str]) -> None:
    """Record until the disk or the file size limit stops the journal; report how it went."""
    size_limit = int(args[0])
    if size_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_limit, size_limit))
    metrics = Metrics()
    recorder = await _open(root, key, metrics)
    capacity = size_limit or shutil.disk_usage(root).free + recorder.path.stat().st_size
    failed_at: list[float] = []
    recorder.failure.add_done_callback(lambda _: failed_at.append(time.monotonic()))
    over_limit_at: float | None = None
    index = 0
    async with asyncio.timeout(20):
        while not recorder.failure.done():
            recorder.server_data(chunk(index))
            recorder.client_data(KEY_EVENT)
            index += 1
            if over_limit_at is None and recorder.path.stat().st_size + recorder.buffered_bytes > capacity:
                over_limit_at = time.monotonic()
            await recorder.backpressure()
            await asyncio.sleep(0.002)
    error = recorder.failure.result()
    synced_size = recorder.synced_size
    recorder.server_data(chunk(index))
    ignored = recorder.buffered_bytes == 0
    result = await recorder.close(str(error))
    again = await recorder.close("closed twice")
    if len(args) > 1:  # the journal is on a tmpfs that dies with this process: keep a copy
        saved = Path(args[1])
        saved.mkdir()
        for path in (result.path, seal_path(result.path)):
            if path.exists():
                shutil.copy(path, saved / path.name)
    _report(
        path=str(result.path), reason=error.reason, message=str(error), sealed=result.sealed,
        synced_size=synced_size, capacity=capacity, filesystem=_filesystem(root),
        failed_after_limit=failed_at[0] - (over_limit_at or failed_at[0]),
        failures_metric=metrics.registry.get_sample_value("deskgate_recording_failures_total",
                                                          {"reason": error.reason}),
        appends_after_failure_ignored=ignored, closed_twice_same=again == result,
    )


async def _refused(root: Path, key: bytes, args: list[str]) -> None:
    metrics = Metrics()
    try:
        await _open(root, key, metrics)
    except Exception as exc:
        _report(error=type(exc).__name__, message=str(exc), files=[str(p) for p in root.rglob("*")],
                create_failed_metric=metrics.registry.get_sample_value("deskgate_recording_failures_total",
                                                                       {"reason": "create_failed"}))
    else:
        _report(error=None)


async def _record(root: Path, key: bytes, args: list[str]) -> None:
    """A session that runs until killed, reporting each fsync (what is durable by then)."""
    recorder = await _open(root, key, Metrics())
    synced, index = recorder.synced_size, 0
    while True:
        recorder.server_data(chunk(index))
        recorder.client_data(KEY_EVENT)
        index += 1
        await asyncio.sleep(0.005)
        if recorder.synced_size != synced:
            synced = recorder.synced_size
            _report(path=str(recorder.path), synced_size=synced)


def _filesystem(path: Path) -> str:
    with open("/proc/self/mounts") as mounts:
        best = max((line.split() for line in mounts), key=lambda f: len(f[1]) if str(path).startswith(f[1]) else -1)
    return best[2]
