"""Recordings kept in object storage, over HTTP: bytes served from the bucket with Range, and legal holds.

Helpers for :mod:`gateway.web.recording_routes` (a local copy of a journal, an object with
Range) and the legal hold routes: ``POST`` and ``DELETE
/api/v1/recordings/{id}/hold`` (administrators; JSON ``{"reason"}`` to hold) put a recording
on legal hold and release it, audited; retention never deletes a held recording.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from gateway.recording_service import RecordingService
from gateway.retention import HoldError, hold, release
from gateway.web.keys import AUDIT, RECORDING_INDEX, RECORDINGS, STORE
from gateway.web.security import client_address, current_session, error_json
from recorder.index import RecordingRow
from recorder.journal import is_session_id
from recorder.remote import RemoteRecordings
from recorder.storage import ObjectStorage, StorageError

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
    """The object ``key`` from the bucket, honouring a single ``Range: bytes=a-b``."""
    try:
        size = await storage.size(key)
    except StorageError as exc:
        return error_json(503, f"the recording storage did not answer ({exc}); try again shortly")
    if size is None:
        return error_json(404, f"{filename} is missing from the recording storage")
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
        body = await storage.read(key, start, end)
    except (StorageError, FileNotFoundError) as exc:
        return error_json(503, f"the recording storage did not answer ({exc}); try again shortly")
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
