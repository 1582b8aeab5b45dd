"""Recordings over HTTP: search, the video (with Range), the timeline, and what reviewers work with.

Who may see what: administrators see every recording; anyone else sees recordings only if
some policy matching their groups and source address says ``recordings: all`` (everything)
or ``own`` (their own), or ``watch`` names a group the recorded user was in when the session
started (:mod:`gateway.watch`; ``"*"``: everyone's, even recordings made before groups were
recorded). Every list, view (events, typed text, poster, bookmarks) and download (video, clip)
is audited, allowed or denied, before anything is sent; so is every bookmark made or removed
and every clip asked for; if the audit event cannot be stored the request fails. A clip's
progress is polled, so only its refusals are audited.

A search by ``text`` (what appeared on screen: a terminal's output, or the lines read off a desktop) also
gives each recording's *moments*: when and where the text was on screen, the first 20 in time order.

For review (typed text and the unmasked video: :mod:`gateway.web.unmask_routes`): the poster
(the first picture with content), bookmarks (a moment and a note, per person) and clips (a stretch exported to MP4 in the render workers, with its progress). Bookmarks and
clips live under their recording's URL, so the recording's authorization covers them.

A recording id from the URL is only ever a key: it must be a well-formed session id and name an
indexed recording; the files served (video, poster, clip) and read (journal) are the ones the
index names, used only if they resolve to a file inside ``storage.recordings``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from auth.identity import Identity
from base.times import parse_time
from gateway.config import parse_duration
from gateway.policy import IPAddress, PolicySet, RecordingAccess, normalize_source
from gateway.recording_service import ClipRefused, RecordingService
from gateway.unmask import may_unmask
from gateway.watch import WatchScope, watch_scope
from gateway.web.keys import AUDIT, METRICS, RECORDING_INDEX, RECORDINGS, SETTINGS, STORE
from gateway.web.messages import say
from gateway.web.pages import signed_in_page
from gateway.web.security import client_address, current_session, error_json
from gateway.web.storage_routes import file_response, journal_file, object_response, remote_recordings, undecryptable
from recorder.asciicast import ASCIICAST_MEDIA_TYPE, asciicast_lines
from recorder.bookmarks import BookmarkLimitReached, Bookmarks, check_moment
from recorder.clips import ClipState, ClipStore, is_clip_id
from recorder.errors import RecordingError, RecordingKeyError
from recorder.index import MAX_SEARCH_LIMIT, RecordingRow, VideoState, Visibility
from recorder.journal import is_session_id
from recorder.masking import recorded_masks
from recorder.pii import without_personal_data
from recorder.records import TERMINAL_PROTOCOL
from recorder.storage import POSTER, VIDEO, clip_key

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_FILTER_TEXT = 255
_TEXT_FILTERS = ("user", "user_contains", "target", "end_reason", "text")
LIST_PARAMETERS = (*_TEXT_FILTERS, "since", "until", "min_duration", "max_duration", "source", "event", "limit")
_SECONDS = re.compile(r"\d{1,9}(\.\d{1,6})?")
_LIMIT = re.compile(r"\d{1,4}")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BOOKMARK_ID = re.compile(r"[1-9]\d{0,17}")


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
    if "source" in values:
        try:
            filters["source"] = ip_network(values["source"], strict=False)
        except ValueError:
            raise ValueError(f"source: {values['source']!r} is not an IP address or network "
                             "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    if "event" in values:
        if not _EVENT_TYPE.fullmatch(values["event"]):
            raise ValueError(f"event: {values['event']!r} is not an event type (e.g. clipboard_blocked)")
        filters["event"] = values["event"]
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

    def may_see(self, user: str, groups: tuple[str, ...] | None) -> bool:
        """Whether a recording of ``user``, recorded in ``groups``, is the caller's to see."""
        return (self.access == RecordingAccess.ALL or self.watch.covers(groups)
                or (self.access == RecordingAccess.OWN and user == self.identity.username))

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
    policies = request.app[SETTINGS].current.policies
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
        return error_json(401, say(request, "log in first"))
    recording_id = request.match_info["id"]
    if not is_session_id(recording_id):
        return error_json(404, "there is no such recording")
    if caller.sees_none:
        await _audit(request, caller, action, recording_id, "denied", "no policy lets this user see recordings")
        return error_json(403, say(request, "you may not see recordings"))
    row = await request.app[RECORDING_INDEX].get(recording_id)
    if row is None:
        return error_json(404, f"there is no recording {recording_id}")
    if not caller.may_see(row.user, row.user_groups):
        await _audit(request, caller, action, recording_id, "denied",
                     "the recording is another user's, outside the groups this user may watch")
        if caller.watch.nobody:
            return error_json(403, say(request, "you may only see your own recordings"))
        return error_json(403, f"you may not see {row.user}'s recordings")
    return caller, row


