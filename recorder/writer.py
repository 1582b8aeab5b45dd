"""Writing one live session's journal, fail-closed, without slowing the proxy.

The pumps append records to an in-memory buffer on the event loop (one ``bytearray``
extend per message, no objects kept, no checksum: that is the loop's whole cost). A flush
task hands the buffer to a worker thread that seals it in batches of about
:data:`~recorder.batches.BATCH_BYTES` (AES-256-GCM under the recording's data key, or CRC-32
with encryption off — both release the GIL), writes them and, every ``fsync_interval``,
fsyncs; a buffer over
``early_write`` bytes is written sooner, and over ``high_water`` bytes the pumps'
``await recorder.backpressure()`` waits for the disk. When a write or fsync fails the
``failure`` future completes (the session must end) and later appends are dropped; the
journal is kept, readable up to the last good write. ``close`` writes END and seals.

This is the asyncio side of :mod:`recorder.journal` (the container, driven from a worker
thread) and :mod:`recorder.records` (what its JSON records say).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import platform
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

from base import __version__
from base.metrics import Metrics
from gateway.rfb.input_presses import InputKind
from gateway.rfb.messages import PixelFormat
from recorder.batches import BATCH_BYTES, BatchCodec
from recorder.errors import (
    FailureReason,
    RecordingError,
    RecordingUnavailable,
    RecordingWriteFailed,
)
from recorder.journal import (
    JOURNAL_SUFFIX,
    MAX_RECORD,
    RECORD_HEADER,
    Bytes,
    JournalFile,
    RecordKind,
    append_batched_record,
    encode_batched_record,
    encode_json,
)
from recorder.keyring import RecordingKeyring, installed
from recorder.records import (
    InputCounts,
    RecordInput,
    SessionEnd,
    SessionEvent,
    SessionHeader,
)
from recorder.seal import seal_journal

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_SERVER_DATA, _CLIENT_DATA = int(RecordKind.SERVER_DATA), int(RecordKind.CLIENT_DATA)
_pack_record_header = RECORD_HEADER.pack

#: A buffer this large is written before the fsync interval is up.
EARLY_WRITE = 4 << 20
#: Over this many buffered bytes, ``backpressure()`` waits for the disk.
HIGH_WATER = 32 << 20

_FAILURE_MESSAGES: dict[FailureReason, str] = {
    "disk_full": "the recording storage is full",
    "file_too_large": "the recording reached the largest file the gateway may write",
    "permission": "the recording storage refused the write",
    "io_error": "the recording storage failed",
    "upload_failed": "the recording could not be uploaded to object storage in time",
}


def failure_reason(error: OSError) -> FailureReason:
    """The ``recording_failures_total`` reason of a failed write or fsync."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    if error.errno == errno.EFBIG:
        return "file_too_large"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission"
    return "io_error"


def session_header(
    *,
    session_id: str,
    user: str,
    source: str,
    target: str,
    started_epoch: float,
    width: int,
    height: int,
    pixel_format: PixelFormat | None,
    desktop_name: bytes,
    policy: str,
    record_input: RecordInput,
    clipboard: str,
    groups: frozenset[str],
    protocol: str = "vnc",
    display_name: str | None = None,
) -> SessionHeader:
    """The HEADER of a session's journal written by this gateway, on this node (``groups``: the user's).

    A terminal session (``protocol="ssh"``) gives its columns and rows as ``width`` and ``height``
    and no ``pixel_format``.
    """
    return SessionHeader(
        session_id=session_id, user=user, source=source, target=target, protocol=protocol,
        started=datetime.fromtimestamp(started_epoch, UTC), started_epoch=started_epoch, width=width,
        height=height, pixel_format=pixel_format, desktop_name=desktop_name.decode("utf-8", "replace"),
        gateway_version=__version__, node=platform.node(), policy=policy, record_input=record_input,
        clipboard=clipboard, groups=tuple(sorted(groups)), display_name=display_name,
    )


def journal_writers(cpus: Collection[int]) -> ThreadPoolExecutor:
    """Threads of their own for writing journals, each pinned to ``cpus`` (``storage.writer_cpus``).

    Sealing, writing and fsyncing cost about as much CPU as proxying the bytes: on CPUs away
    from the event loop's they no longer slow the sessions down. The pool is as large as
    asyncio's default one. A CPU this process may not use (a container's cpuset) leaves the
    threads unpinned, with a warning: the setting is about speed, not about what is recorded.
    """
    return ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="journal-writer",
                              initializer=_pin_writer, initargs=(frozenset(cpus),))


