"""Recordings over HTTP: search, the video (with Range), and the events and activity for the timeline.

Who may see what: administrators see every recording; anyone else sees recordings only if
some policy matching their groups and source address says ``recordings: all`` (everything)
or ``own`` (their own), or ``watch`` names a group the recorded user was in when the session
started (:mod:`gateway.watch`; ``"*"``: everyone's, even recordings made before groups were
recorded). Every list, view (events) and download (video) is audited, allowed or denied,
before anything is sent; if the audit event cannot be stored the request fails.

A recording id from the URL is only ever a key: it must be a well-formed session id and name an
indexed recording, and the video file is the one the index names, served only if it resolves
to a file inside ``storage.recordings``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from auth.identity import Identity
from base.times import parse_time
from gateway.config import parse_duration
from gateway.policy import IPAddress, PolicySet, RecordingAccess, normalize_source
from gateway.watch import WatchScope, watch_scope
from gateway.web.keys import AUDIT, CONFIG, POLICIES, RECORDING_INDEX
from gateway.web.pages import signed_in_page
from gateway.web.security import client_address, current_session, error_json
from recorder.index import MAX_SEARCH_LIMIT, RecordingRow, VideoState, Visibility
from recorder.journal import is_session_id

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_FILTER_TEXT = 255
_TEXT_FILTERS = ("user", "target", "end_reason")
LIST_PARAMETERS = (*_TEXT_FILTERS, "since", "until", "min_duration", "max_duration", "limit")
_SECONDS = re.compile(r"\d{1,9}(\.\d{1,6})?")
_LIMIT = re.compile(r"\d{1,4}")


def recording_access(identity: Identity, source: IPAddress, policies: PolicySet) -> RecordingAccess:
    """The widest recording access any policy matching ``identity``'s groups and ``source`` grants."""
    if identity.admin:
        return RecordingAccess.ALL
    source = normalize_source(source)
    access = RecordingAccess.NONE
    for policy in policies.policies:
        if policy.group_matches(identity) and policy.source_matches(source):
            if policy.recordings == RecordingAccess.ALL:
                return RecordingAccess.ALL
            if policy.recordings == RecordingAccess.OWN:
                access = RecordingAccess.OWN
    return access


# ---------------------------------------------------------------- query parameters


