"""Typed application state for the database-backed services, and the cleanup contexts that open them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web

from base.db import Store
from gateway.audit import AuditLog
from gateway.recording_service import RecordingService, RecordingSettings
from gateway.web.keys import CONFIG, METRICS
from recorder.index import RecordingIndex
from recorder.worker import RenderPool

STORE = web.AppKey("store", Store)
RECORDING_INDEX = web.AppKey("recording_index", RecordingIndex)
AUDIT = web.AppKey("audit", AuditLog)
RECORDINGS = web.AppKey("recordings", RecordingService)

#: Render workers per gateway: half the cores, so proxying keeps the rest.
RENDER_WORKERS = max(1, (os.cpu_count() or 2) // 2)


async def database_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry: open ``storage.database`` at start-up, close it at shutdown."""
    store = await Store.open(app[CONFIG].storage.database)
    app[STORE] = store
    app[RECORDING_INDEX] = RecordingIndex(store)
    app[AUDIT] = AuditLog(store)
    try:
        yield
    finally:
        await store.close()


async def recordings_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry after the database: recover crashed sessions' journals, render in workers."""
    metrics = app[METRICS]
    service = RecordingService(RecordingSettings.from_config(app[CONFIG]), metrics, app[RECORDING_INDEX],
                               app[AUDIT], RenderPool(RENDER_WORKERS, metrics))
    app[RECORDINGS] = service
    await service.recover()
    try:
        yield
    finally:
        await service.close()
