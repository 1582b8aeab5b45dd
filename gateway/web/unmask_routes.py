"""Seeing a recording unmasked: the reason asked for, the grant it earns, and the unmasked video.

``POST /api/v1/recordings/{id}/unmask`` with JSON ``{"reason": "..."}`` (1–300 characters):
for users a policy allows to ``unmask`` (:mod:`gateway.unmask`), audited as ``recording.unmask``
with the reason and added to the recording's events (``unmasked``: by, reason); answers the
grant and the URLs that take it (``video`` only for a recording made with masks). Anyone else:
403, audited, ``deskgate_unmask_requests_total``.

``GET /api/v1/recordings/{id}/video/unmasked?grant=...``: the video rendered without masks, on
demand in the render workers the first time (kept beside the journal as ``<id>.unmasked.mp4``
for the next requests), with HTTP Range. Without a valid grant, or without ``unmask``: 403.

``GET /api/v1/recordings/{id}/typed[?grant=...]``: the typed text of a ``record_input: full``
recording with a valid grant; without one, only how many keys were pressed (``withheld``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from gateway.recording_service import RecordingService
from gateway.unmask import GRANT_SECONDS, MAX_REASON, grant_valid, issue_grant, may_unmask
from gateway.web.keys import CLOCK, METRICS, RECORDING_INDEX, RECORDINGS, SETTINGS
from gateway.web.messages import say
from gateway.web.recording_routes import _audit, _authorized_recording, _Caller, _json_object, _recordings_root
from gateway.web.security import client_address, current_session, error_json
from gateway.web.storage_routes import file_response, journal_file, undecryptable
from recorder.errors import RecordingError, RecordingKeyError
from recorder.index import RecordingRow
from recorder.masking import recorded_masks, unmasked_video_path
from recorder.records import TERMINAL_PROTOCOL, SessionEvent

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: The unmasked renders under way, by output file: concurrent Range requests wait for the same one.
_RENDERING: dict[Path, asyncio.Task[None]] = {}


async def _refuse_unmask(request: web.Request, caller: _Caller, found: RecordingRow, action: str,
                         reason: str) -> web.Response:
    request.app[METRICS].unmask_requests_total.labels(result="denied").inc()
    await _audit(request, caller, action, found.id, "denied", reason)
    return error_json(403, say(request, "you may not see recordings unmasked; an administrator can allow it "
                                        "with unmask: true in a policy"))


async def _has_masks(request: web.Request, found: RecordingRow) -> bool:
    """Whether the recording was made with masks (an unreadable journal counts as masked)."""
    journal = await journal_file(request, found, _recordings_root(request))
    try:
        return journal is None or bool(await asyncio.to_thread(recorded_masks, journal))
    except (OSError, RecordingError):
        return True


def unmask_granted(request: web.Request) -> bool:
    """Whether the caller may unmask (policy now) and holds a grant for the recording in the URL."""
    session = current_session(request)
    if session is None:
        return False
    policies = request.app[SETTINGS].current.policies
    return (may_unmask(session.identity, client_address(request), policies)
            and grant_valid(request.query.get("grant"), session.id, request.match_info["id"], request.app[CLOCK]()))


@routes.post("/api/v1/recordings/{id}/unmask")
async def unmask_recording(request: web.Request) -> web.Response:
    authorized = await _authorized_recording(request, "recording.unmask")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if not may_unmask(caller.identity, client_address(request), request.app[SETTINGS].current.policies):
        return await _refuse_unmask(request, caller, found, "recording.unmask", "no policy lets this user unmask")
    try:
        body = await _json_object(request)
    except ValueError as exc:
        return error_json(400, str(exc))
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > MAX_REASON:
        return error_json(400, say(request, "give a reason of 1 to {limit} characters", limit=MAX_REASON))
    reason = reason.strip()
    session = current_session(request)
    assert session is not None  # _authorized_recording answered 401 otherwise
    await _audit(request, caller, "recording.unmask", found.id, "allowed", reason)
    await request.app[RECORDING_INDEX].add_event(
        found.id, SessionEvent("unmasked", {"by": caller.identity.username, "reason": reason}))
    request.app[METRICS].unmask_requests_total.labels(result="allowed").inc()
    now = request.app[CLOCK]()
    grant = issue_grant(session.id, found.id, now)
    urls = {"typed": f"/api/v1/recordings/{found.id}/typed?grant={grant}"}
    if found.protocol != TERMINAL_PROTOCOL and await _has_masks(request, found):
        urls["video"] = f"/api/v1/recordings/{found.id}/video/unmasked?grant={grant}"
    return web.json_response({"grant": grant, "expires_in": GRANT_SECONDS, **urls})


@routes.get("/api/v1/recordings/{id}/video/unmasked")
async def unmasked_video(request: web.Request) -> web.StreamResponse:
    authorized = await _authorized_recording(request, "recording.download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if not unmask_granted(request):
        return await _refuse_unmask(request, caller, found, "recording.download",
                                    "no unmask grant (a reason given) for this recording, or no policy allows it")
    service = request.app.get(RECORDINGS)
    if not isinstance(service, RecordingService) or service.render_pool is None or found.protocol == TERMINAL_PROTOCOL:
        return error_json(404, f"{found.id} has no video this gateway can render")
    journal = await journal_file(request, found, _recordings_root(request))
    if journal is None:
        return error_json(404, f"the journal of {found.id} is missing")
    output = unmasked_video_path(journal)
    try:
        await _rendered(service, journal, output)
    except (OSError, RecordingError) as exc:
        log.error("rendering a recording unmasked failed", extra={"ctx": {"recording": found.id, "error": exc}})
        return error_json(500, f"the unmasked video of {found.id} could not be rendered ({exc})")
    await _audit(request, caller, "recording.download", found.id, "allowed", unmasked=True,
                 range=request.headers.get("Range"))
    return await file_response(request, output, "video/mp4", f"{found.id}-unmasked.mp4")


async def _rendered(service: RecordingService, journal: Path, output: Path) -> None:
    """Render ``journal`` unmasked to ``output`` unless it is there; one render per file at a time."""
    if await asyncio.to_thread(output.is_file):
        return
    task = _RENDERING.get(output)
    if task is None:
        task = _RENDERING[output] = asyncio.create_task(_render(service, journal, output))
        task.add_done_callback(lambda _: _RENDERING.pop(output, None))
    await asyncio.shield(task)


async def _render(service: RecordingService, journal: Path, output: Path) -> None:
    assert service.render_pool is not None
    partial = output.with_name(output.name.replace(".mp4", ".part.mp4"))
    await service.render_pool.submit(journal, partial, unmasked=True)
    await asyncio.to_thread(partial.replace, output)


@routes.get("/api/v1/recordings/{id}/typed")
async def recording_typed_text(request: web.Request) -> web.Response:
    """What the operator typed, in time order (with a grant); else how many keys, or that none were recorded."""
    authorized = await _authorized_recording(request, "recording.typed_text")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    journal = await journal_file(request, found, _recordings_root(request))
    if journal is None:
        log.error("indexed journal missing or outside the recordings directory",
                  extra={"ctx": {"recording": found.id, "path": found.path}})
        return error_json(404, f"the journal of {found.id} is missing")
    try:
        typed = await request.app[RECORDING_INDEX].typed_text(found.id, journal)
    except RecordingKeyError as exc:
        return undecryptable(request, f"the journal of {found.id}", exc, "journal")
    except (OSError, RecordingError) as exc:
        log.error("a journal's typed text cannot be read", extra={"ctx": {"recording": found.id, "error": exc}})
        return error_json(500, f"the journal of {found.id} cannot be read ({exc}); an administrator can check it "
                               "with deskgate recordings verify")
    withheld = typed.recorded and not unmask_granted(request)
    await _audit(request, caller, "recording.typed_text", found.id, "allowed", withheld=withheld)
    if withheld:  # counts only: what a reviewer without a reason given may know
        return web.json_response({"recording": found.id, **typed.to_json(), "entries": [], "withheld": True,
                                  "keys": found.keys})
    return web.json_response({"recording": found.id, **typed.to_json(), "withheld": False})