def _recordings_root(request: web.Request) -> Path:
    """The recordings directory (with object storage: the spool) of the config in force."""
    return request.app[SETTINGS].current.config.storage.recordings


def _file_inside(name: str | Path | None, recordings_root: Path) -> Path | None:
    """The file ``name``, if it exists and resolves (symlinks followed) to inside the recordings root.

    Blocking (it stats the file system): call it in a thread.
    """
    if name is None:
        return None
    try:
        path = Path(name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(recordings_root.resolve()) or not path.is_file():
        return None
    return path


def _video_file(row: RecordingRow, recordings_root: Path) -> Path | None:
    """The row's video file, if it is inside the recordings root (blocking)."""
    return _file_inside(row.video_path, recordings_root)


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; ValueError says what is wrong with it."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("send a JSON object (Content-Type: application/json)") from None
    if not isinstance(body, dict):
        raise ValueError("send a JSON object (Content-Type: application/json)")
    return body


def _filters_for_audit(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters as the audit keeps them: a card number searched for is not written down in clear."""
    return {name: without_personal_data(str(value)) for name, value in filters.items()}


# ---------------------------------------------------------------- routes


@routes.get("/api/v1/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return error_json(401, say(request, "log in first"))
    if caller.sees_none:
        await _audit(request, caller, "recording.list", None, "denied", "no policy lets this user see recordings")
        return error_json(403, say(request, "you may not see recordings"))
    try:
        filters = parse_list_filters(request.query)
    except ValueError as exc:
        return error_json(400, str(exc))
    if caller.access == RecordingAccess.OWN and caller.watch.nobody:
        if filters.get("user", caller.identity.username) != caller.identity.username:
            await _audit(request, caller, "recording.list", None, "denied", "asked for another user's recordings",
                         filters=_filters_for_audit(filters))
            return error_json(403, say(request, "you may only see your own recordings"))
        filters["user"] = caller.identity.username
    rows = await request.app[RECORDING_INDEX].search(**filters, visible=caller.visibility())
    await _audit(request, caller, "recording.list", None, "allowed", filters=_filters_for_audit(filters),
                 count=len(rows))
    found = [row.to_json() for row in rows]
    if "text" in filters:  # where on screen it was, and when: the player opens there (#t=)
        moments = await request.app[RECORDING_INDEX].texts.moments([row.id for row in rows], filters["text"])
        for recording in found:
            recording["moments"] = [moment.to_json() for moment in moments[recording["id"]]]
    return web.json_response({"recordings": found})


@routes.get("/api/v1/recordings/{id}/video")
async def recording_video(request: web.Request) -> web.StreamResponse:
    authorized = await _authorized_recording(request, "recording.download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if found.video_state != VideoState.READY:
        return error_json(404, f"the video of {found.id} is not rendered yet (state: {found.video_state.value})")
    remote = remote_recordings(request)
    if remote is not None:
        await _audit(request, caller, "recording.download", found.id, "allowed", range=request.headers.get("Range"))
        return await object_response(request, remote.storage, f"{found.id}/{VIDEO}", "video/mp4", f"{found.id}.mp4")
    path = await asyncio.to_thread(_video_file, found, request.app[SETTINGS].current.config.storage.recordings)
    if path is None:
        log.error("indexed video missing or outside the recordings directory",
                  extra={"ctx": {"recording": found.id, "video_path": found.video_path}})
        return error_json(404, f"the video of {found.id} is missing")
    await _audit(request, caller, "recording.download", found.id, "allowed", range=request.headers.get("Range"))
    return await file_response(request, path, "video/mp4", f"{found.id}.mp4")


@routes.get("/api/v1/recordings/{id}/events")
async def recording_events(request: web.Request) -> web.Response:
    authorized = await _authorized_recording(request, "recording.view")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    index = request.app[RECORDING_INDEX]
    events = await index.events(found.id)
    activity = await index.activity(found.id)
    quiet = await index.quiet_stretches(found.id)
    await _audit(request, caller, "recording.view", found.id, "allowed")
    return web.json_response({
        "recording": found.to_json(),
        "events": [event.to_json() for event in events],
        "activity": [bucket.to_json() for bucket in activity],
        "idle": [stretch.to_json() for stretch in quiet] if quiet is not None else None,
        "may_unmask": may_unmask(caller.identity, client_address(request), request.app[SETTINGS].current.policies),
    })


@routes.get("/api/v1/recordings/{id}/cast")
async def recording_cast(request: web.Request) -> web.StreamResponse:
    """A terminal recording as asciicast v2 (what asciinema-player plays): output, and input as recorded."""
    authorized = await _authorized_recording(request, "recording.download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if found.protocol != TERMINAL_PROTOCOL:
        return error_json(404, f"{found.id} records a desktop, not a terminal; play its video instead")
    journal = await journal_file(request, found, _recordings_root(request))
    if journal is None:
        return error_json(404, f"the journal of {found.id} is missing")
    try:
        cast = await asyncio.to_thread(lambda: "".join(asciicast_lines(journal)).encode())
    except RecordingKeyError as exc:
        return undecryptable(request, f"the journal of {found.id}", exc, "journal")
    except (OSError, RecordingError) as exc:
        log.error("a terminal journal cannot be read", extra={"ctx": {"recording": found.id, "error": exc}})
        return error_json(500, f"the journal of {found.id} cannot be read ({exc}); an administrator can check it "
                               "with deskgate recordings verify")
    await _audit(request, caller, "recording.download", found.id, "allowed", format="asciicast")
    return web.Response(body=cast, headers={"Content-Type": ASCIICAST_MEDIA_TYPE,
                                            "Content-Disposition": f'inline; filename="{found.id}.cast"'})


@routes.get("/api/v1/recordings/{id}/journal")
async def recording_journal(request: web.Request) -> web.StreamResponse:
    """The raw journal, with HTTP Range (review tools; a copy to check against its seal), on any node."""
    authorized = await _authorized_recording(request, "recording.download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    journal = await journal_file(request, found, _recordings_root(request))
    if journal is None:
        return error_json(404, f"the journal of {found.id} is missing")
    if not may_unmask(caller.identity, client_address(request), request.app[SETTINGS].current.policies):
        try:
            masked = bool(await asyncio.to_thread(recorded_masks, journal))
        except (OSError, RecordingError):
            masked = True
        if masked:  # the journal holds the masked pixels
            await _audit(request, caller, "recording.download", found.id, "denied",
                         "the journal holds masked regions and no policy lets this user unmask", kind="journal")
            return error_json(403, say(request, "you may not see recordings unmasked; an administrator can allow "
                                                "it with unmask: true in a policy"))
    await _audit(request, caller, "recording.download", found.id, "allowed", kind="journal",
                 range=request.headers.get("Range"))
    return web.FileResponse(journal, headers={"Content-Type": "application/octet-stream",
                                              "Content-Disposition": f'attachment; filename="{found.id}.dgj"'})


@routes.get("/api/v1/recordings/{id}/poster")
async def recording_poster(request: web.Request) -> web.StreamResponse:
    """The video's first picture with content, as a JPEG: what the player shows before playing."""
    authorized = await _authorized_recording(request, "recording.poster")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    poster = None
    remote = remote_recordings(request)
    if remote is not None and found.video_state == VideoState.READY:
        await _audit(request, caller, "recording.poster", found.id, "allowed")
        return await object_response(request, remote.storage, f"{found.id}/{POSTER}", "image/jpeg",
                                     f"{found.id}.jpg")
    if found.video_state == VideoState.READY and found.video_path is not None:
        poster = await asyncio.to_thread(_file_inside, Path(found.video_path).with_suffix(".jpg"),
                                         request.app[SETTINGS].current.config.storage.recordings)
    if poster is None:
        return error_json(404, f"{found.id} has no poster (its video is not rendered, or was rendered before "
                               "posters were made)")
    await _audit(request, caller, "recording.poster", found.id, "allowed")
    return await file_response(request, poster, "image/jpeg", f"{found.id}.jpg")


# ---------------------------------------------------------------- bookmarks


@routes.get("/api/v1/recordings/{id}/bookmarks")
async def recording_bookmarks(request: web.Request) -> web.Response:
    """Everyone's bookmarks on the recording, in time order."""
    authorized = await _authorized_recording(request, "recording.bookmarks")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    bookmarks = await Bookmarks(request.app[STORE]).for_recording(found.id)
    await _audit(request, caller, "recording.bookmarks", found.id, "allowed", count=len(bookmarks))
    return web.json_response({"bookmarks": [bookmark.to_json() for bookmark in bookmarks]})


@routes.post("/api/v1/recordings/{id}/bookmarks")
async def add_bookmark(request: web.Request) -> web.Response:
    """Bookmark a moment: JSON ``{"t": seconds, "note": text}``; 201 with the bookmark."""
    authorized = await _authorized_recording(request, "recording.bookmark")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    try:
        body = await _json_object(request)
        t = check_moment(body.get("t"))
        if t > found.duration:
            raise ValueError(f"t is after the recording's end ({found.duration:.1f} s)")
        bookmark = await Bookmarks(request.app[STORE]).add(found.id, caller.identity.username, t, body.get("note"))
    except ValueError as exc:
        return error_json(400, str(exc))
    except BookmarkLimitReached as exc:
        request.app[METRICS].review_refused_total.labels(reason="bookmarks_per_recording").inc()
        await _audit(request, caller, "recording.bookmark", found.id, "denied", str(exc))
        return error_json(409, str(exc))
    await _audit(request, caller, "recording.bookmark", found.id, "allowed", bookmark=bookmark.id, t=t,
                 note=bookmark.note)
    return web.json_response({"bookmark": bookmark.to_json()}, status=201)


@routes.delete("/api/v1/recordings/{id}/bookmarks/{bookmark}")
async def delete_bookmark(request: web.Request) -> web.Response:
    """Remove a bookmark: one's own (administrators: anyone's)."""
    authorized = await _authorized_recording(request, "recording.bookmark_delete")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    bookmarks = Bookmarks(request.app[STORE])
    text = request.match_info["bookmark"]
    bookmark = await bookmarks.get(found.id, int(text)) if _BOOKMARK_ID.fullmatch(text) else None
    if bookmark is None:
        return error_json(404, f"{found.id} has no bookmark {text}")
    if bookmark.owner != caller.identity.username and not caller.identity.admin:
        await _audit(request, caller, "recording.bookmark_delete", found.id, "denied", "the bookmark is another's",
                     bookmark=bookmark.id)
        return error_json(403, f"only {bookmark.owner} (or an administrator) may delete this bookmark")
    await _audit(request, caller, "recording.bookmark_delete", found.id, "allowed", bookmark=bookmark.id,
                 owner=bookmark.owner)
    await bookmarks.delete(found.id, bookmark.id)
    return web.json_response({"deleted": bookmark.id})


@routes.get("/api/v1/bookmarks")
async def my_bookmarks(request: web.Request) -> web.Response:
    """The caller's own bookmarks, newest first, on the recordings they may still see."""
    caller = _caller(request)
    if caller is None:
        return error_json(401, say(request, "log in first"))
    if caller.sees_none:
        await _audit(request, caller, "bookmark.list", None, "denied", "no policy lets this user see recordings")
        return error_json(403, say(request, "you may not see recordings"))
    mine = await Bookmarks(request.app[STORE]).by_owner(caller.identity.username)
    visible = [{**bookmark.to_json(), "recording": recording.to_json()} for bookmark, recording in mine
               if caller.may_see(recording.user, recording.user_groups)]
    await _audit(request, caller, "bookmark.list", None, "allowed", count=len(visible))
    return web.json_response({"bookmarks": visible})


# ---------------------------------------------------------------- clips


@routes.post("/api/v1/recordings/{id}/clips")
async def export_clip(request: web.Request) -> web.Response:
    """Export a stretch to MP4: JSON ``{"from": seconds, "to": seconds}``; 202 with the queued clip."""
    authorized = await _authorized_recording(request, "recording.clip")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    if found.protocol == TERMINAL_PROTOCOL:
        return error_json(400, f"{found.id} records a terminal, which has no video; download its asciicast "
                               f"(/api/v1/recordings/{found.id}/cast) instead")
    service = request.app.get(RECORDINGS)
    if not isinstance(service, RecordingService):
        return error_json(503, "this gateway cannot export clips")
    journal = await journal_file(request, found, _recordings_root(request))
    if journal is None:
        return error_json(404, f"the journal of {found.id} is missing")
    try:
        body = await _json_object(request)
        clip = await service.export_clip(found, journal, caller.identity.username, body.get("from"), body.get("to"))
    except ValueError as exc:
        return error_json(400, str(exc))
    except ClipRefused as exc:
        await _audit(request, caller, "recording.clip", found.id, "denied", str(exc))
        return error_json(429 if exc.reason == "clips_per_user" else 503, str(exc))
    await _audit(request, caller, "recording.clip", found.id, "allowed", clip=clip.id, start=clip.start, end=clip.end)
    return web.json_response({"clip": clip.to_json()}, status=202)


@routes.get("/api/v1/recordings/{id}/clips")
async def recording_clips(request: web.Request) -> web.Response:
    """The recording's clips, newest first, with their state and progress."""
    authorized = await _authorized_recording(request, "recording.clips")
    if isinstance(authorized, web.Response):
        return authorized
    clips = await ClipStore(request.app[STORE]).for_recording(authorized[1].id)
    return web.json_response({"clips": [clip.to_json() for clip in clips]})


@routes.get("/api/v1/recordings/{id}/clips/{clip}")
async def clip_status(request: web.Request) -> web.Response:
    """One clip's state and progress (what the page's progress bar polls)."""
    authorized = await _authorized_recording(request, "recording.clip_status")
    if isinstance(authorized, web.Response):
        return authorized
    found = authorized[1]
    clip_id = request.match_info["clip"]
    clip = await ClipStore(request.app[STORE]).get(found.id, clip_id) if is_clip_id(clip_id) else None
    if clip is None:
        return error_json(404, f"{found.id} has no clip {clip_id}")
    return web.json_response({"clip": clip.to_json()})


@routes.get("/api/v1/recordings/{id}/clips/{clip}/video")
async def clip_video(request: web.Request) -> web.StreamResponse:
    """A ready clip's MP4, with HTTP Range."""
    authorized = await _authorized_recording(request, "recording.clip_download")
    if isinstance(authorized, web.Response):
        return authorized
    caller, found = authorized
    clip_id = request.match_info["clip"]
    clip = await ClipStore(request.app[STORE]).get(found.id, clip_id) if is_clip_id(clip_id) else None
    if clip is None:
        return error_json(404, f"{found.id} has no clip {clip_id}")
    if clip.state != ClipState.READY:
        return error_json(404, f"clip {clip.id} is not ready (state: {clip.state.value})")
    name = f"{found.id}-{int(clip.start)}s-{int(clip.end)}s.mp4"
    remote = remote_recordings(request)
    if remote is not None:
        await _audit(request, caller, "recording.clip_download", found.id, "allowed", clip=clip.id,
                     range=request.headers.get("Range"))
        return await object_response(request, remote.storage, clip_key(found.id, clip.id), "video/mp4", name,
                                     "attachment")
    path = await asyncio.to_thread(_file_inside, clip.path, request.app[SETTINGS].current.config.storage.recordings)
    if path is None:
        return error_json(404, f"the file of clip {clip.id} is missing (it was exported on {clip.node})")
    await _audit(request, caller, "recording.clip_download", found.id, "allowed", clip=clip.id,
                 range=request.headers.get("Range"))
    return await file_response(request, path, "video/mp4", name, "attachment")


routes.get("/recordings")(signed_in_page("recordings.html"))
routes.get("/recordings/{id}")(signed_in_page("player.html", terminal_assets=True))