def _seconds(name: str, text: str) -> float:
    """``90``, ``90.5`` or a duration such as ``10m`` or ``1h30m``."""
    try:
        seconds = float(text) if _SECONDS.fullmatch(text) else parse_duration(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ValueError(f"{name}: {text!r} is not a duration; use seconds (e.g. 90) or units (e.g. 10m, 1h30m)")
    return seconds


def parse_list_filters(query: MultiMapping[str]) -> dict[str, Any]:
    """The keyword arguments of :meth:`RecordingIndex.search` for a list request; ValueError says what is wrong."""
    unknown = sorted(set(query) - set(LIST_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown query parameter {unknown[0]!r}; the filters are {', '.join(LIST_PARAMETERS)}")
    values: dict[str, str] = {}
    for name in LIST_PARAMETERS:
        given = query.getall(name, [])
        if len(given) > 1:
            raise ValueError(f"give {name} at most once")
        if given and given[0].strip():
            values[name] = given[0].strip()  # an empty field of the search form means "any"
    filters: dict[str, Any] = {}
    for name in _TEXT_FILTERS:
        if name in values:
            if len(values[name]) > MAX_FILTER_TEXT:
                raise ValueError(f"{name} is longer than {MAX_FILTER_TEXT} characters")
            filters[name] = values[name]
    for name in ("since", "until"):
        if name in values:
            try:
                filters[name] = parse_time(values[name], end_of_day=name == "until")
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    if "since" in filters and "until" in filters and filters["since"] >= filters["until"]:
        raise ValueError("since must be before until")
    for name in ("min_duration", "max_duration"):
        if name in values:
            filters[name] = _seconds(name, values[name])
    if filters.get("min_duration", 0.0) > filters.get("max_duration", math.inf):
        raise ValueError("min_duration must not be greater than max_duration")
    if "limit" in values:
        if not _LIMIT.fullmatch(values["limit"]) or not 1 <= int(values["limit"]) <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit: {values['limit']!r} is not a whole number from 1 to {MAX_SEARCH_LIMIT}")
        filters["limit"] = int(values["limit"])
    return filters


# ---------------------------------------------------------------- authorization and audit


@dataclass(frozen=True, slots=True)
class _Caller:
    identity: Identity
    source: str
    access: RecordingAccess
    watch: WatchScope

    @property
    def sees_none(self) -> bool:
        return self.access == RecordingAccess.NONE and self.watch.nobody

    def may_see(self, row: RecordingRow) -> bool:
        return (self.access == RecordingAccess.ALL or self.watch.covers(row.user_groups)
                or (self.access == RecordingAccess.OWN and row.user == self.identity.username))

    def visibility(self) -> Visibility | None:
        """What a search may return: None for everything."""
        if self.access == RecordingAccess.ALL or self.watch.everyone:
            return None
        own = frozenset({self.identity.username}) if self.access == RecordingAccess.OWN else frozenset()
        return Visibility(users=own, groups=self.watch.groups)


def _caller(request: web.Request) -> _Caller | None:
    session = current_session(request)
    if session is None:
        return None
    source = client_address(request)
    policies = request.app[POLICIES]
    return _Caller(session.identity, str(source), recording_access(session.identity, source, policies),
                   watch_scope(session.identity, source, policies))


async def _audit(request: web.Request, caller: _Caller, action: str, target: str | None, outcome: str,
                 reason: str | None = None, **detail: Any) -> None:
    await request.app[AUDIT].record(action, user=caller.identity.username, source=caller.source, target=target,
                                    outcome=outcome, reason=reason, **detail)


async def _authorized_recording(request: web.Request, action: str) -> tuple[_Caller, RecordingRow] | web.Response:
    """The caller and the recording named in the URL if they may see it; otherwise the (audited) refusal."""
    caller = _caller(request)
    if caller is None:
        return error_json(401, "log in first")
    recording_id = request.match_info["id"]
    if not is_session_id(recording_id):
        return error_json(404, "there is no such recording")
    if caller.sees_none:
        await _audit(request, caller, action, recording_id, "denied", "no policy lets this user see recordings")
        return error_json(403, "you may not see recordings")
    row = await request.app[RECORDING_INDEX].get(recording_id)
    if row is None:
        return error_json(404, f"there is no recording {recording_id}")
    if not caller.may_see(row):
        await _audit(request, caller, action, recording_id, "denied",
                     "the recording is another user's, outside the groups this user may watch")
        if caller.watch.nobody:
            return error_json(403, "you may only see your own recordings")
        return error_json(403, f"you may not see {row.user}'s recordings")
    return caller, row


def _video_file(row: RecordingRow, recordings_root: Path) -> Path | None:
    """The row's video file, if it exists and resolves (symlinks followed) to inside the recordings root.

    Blocking (it stats the file system): call it in a thread.
    """
    if row.video_path is None:
        return None
    try:
        path = Path(row.video_path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(recordings_root.resolve()) or not path.is_file():
        return None
    return path


def _filters_for_audit(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {name: str(value) for name, value in filters.items()}


# ---------------------------------------------------------------- routes


@routes.get("/api/v1/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return error_json(401, "log in first")
    if caller.sees_none:
        await _audit(request, caller, "recording.list", None, "denied", "no policy lets this user see recordings")
        return error_json(403, "you may not see recordings")
    try:
        filters = parse_list_filters(request.query)
    except ValueError as exc:
        return error_json(400, str(exc))
    if caller.access == RecordingAccess.OWN and caller.watch.nobody:
        if filters.get("user", caller.identity.username) != caller.identity.username:
            await _audit(request, caller, "recording.list", None, "denied", "asked for another user's recordings",
                         filters=_filters_for_audit(filters))
            return error_json(403, "you may only see your own recordings")
        filters["user"] = caller.identity.username
    rows = await request.app[RECORDING_INDEX].search(**filters, visible=caller.visibility())
    await _audit(request, caller, "recording.list", None, "allowed", filters=_filters_for_audit(filters),
                 count=len(rows))
    return web.json_response({"recordings": [row.to_json() for row in rows]})


@routes.get("/api/v1/recordings/{id}/video")
async def recording_video(request: web.Request) -> web.StreamResponse:
    authorized = await _authorized_recording(request, "recording.download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if found.video_state != VideoState.READY:
        return error_json(404, f"the video of {found.id} is not rendered yet (state: {found.video_state.value})")
    path = await asyncio.to_thread(_video_file, found, request.app[CONFIG].storage.recordings)
    if path is None:
        log.error("indexed video missing or outside the recordings directory",
                  extra={"ctx": {"recording": found.id, "video_path": found.video_path}})
        return error_json(404, f"the video of {found.id} is missing")
    await _audit(request, caller, "recording.download", found.id, "allowed", range=request.headers.get("Range"))
    return web.FileResponse(path, headers={"Content-Type": "video/mp4",
                                           "Content-Disposition": f'inline; filename="{found.id}.mp4"'})


@routes.get("/api/v1/recordings/{id}/events")
async def recording_events(request: web.Request) -> web.Response:
    authorized = await _authorized_recording(request, "recording.view")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    index = request.app[RECORDING_INDEX]
    events = await index.events(found.id)
    activity = await index.activity(found.id)
    await _audit(request, caller, "recording.view", found.id, "allowed")
    return web.json_response({
        "recording": found.to_json(),
        "events": [event.to_json() for event in events],
        "activity": [bucket.to_json() for bucket in activity],
    })


routes.get("/recordings")(signed_in_page("recordings.html"))
routes.get("/recordings/{id}")(signed_in_page("player.html"))
