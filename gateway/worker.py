"""``deskgate worker``: the recorder workers alone, for a Deployment separate from the gateways.

It claims recorder jobs (indexing, recovering the recordings of nodes that died, rendering
and uploading videos) from the database and, with ``storage.retention``, deletes expired
recordings. It needs object storage (``storage.recordings: s3://…``) to find the journals
other nodes wrote; with a local directory it only applies retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config
from gateway.recording_service import RENDER_WORKERS, load_keyring, recorder_storage
from gateway.retention import Retention
from gateway.web.app import wait_for_stop_signal
from recorder.index import RecordingIndex
from recorder.jobs import JobQueue
from recorder.remote import JobRunner
from recorder.seal import load_or_create_key
from recorder.worker import RenderPool

log = logging.getLogger(__name__)


async def run_worker(config: Config, metrics: Metrics | None = None) -> None:
    """Do recorder jobs and retention until SIGINT or SIGTERM."""
    metrics = metrics or Metrics()
    storage = config.storage
    store = await Store.open(storage.database)
    index, audit = RecordingIndex(store), AuditLog(store)
    pool = RenderPool(RENDER_WORKERS, metrics, keyring=load_keyring(config))
    tasks: list[asyncio.Task[None]] = []
    try:
        async with recorder_storage(config, load_or_create_key(storage.recording_key_file)) as remote:
            if remote is not None:
                runner = JobRunner(JobQueue(store, config.audit.node, lease=storage.job_lease), remote, index, pool, metrics)
                tasks.append(asyncio.create_task(runner.run()))
            if storage.retention is not None:
                retention = Retention(index, audit, metrics, keep=storage.retention, root=storage.recordings,
                                      remote=remote, node=config.audit.node)
                tasks.append(asyncio.create_task(retention.run_forever()))
            if not tasks:
                log.warning("nothing for a worker to do: recordings are in a local directory and "
                            "storage.retention is off")
            log.info("recorder worker running", extra={"ctx": {"node": config.audit.node, "jobs": remote is not None,
                                                               "retention": storage.retention}})
            await wait_for_stop_signal()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await pool.close()
        await store.close()
