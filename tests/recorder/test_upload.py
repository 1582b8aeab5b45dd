"""Journals uploaded in segments while the session runs; a bucket that stops answering ends the session;
another node recovers a recording whose node died, from its segments (jobs claimed from the database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from base.db import Store
from base.metrics import Metrics
from recorder.index import RecordingIndex
from recorder.jobs import JobKind, JobQueue
from recorder.journal import JournalReader, recording_path
from recorder.remote import JobRunner, RemoteRecordings
from recorder.seal import verify_journal
from recorder.storage import S3Storage, download_journal, segments
from recorder.upload import SegmentUploader
from recorder.writer import SessionRecorder
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)
from tests.recorder.test_writer import KEY, SESSION_ID, header
from tests.s3_server import S3Server, own_s3_server, s3_server  # noqa: F401  (fixtures)
from tests.text_keys import TEXT_KEYS


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bucket(s3_server: S3Server, tmp_path: Path) -> AsyncIterator[S3Storage]:  # noqa: F811
    storage = await S3Storage.open(s3_server.location(prefix=tmp_path.name))
    try:
        yield storage
    finally:
        await storage.close()


async def live_recording(spool: Path, storage: S3Storage, metrics: Metrics, **options: object) -> tuple[
        SessionRecorder, SegmentUploader]:
    recorder = await SessionRecorder.open(recording_path(spool, SESSION_ID), header(), key=KEY, fsync_interval=0.05,
                                          metrics=metrics)
    uploader = SegmentUploader(storage, SESSION_ID, recorder.path, lambda: recorder.synced_size, metrics,
                               segment_bytes=1000, segment_seconds=0.2,
                               on_overdue=lambda reason: recorder.abort("upload_failed", RuntimeError(reason)),
                               **options)  # type: ignore[arg-type]
    await uploader.upload_pending()
    uploader.start()
    return recorder, uploader


async def wait_for_segments(storage: S3Storage, count: int) -> list[str]:
    async with asyncio.timeout(10):
        while len(found := await segments(storage, SESSION_ID)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_segments_are_uploaded_while_live_and_the_rest_with_the_seal_at_close(
        tmp_path: Path, bucket: S3Storage) -> None:
    metrics = Metrics()
    recorder, uploader = await live_recording(tmp_path / "spool", bucket, metrics)
    recorder.server_data(b"\x00" * 3000)
    await wait_for_segments(bucket, 2)  # the header, then the data, while the session still runs
    recorder.server_data(b"\x01" * 10)
    sealed = await recorder.close("closed")
    assert await uploader.finish(sealed.size)
    copy = tmp_path / "copy" / f"{SESSION_ID}.dgj"
    assert await download_journal(bucket, SESSION_ID, copy)
    assert copy.read_bytes() == recorder.path.read_bytes()
    verify_journal(copy, KEY)
    assert metrics.recording_upload_bytes_total._value.get() >= sealed.size


async def test_a_bucket_that_stops_answering_ends_the_session_within_the_deadline(
        tmp_path: Path, own_s3_server: S3Server) -> None:  # noqa: F811
    storage = await S3Storage.open(own_s3_server.location(), timeout=1)
    metrics = Metrics()
    try:
        recorder, uploader = await live_recording(tmp_path / "spool", storage, metrics, deadline=2.0)
        own_s3_server.stop()
        stopped = asyncio.get_running_loop().time()
        recorder.server_data(b"\x00" * 3000)
        failure = await asyncio.wait_for(recorder.failure, 10)
        assert asyncio.get_running_loop().time() - stopped < 2.0 + 2.5  # the deadline, plus one request's timeout
        assert failure.reason == "upload_failed"
        assert "could not be uploaded" in str(failure)
        assert metrics.recording_upload_failures_total._value.get() >= 1
        sealed = await recorder.close("recording failed")
        assert sealed.sealed  # the spool keeps a sealed journal
        assert not await uploader.finish(sealed.size)
    finally:
        await storage.close()


async def test_another_node_recovers_a_recording_whose_node_died(tmp_path: Path, bucket: S3Storage,
                                                                 store: Store) -> None:
    clock = Clock()
    node_a, node_b = JobQueue(store, "node-a", clock=clock), JobQueue(store, "node-b", clock=clock)
    metrics = Metrics()
    await node_a.add(JobKind.RECOVER, SESSION_ID, leased=True)
    recorder, uploader = await live_recording(tmp_path / "a", bucket, metrics)
    recorder.server_data(b"\x00" * 3000)
    uploaded = await wait_for_segments(bucket, 2)
    recorder.server_data(b"\x02" * 50)  # after the last segment: lost with the node
    # node A dies: nothing more is uploaded, its lease is not renewed
    assert uploader._task is not None
    uploader._task.cancel()
    in_bucket = b"".join([await bucket.read(key) for key in uploaded])

    index = RecordingIndex(store, TEXT_KEYS)
    remote = RemoteRecordings(bucket, tmp_path / "b", KEY, upload_deadline=5.0)
    runner = JobRunner(node_b, remote, index, None, metrics)
    assert not await runner.run_once()  # node A's lease still holds
    clock.now += 31
    assert await runner.run_once()  # recover: finalized, sealed, uploaded
    assert await runner.run_once()  # index
    assert not await runner.run_once()

    journal = recording_path(tmp_path / "b", SESSION_ID)
    verify_journal(journal, KEY)
    assert journal.read_bytes().startswith(in_bucket)
    reader = JournalReader(journal)
    for _ in reader:
        pass
    assert reader.end is not None and reader.end["reason"] == "gateway crashed"
    row = await index.get(SESSION_ID)
    assert row is not None and row.end_reason == "gateway crashed"
    copy = tmp_path / "copy" / f"{SESSION_ID}.dgj"
    await download_journal(bucket, SESSION_ID, copy)
    verify_journal(copy, KEY)  # the bucket holds the sealed recording too
    await recorder.close("closed")


async def test_jobs_are_claimed_once_with_skip_locked_on_postgresql(postgres_url: str) -> None:  # noqa: F811
    store = await Store.open(postgres_url)
    try:
        queues = [JobQueue(store, f"node-{n}") for n in range(3)]
        for number in range(12):
            await queues[0].add(JobKind.INDEX, f"20261125T0800{number:02d}Z-0123abcd")
        claimed = await asyncio.gather(*(queue.claim() for queue in queues * 6))
        ids = [job.recording_id for job in claimed if job is not None]
        assert len(ids) == len(set(ids)) == 12
        assert await queues[0].waiting() == 0
    finally:
        await store.close()
