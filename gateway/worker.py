"""``deskgate worker``: the recorder workers alone, for a Deployment separate from the gateways.

It claims recorder jobs (indexing, recovering the recordings of nodes that died, rendering
and uploading videos, reading screen text) from the database and, with ``storage.retention``,
deletes expired recordings. Indexing and rendering need object storage (``storage.recordings:
s3://…``) to find the journals other nodes wrote; with a local directory it reads the screen text
of the journals it can reach at the paths the index names, and applies retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config
from gateway.recording_service import load_keyring, recorder_storage, render_pool
from gateway.retention import Retention
from gateway.screen_text import local_journals, screen_text_jobs, screen_text_options
from gateway.web.app import wait_for_stop_signal
from recorder.index import RecordingIndex
from recorder.jobs import JobQueue
from recorder.remote import JobRunner
from recorder.rendering import masked_again
from recorder.seal import load_or_create_key
from recorder.spool import SpoolPruner
from recorder.text_index import TextKeys

log = logging.getLogger(__name__)


async def run_worker(config: Config, metrics: Metrics | None = None) -> None:
    """Do recorder jobs and retention until SIGINT or SIGTERM."""
    metrics = metrics or Metrics()
    storage = config.storage
    key, keyring = load_or_create_key(storage.recording_key_file), load_keyring(config)
    store = await Store.open(storage.database)
    index, audit = RecordingIndex(store, TextKeys.derive(key, keyring)), AuditLog(store)
    pool = render_pool(storage, metrics, keyring)
    tasks: list[asyncio.Task[None]] = []
    try:
        async with recorder_storage(config, key) as remote, contextlib.AsyncExitStack() as stack:
            if remote is not None:
                pruner = SpoolPruner(remote.spool, remote.storage, storage.spool_keep, in_use=lambda _: False)
                tasks.append(asyncio.create_task(pruner.run_forever()))
                runner = JobRunner(JobQueue(store, config.audit.node, lease=storage.job_lease), remote, index, pool,
                                   metrics, ocr=True)
                tasks.append(asyncio.create_task(runner.run()))
            options = await screen_text_options(config, key)
            locate = remote.local_journal if remote is not None else local_journals(index)
            again = masked_again(index, pool, locate, remote.storage if remote is not None else None)
            await stack.enter_async_context(screen_text_jobs(config, index.texts, metrics, options, locate, keyring,
                                                             found_on_screen=again))
            if storage.retention is not None:
                retention = Retention(index, audit, metrics, keep=storage.retention, root=storage.recordings,
                                      remote=remote, node=config.audit.node)
                tasks.append(asyncio.create_task(retention.run_forever()))
            log.info("recorder worker running", extra={"ctx": {"node": config.audit.node, "jobs": remote is not None,
                                                               "retention": storage.retention,
                                                               "ocr": options.ocr}})
            await wait_for_stop_signal()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await pool.close()
        await store.close()