def _pin_writer(cpus: frozenset[int]) -> None:
    try:
        os.sched_setaffinity(0, cpus)  # 0: this thread only
    except OSError as exc:
        log.warning("the journal writers cannot run on the CPUs of storage.writer_cpus; they run unpinned",
                    extra={"ctx": {"cpus": sorted(cpus), "error": exc}})


@dataclass(frozen=True, slots=True)
class SealedRecording:
    """How a recording ended: ``sealed`` is False when END or the seal could not be written."""

    path: Path
    session_id: str
    size: int
    end_reason: str
    sealed: bool
    failure: RecordingWriteFailed | None


class SessionRecorder:
    """The journal of one live session; create it with :meth:`open`, end it with :meth:`close`."""

    def __init__(
        self,
        journal: JournalFile,
        header: SessionHeader,
        codec: BatchCodec,
        *,
        keyring: RecordingKeyring,
        key: bytes,
        fsync_interval: float,
        metrics: Metrics,
        clock: Callable[[], float],
        started_at: float,
        early_write: int,
        high_water: int,
        max_record: int,
        executor: Executor | None,
    ) -> None:
        self._journal = journal
        self._executor = executor
        self.path = journal.path
        self.session_id = header.session_id
        self._started_epoch = header.started_epoch
        self._key = key
        self._interval = fsync_interval
        self._metrics = metrics
        self._clock = clock
        self._started_at = started_at
        self._early_write = early_write
        self._high_water = high_water
        self._max_record = max_record
        self._last_offset_us = 0
        self._buffer = bytearray()
        self._cuts: list[int] = []  # where batches end in the buffer, before its end
        self._batch_start = 0
        self._codec = codec
        self._keyring = keyring
        self._next_batch = 1  # batch 0 is the HEADER
        self._in_flight = 0
        self._good_size = journal.size  # end of the last write that fully succeeded
        self.synced_size = journal.size  # end of the last successful fsync
        self._counts = _no_input()
        self._closing = False
        self._error: RecordingWriteFailed | None = None
        self._close_task: asyncio.Task[SealedRecording] | None = None
        loop = asyncio.get_running_loop()
        self.failure: asyncio.Future[RecordingWriteFailed] = loop.create_future()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._flusher = loop.create_task(self._flush_loop())

    @classmethod
    async def open(
        cls,
        path: Path,
        header: SessionHeader,
        *,
        key: bytes,
        fsync_interval: float,
        metrics: Metrics,
        keyring: RecordingKeyring | None = None,
        clock: Callable[[], float] = time.monotonic,
        early_write: int = EARLY_WRITE,
        high_water: int = HIGH_WATER,
        max_record: int = MAX_RECORD,
        executor: Executor | None = None,
    ) -> SessionRecorder:
        """Create the session's journal and start flushing; RecordingUnavailable if it cannot be created.

        ``keyring`` (default: the one :func:`~recorder.keyring.installed`) gives the key that
        wraps the journal's data key; without a current key the journal is not encrypted.
        ``executor`` runs the file work (default: asyncio's; see :func:`journal_writers`).
        """
        if path.name != f"{header.session_id}{JOURNAL_SUFFIX}":
            raise ValueError(f"the journal {path.name} does not match the header's session_id {header.session_id!r}")
        started_at = clock()
        keyring = keyring or installed()
        codec = BatchCodec.new(header.session_id, keyring)
        creating = asyncio.get_running_loop().run_in_executor(executor, JournalFile.create, path, header.to_json(), codec)
        try:
            journal = await asyncio.shield(creating)
        except OSError as exc:
            metrics.recording_failures_total.labels(reason="create_failed").inc()
            log.error("cannot create a recording", extra={"ctx": {"path": str(path), "error": exc}})
            raise RecordingUnavailable(
                f"recording storage is not writable ({exc.strerror or exc}); the session cannot start unrecorded"
            ) from exc
        except asyncio.CancelledError:
            creating.add_done_callback(_close_abandoned)
            raise
        metrics.recording_bytes_total.inc(journal.size)
        recorder = cls(
            journal, header, codec, keyring=keyring, key=key, fsync_interval=fsync_interval, metrics=metrics, clock=clock,
            started_at=started_at, early_write=early_write, high_water=high_water, max_record=max_record,
            executor=executor,
        )
        recorder._append_event(SessionEvent.session_start())
        return recorder

    # -- appends: on the event loop, O(size of data) -------------------------------------------

    def server_data(self, data: Bytes) -> None:
        """Target→browser bytes exactly as forwarded."""
        if data and self._error is None and not self._closing:
            self._append(_SERVER_DATA, data)

    def client_data(self, data: Bytes) -> None:
        """Browser→target bytes exactly as forwarded (after the policy filter)."""
        if data and self._error is None and not self._closing:
            self._append(_CLIENT_DATA, data)

    def input_counted(self, kind: InputKind, count: int = 1) -> None:
        """Count input left out of CLIENT_DATA (``record_input: counts``); written before the next flush."""
        self._counts[kind] += count

    def event(self, type: str, **fields: Any) -> None:
        """An EVENT record: ``SessionEvent(type, fields)``."""
        self._append_event(SessionEvent(type, fields))

    @property
    def recording_id(self) -> str:
        return self.session_id

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in memory: buffered plus being written."""
        return len(self._buffer) + self._in_flight

    async def backpressure(self) -> None:
        """Wait while more than ``high_water`` bytes are held in memory (returns at once after a failure)."""
        while len(self._buffer) + self._in_flight > self._high_water and self._accepting:
            self._wake.set()
            self._drained.clear()
            await self._drained.wait()

    def _append_event(self, event: SessionEvent, offset: int | None = None) -> None:
        if self._accepting:
            self._append(RecordKind.EVENT, encode_json(event.to_json()), offset)

    def _offset_us(self) -> int:
        offset = round((self._clock() - self._started_at) * 1_000_000)
        if offset > self._last_offset_us:  # never decreasing, whatever the clock does
            self._last_offset_us = offset
        return self._last_offset_us

    def _append(self, kind: int, data: Bytes, offset: int | None = None) -> None:
        """The hot path, once per forwarded message: one header, one copy, two comparisons."""
        if offset is None:
            offset = round((self._clock() - self._started_at) * 1_000_000)
            if offset > self._last_offset_us:  # never decreasing, whatever the clock does
                self._last_offset_us = offset
            else:
                offset = self._last_offset_us
        buffer = self._buffer
        if len(data) <= self._max_record:
            buffer += _pack_record_header(len(data), kind, offset)
            buffer += data
        else:  # the data kinds are byte streams: cutting them into records loses nothing
            with memoryview(data) as view:
                for start in range(0, len(view), self._max_record):
                    append_batched_record(buffer, kind, offset, view[start : start + self._max_record])
                    self._cut_batch()  # a batch stays within one record of BATCH_BYTES, as readers expect
        if len(buffer) - self._batch_start >= BATCH_BYTES:  # _cut_batch() inlined: this is the hot path
            self._cuts.append(len(buffer))
            self._batch_start = len(buffer)
        if len(buffer) >= self._early_write:
            self._wake.set()

    def _cut_batch(self) -> None:
        """End the batch here once it holds :data:`~recorder.batches.BATCH_BYTES`."""
        if len(self._buffer) - self._batch_start >= BATCH_BYTES:
            self._cuts.append(len(self._buffer))
            self._batch_start = len(self._buffer)

    @property
    def _accepting(self) -> bool:
        """Records are still taken: not closing, and no write has failed."""
        return self._error is None and not self._closing

    def _append_input_counts(self) -> None:
        if self._accepting and any(self._counts.values()):
            self._append(RecordKind.INPUT_COUNTS, encode_json(InputCounts(**self._counts).to_json()))
            self._counts = _no_input()

    # -- flushing: a worker thread writes, the loop only swaps buffers ------------------------

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_sync = loop.time() + self._interval
        unsynced = False
        try:
            while True:
                if not self._wake.is_set():
                    try:
                        async with asyncio.timeout_at(next_sync):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                self._wake.clear()
                final = self._closing
                sync = final or loop.time() >= next_sync
                self._append_input_counts()
                data, cuts, self._buffer, self._cuts, self._batch_start = self._buffer, self._cuts, bytearray(), [], 0
                self._in_flight = len(data)
                if data or (sync and unsynced):
                    before = self._journal.size
                    error = await self._in_writer(self._write, data, cuts, sync)
                    if error is not None:
                        self._fail(failure_reason(error), error)
                        return
                    self._metrics.recording_bytes_total.inc(self._journal.size - before)
                    unsynced = not sync
                    if sync:
                        self.synced_size = self._journal.size
                self._in_flight = 0
                if sync:
                    next_sync = loop.time() + self._interval
                self._drained.set()
                if final:
                    return
        except Exception as exc:  # a bug here must still end the session, not leave it unrecorded
            log.exception("the recording flusher failed", extra={"ctx": {"session": self.session_id}})
            self._fail("io_error", exc)

    async def _in_writer(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work`` in a journal writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def _write(self, data: bytearray, cuts: list[int], sync: bool) -> OSError | None:
        """In the writer thread: seal ``data`` in batches ending at ``cuts`` and its end, write, maybe fsync."""
        try:
            with memoryview(data) as view:
                start = 0
                for end in (*cuts, len(data)):
                    if end > start:
                        self._journal.write_batch(self._codec, self._next_batch, view[start:end])
                        self._next_batch += 1
                        self._good_size = self._journal.size
                    start = end
            if sync:
                self._journal.fsync()
        except OSError as exc:
            return exc
        return None

    def abort(self, reason: FailureReason, cause: BaseException) -> None:
        """End the recording from outside (its upload is overdue): ``failure`` completes, the session ends."""
        if self._accepting:
            self._fail(reason, cause)

    def _fail(self, reason: FailureReason, cause: BaseException) -> None:
        detail = f" ({cause.strerror})" if isinstance(cause, OSError) and cause.strerror else ""
        error = RecordingWriteFailed(
            reason, f"{_FAILURE_MESSAGES[reason]}{detail}; the session was ended because it can no longer be recorded"
        )
        error.__cause__ = cause
        self._error = error
        self._buffer, self._cuts, self._batch_start = bytearray(), [], 0  # the session is ending: free the memory now
        self._in_flight = 0
        self._metrics.recording_failures_total.labels(reason=reason).inc()
        log.error("recording write failed", extra={"ctx": {"session": self.session_id, "reason": reason,
                                                          "error": cause}})
        if not self.failure.done():
            self.failure.set_result(error)
        self._drained.set()

    # -- closing ------------------------------------------------------------------------------

    async def close(self, reason: str) -> SealedRecording:
        """Write END with ``reason``, fsync and seal; idempotent, never raises for I/O (see ``sealed``)."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close(reason))
        return await asyncio.shield(self._close_task)

    async def _close(self, reason: str) -> SealedRecording:
        self._append_input_counts()
        offset = self._offset_us()
        if self._accepting:
            self._append_event(SessionEvent.session_end(reason), offset)
            self._append(RecordKind.END, encode_json(self._end(reason, offset, torn_at=None).to_json()), offset)
        self._closing = True
        self._wake.set()
        self._drained.set()
        await self._flusher
        if self._error is None:
            sealed = await self._in_writer(self._seal)
        else:
            sealed = await self._in_writer(self._finish_failed, reason, offset)
        return SealedRecording(self.path, self.session_id, self._journal.size, reason, sealed, self._error)

    def _end(self, reason: str, offset_us: int, torn_at: int | None) -> SessionEnd:
        return SessionEnd(self._started_epoch + offset_us / 1e6, reason, torn_at=torn_at)

    def _seal(self) -> bool:
        try:
            seal_journal(self.path, self._key, self._keyring, written=self._journal.content_digest())
            return True
        except (OSError, RecordingError) as exc:
            log.error("cannot seal a recording", extra={"ctx": {"session": self.session_id, "error": exc}})
            return False
        finally:
            self._journal.close()

    def _finish_failed(self, reason: str, offset: int) -> bool:
        """After a failed write: cut the partial tail, then try END and the seal (the disk may have room again)."""
        try:
            keep = self._good_size  # the end of the last batch written whole
            self._journal.truncate(keep)
            end = encode_batched_record(RecordKind.END, offset,
                                        encode_json(self._end(reason, offset, torn_at=keep).to_json()))
            self._journal.write_batch(self._codec, self._next_batch, end)
            self._journal.fsync()
            self._metrics.recording_bytes_total.inc(self._journal.size - keep)
        except (OSError, RecordingError) as exc:
            log.error("cannot finish a failed recording; it is kept as it is",
                      extra={"ctx": {"session": self.session_id, "error": exc}})
            self._journal.close()
            return False
        return self._seal()


def _no_input() -> dict[InputKind, int]:
    """Input counts since the last INPUT_COUNTS record: none yet."""
    return dict.fromkeys(get_args(InputKind), 0)


def _close_abandoned(creating: asyncio.Future[JournalFile]) -> None:
    """The session went away while its journal was being created: release it (recovery finishes it)."""
    if not creating.cancelled() and creating.exception() is None:
        creating.result().close()
