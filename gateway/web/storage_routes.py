"""Recordings kept in object storage, over HTTP: bytes served from the bucket with Range, and legal holds.

Helpers for :mod:`gateway.web.recording_routes` (a local copy of a journal, an object or a
local export with Range — exports encrypted at rest are decrypted chunk by chunk, see
:mod:`recorder.encrypted_files`) and the legal hold routes: ``POST`` and ``DELETE
/api/v1/recordings/{id}/hold`` (administrators; JSON ``{"reason"}`` to hold) put a recording
on legal hold and release it, audited; retention never deletes a held recording.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from gateway.recording_service import RecordingService
from gateway.retention import HoldError, hold, release
from gateway.web.keys import AUDIT, METRICS, RECORDING_INDEX, RECORDINGS, STORE
from gateway.web.security import client_address, current_session, error_json
from recorder.encrypted_files import HEADER_PREFIX, EncryptedExport, is_encrypted, read_export
from recorder.errors import RecordingKeyError
from recorder.index import RecordingRow
from recorder.journal import is_session_id
from recorder.keyring import installed
from recorder.remote import RemoteRecordings
from recorder.storage import ObjectStorage, StorageError

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)


def remote_recordings(request: web.Request) -> RemoteRecordings | None:
    """The bucket this gateway keeps recordings in; None when they are in a local directory."""
    service = request.app.get(RECORDINGS)
    return service.remote if isinstance(service, RecordingService) else None


async def journal_file(request: web.Request, row: RecordingRow, inside: Path) -> Path | None:
    """A readable local copy of the row's journal (downloaded from the bucket if need be); None: missing."""
    remote = remote_recordings(request)
    if remote is not None:
        try:
            return await remote.local_journal(row.id)
        except StorageError:
            return None
    path = Path(row.path)
    resolved = await asyncio.to_thread(path.resolve)
    return path if resolved.is_relative_to(inside.resolve()) and await asyncio.to_thread(path.is_file) else None


async def object_response(request: web.Request, storage: ObjectStorage, key: str, content_type: str,
                          filename: str, disposition: str = "inline") -> web.StreamResponse:
    """The object ``key`` from the bucket, honouring a single ``Range: bytes=a-b``; decrypted if encrypted."""
    try:
        size = await storage.size(key)
        prefix = await storage.read(key, 0, HEADER_PREFIX) if size else b""
    except (StorageError, FileNotFoundError) as exc:
        return error_json(503, f"the recording storage did not answer ({exc}); try again shortly")
    if size is None:
        return error_json(404, f"{filename} is missing from the recording storage")
    read: Callable[[int, int], Awaitable[bytes]] = lambda start, end: storage.read(key, start, end)
    if is_encrypted(prefix):
        try:
            export = await asyncio.to_thread(EncryptedExport.parse, prefix, installed(), filename)
        except RecordingKeyError as exc:
            return undecryptable(request, filename, exc)
        size, read = export.size, _decrypting(export, storage, key, filename)
    return await _ranged_response(request, size, read, content_type, filename, disposition)


def _decrypting(export: EncryptedExport, storage: ObjectStorage, key: str,
                filename: str) -> Callable[[int, int], Awaitable[bytes]]:
    async def read(start: int, end: int) -> bytes:
        first, last = export.stored_range(start, end)
        stored = await storage.read(key, first, last)
        return await asyncio.to_thread(export.decrypt_range, stored, start, end, filename)
    return read


async def file_response(request: web.Request, path: Path, content_type: str, filename: str,
                        disposition: str = "inline") -> web.StreamResponse:
    """A local export file with HTTP Range: as it is when plain, decrypted when encrypted at rest."""
    prefix = await asyncio.to_thread(_prefix, path)
    if not is_encrypted(prefix):
        return web.FileResponse(path, headers={"Content-Type": content_type,
                                               "Content-Disposition": f'{disposition}; filename="{filename}"'})
    keyring = installed()
    try:
        export = await asyncio.to_thread(EncryptedExport.parse, prefix, keyring, filename)
    except RecordingKeyError as exc:
        return undecryptable(request, filename, exc)

    async def read(start: int, end: int) -> bytes:
        return await asyncio.to_thread(read_export, path, keyring, start, end)
    return await _ranged_response(request, export.size, read, content_type, filename, disposition)


def undecryptable(request: web.Request, name: str, exc: RecordingKeyError, what: str = "export") -> web.Response:
    """500 saying which recording key is missing (counted and logged): ``name`` cannot be decrypted."""
    request.app[METRICS].recording_key_errors_total.labels(what=what).inc()
    log.error("a recording cannot be decrypted", extra={"ctx": {"name": name, "what": what, "error": str(exc)}})
    return error_json(500, f"{name} cannot be decrypted: {exc}")


def _prefix(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(HEADER_PREFIX)


async def _ranged_response(request: web.Request, size: int, read: Callable[[int, int], Awaitable[bytes]],
                           content_type: str, filename: str, disposition: str) -> web.StreamResponse:
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes",
               "Content-Disposition": f'{disposition}; filename="{filename}"'}
    start, end, status = 0, size, 200
    match = _RANGE.fullmatch(request.headers.get("Range", "").strip())
    if match and (match.group(1) or match.group(2)):
        if match.group(1):
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
        else:
            start = max(0, size - int(match.group(2)))
        if start >= size or end <= start:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    try:
        body = await read(start, end) if end > start else b""
    except (StorageError, FileNotFoundError) as exc:
        return error_json(503, f"the recording storage did not answer ({exc}); try again shortly")
    except RecordingKeyError as exc:
        return undecryptable(request, filename, exc)
    return web.Response(body=body, status=status, headers=headers)


async def _admin(request: web.Request) -> tuple[str, str] | web.Response:
    session = current_session(request)
    if session is None:
        return error_json(401, "log in first")
    if not session.identity.admin:
        return error_json(403, "only administrators may put recordings on hold or release them")
    if not is_session_id(request.match_info["id"]):
        return error_json(404, "there is no such recording")
    return session.identity.username, str(client_address(request))


@routes.post("/api/v1/recordings/{id}/hold")
async def hold_recording(request: web.Request) -> web.Response:
    """Put a recording on legal hold: JSON ``{"reason"}``; retention never deletes it while held."""
    admin = await _admin(request)
    if isinstance(admin, web.Response):
        return admin
    try:
        body = await request.json()
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        return error_json(400, 'send JSON {"reason": "..."}: why the recording must be kept')
    recording_id = request.match_info["id"]
    try:
        await hold(request.app[STORE], request.app[AUDIT], recording_id, by=admin[0], reason=reason, source=admin[1])
    except HoldError as exc:
        return error_json(404 if await request.app[RECORDING_INDEX].get(recording_id) is None else 409, str(exc))
    return web.json_response({"recording": recording_id, "held": True, "reason": reason})


@routes.delete("/api/v1/recordings/{id}/hold")
async def release_recording(request: web.Request) -> web.Response:
    """Release a recording's legal hold; retention applies to it again."""
    admin = await _admin(request)
    if isinstance(admin, web.Response):
        return admin
    recording_id = request.match_info["id"]
    try:
        await release(request.app[STORE], request.app[AUDIT], recording_id, by=admin[0], source=admin[1])
    except HoldError as exc:
        return error_json(409, str(exc))
    return web.json_response({"recording": recording_id, "held": False})
