"""The review routes against a real store, real journals, a real render pool: typed text, poster, search
filters, bookmarks (with CSRF), clips — each authorized and audited like the other recording routes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web

from auth.identity import Identity
from base.metrics import Metrics
from gateway.config import Config
from gateway.recording_service import RecordingService, RecordingSettings
from gateway.web import recording_routes
from gateway.web.keys import AUDIT, METRICS, RECORDING_INDEX, RECORDINGS, WEB_SESSIONS
from gateway.web.security import csrf_protection
from recorder.bookmarks import Bookmarks
from recorder.worker import RenderPool
from tests.gateway.test_recording_routes import (
    ALICE_ID,
    BOB_ID,
    TINA_ID,
    Client,
    ClientFactory,
    add_recordings,
    audit_trail,
    build_app,
    listed,
    login,
    write_config,
)
from tests.recorder.test_index import client as client_data
from tests.recorder.test_index import end_record, journal_header, write_journal

CARL_ID = "20261127T100000Z-0000ca71"  # record_input: counts
REVIEW_ROUTES = [f"/api/v1/recordings/{ALICE_ID}/typed", f"/api/v1/recordings/{ALICE_ID}/poster",
                 f"/api/v1/recordings/{ALICE_ID}/bookmarks", f"/api/v1/recordings/{ALICE_ID}/clips",
                 f"/api/v1/recordings/{ALICE_ID}/clips/0123456789abcdef",
                 f"/api/v1/recordings/{ALICE_ID}/clips/0123456789abcdef/video"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


@pytest.fixture
async def client(config: Config, aiohttp_client: ClientFactory) -> Client:
    """alice's (rendered), bob's and tina's recordings, as in the other recording routes' tests."""
    client = await aiohttp_client(build_app(config))
    await add_recordings(client.app, config)
    return client


async def supervisor(client: Client) -> dict[str, str]:
    return await login(client, "sue", "supervisors")


# ---------------------------------------------------------------- who may ask


@pytest.mark.parametrize("path", REVIEW_ROUTES + ["/api/v1/bookmarks"])
async def test_review_routes_need_a_session(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401 and await response.json() == {"error": "log in first"}


@pytest.mark.parametrize("path", REVIEW_ROUTES + ["/api/v1/bookmarks"])
async def test_operators_without_recording_access_are_refused_and_audited(client: Client, path: str) -> None:
    response = await client.get(path, headers=await login(client, "alice", "operators"))
    assert response.status == 403 and await response.json() == {"error": "you may not see recordings"}
    ((user, _, _, outcome),) = await audit_trail(client)
    assert (user, outcome) == ("alice", "denied")


@pytest.mark.parametrize("path", REVIEW_ROUTES)
async def test_own_access_does_not_reach_anothers_recording(client: Client, path: str) -> None:
    response = await client.get(path, headers=await login(client, "tina", "trainees"))
    assert response.status == 403
    assert await response.json() == {"error": "you may only see your own recordings"}
    ((user, action, target, outcome),) = await audit_trail(client)
    assert (user, action.split(".")[0], target, outcome) == ("tina", "recording", ALICE_ID, "denied")


async def test_writes_are_refused_to_those_who_may_not_see_the_recording(client: Client) -> None:
    headers = await login(client, "tina", "trainees")
    for method, path, body in (("POST", "bookmarks", {"t": 1, "note": "x"}), ("POST", "clips", {"from": 0, "to": 5}),
                               ("DELETE", "bookmarks/1", None)):
        response = await client.request(method, f"/api/v1/recordings/{ALICE_ID}/{path}", json=body, headers=headers)
        assert response.status == 403
    assert [outcome for (_, _, _, outcome) in await audit_trail(client)] == ["denied"] * 3


# ---------------------------------------------------------------- typed text


async def test_typed_text_of_a_recording_with_full_input_is_withheld_without_an_unmask_grant(client: Client) -> None:
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/typed", headers=await supervisor(client))
    assert response.status == 200
    assert await response.json() == {"recording": ALICE_ID, "record_input": "full", "recorded": True,
                                     "entries": [], "truncated": False, "error": None, "withheld": True, "keys": 2}
    assert await audit_trail(client) == [("sue", "recording.typed_text", ALICE_ID, "allowed")]


async def test_typed_text_of_a_recording_that_kept_only_counts_says_so(client: Client, config: Config) -> None:
    started = datetime(2026, 11, 27, 10, tzinfo=UTC)
    journal = write_journal(config.storage.recordings, [client_data(1.0), end_record(9.0, started=started)],
                            journal_header(CARL_ID, started, user="carl", record_input="counts"))
    await client.app[RECORDING_INDEX].add_journal(journal, None, "gw-1")
    response = await client.get(f"/api/v1/recordings/{CARL_ID}/typed", headers=await supervisor(client))
    body = await response.json()
    assert (body["record_input"], body["recorded"], body["entries"]) == ("counts", False, [])


async def test_typed_text_is_only_read_from_a_journal_inside_the_recordings(client: Client, tmp_path: Path) -> None:
    row = await client.app[RECORDING_INDEX].get(ALICE_ID)
    assert row is not None
    outside = tmp_path / "outside.dgj"
    Path(row.path).rename(outside)
    Path(row.path).symlink_to(outside)
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/typed", headers=await supervisor(client))
    assert response.status == 404 and await response.json() == {"error": f"the journal of {ALICE_ID} is missing"}


# ---------------------------------------------------------------- poster


async def test_the_poster_is_served_once_rendered(client: Client, config: Config) -> None:
    headers = await supervisor(client)
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/poster", headers=headers)
    assert response.status == 404 and "has no poster" in (await response.json())["error"]
    poster = next(config.storage.recordings.rglob(f"{ALICE_ID}.mp4")).with_suffix(".jpg")
    poster.write_bytes(b"\xff\xd8 a jpeg \xff\xd9")
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/poster", headers=headers)
    assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert await response.read() == poster.read_bytes()
    assert await audit_trail(client) == [("sue", "recording.poster", ALICE_ID, "allowed")]
    response = await client.get(f"/api/v1/recordings/{BOB_ID}/poster", headers=headers)  # not rendered
    assert response.status == 404


# ---------------------------------------------------------------- search filters


@pytest.mark.parametrize(("query", "expected"), [
    ("?user_contains=LIC", [ALICE_ID]),
    ("?user_contains=i", [TINA_ID, ALICE_ID]),
    ("?user_contains=i&user=tina", [TINA_ID]),
    ("?source=10.0.0.5", [TINA_ID, BOB_ID, ALICE_ID]),
    ("?source=10.0.0.0/30", []),
    ("?source=10.0.0.0/24", [TINA_ID, BOB_ID, ALICE_ID]),
    ("?source=::ffff:10.0.0.5", [TINA_ID, BOB_ID, ALICE_ID]),
    ("?event=clipboard_blocked", [ALICE_ID]),
    ("?event=session_start", [BOB_ID, ALICE_ID]),
    ("?event=ended_by", []),
])
async def test_search_by_part_of_a_name_source_and_event(client: Client, query: str, expected: list[str]) -> None:
    assert await listed(client, await supervisor(client), query) == expected


@pytest.mark.parametrize(("query", "message"), [
    ("?source=10.0.0", "source: '10.0.0' is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"),
    ("?source=10.0.0.0/33", "is not an IP address or network"),
    ("?event=Clipboard Blocked", "event: 'Clipboard Blocked' is not an event type"),
    ("?user_contains=" + "x" * 256, "user_contains is longer than 255 characters"),
])
async def test_bad_new_filters_are_400(client: Client, query: str, message: str) -> None:
    response = await client.get(f"/api/v1/recordings{query}", headers=await supervisor(client))
    assert response.status == 400 and message in (await response.json())["error"]


async def test_part_of_a_name_never_widens_own_access(client: Client) -> None:
    """``tina`` may see her own recordings only: a partial name matching others finds none of theirs."""
    headers = await login(client, "tina", "trainees")
    assert await listed(client, headers, "?user_contains=i") == [TINA_ID]
    assert await listed(client, headers, "?user_contains=ali") == []


# ---------------------------------------------------------------- bookmarks


async def bookmark(client: Client, headers: dict[str, str], recording: str, t: Any, note: Any) -> Any:
    return await client.post(f"/api/v1/recordings/{recording}/bookmarks", json={"t": t, "note": note},
                             headers=headers)


async def test_bookmarks_are_made_listed_and_deleted(client: Client) -> None:
    sue, sam = await supervisor(client), await login(client, "sam", "supervisors")
    response = await bookmark(client, sue, ALICE_ID, 20.5, "training: good handling of a complaint")
    assert response.status == 201
    made = (await response.json())["bookmark"]
    assert (made["owner"], made["t"], made["note"], made["recording"]) == (
        "sue", 20.5, "training: good handling of a complaint", ALICE_ID)
    assert (await bookmark(client, sam, ALICE_ID, 3, "the caller hangs up")).status == 201
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/bookmarks", headers=sam)
    assert [(b["owner"], b["t"]) for b in (await response.json())["bookmarks"]] == [("sam", 3.0), ("sue", 20.5)]

    response = await client.delete(f"/api/v1/recordings/{ALICE_ID}/bookmarks/{made['id']}", headers=sam)
    assert response.status == 403
    assert await response.json() == {"error": "only sue (or an administrator) may delete this bookmark"}
    response = await client.delete(f"/api/v1/recordings/{ALICE_ID}/bookmarks/{made['id']}", headers=sue)
    assert response.status == 200 and await response.json() == {"deleted": made["id"]}
    response = await client.delete(f"/api/v1/recordings/{ALICE_ID}/bookmarks/{made['id']}", headers=sue)
    assert response.status == 404
    assert [entry[1:] for entry in await audit_trail(client)] == [
        ("recording.bookmark", ALICE_ID, "allowed"), ("recording.bookmark", ALICE_ID, "allowed"),
        ("recording.bookmarks", ALICE_ID, "allowed"), ("recording.bookmark_delete", ALICE_ID, "denied"),
        ("recording.bookmark_delete", ALICE_ID, "allowed")]
    created = (await client.app[AUDIT].list())[0]
    assert created.detail == {"bookmark": made["id"], "t": 20.5, "note": "training: good handling of a complaint"}


async def test_an_administrator_may_delete_anyones_bookmark(client: Client) -> None:
    made = (await (await bookmark(client, await supervisor(client), BOB_ID, 1, "x")).json())["bookmark"]
    response = await client.delete(f"/api/v1/recordings/{BOB_ID}/bookmarks/{made['id']}",
                                   headers=await login(client, "root", admin=True))
    assert response.status == 200


@pytest.mark.parametrize(("t", "note", "message"), [
    (None, "x", "t must be a number of seconds from 0"),
    (-1, "x", "t must be a number of seconds from 0"),
    (31.5, "x", "t is after the recording's end (31.0 s)"),
    (1, "", "write a note saying what the moment shows"),
    (1, "x" * 501, "the note is longer than 500 characters"),
    (1, ["x"], "note must be text"),
])
async def test_bad_bookmarks_are_400(client: Client, t: Any, note: Any, message: str) -> None:
    response = await bookmark(client, await supervisor(client), ALICE_ID, t, note)
    assert response.status == 400 and await response.json() == {"error": message}


async def test_a_bookmark_body_must_be_a_json_object(client: Client) -> None:
    headers = await supervisor(client)
    for body in (b"[1, 2]", b"not json", b"\xff\xfe"):
        response = await client.post(f"/api/v1/recordings/{ALICE_ID}/bookmarks", data=body,
                                     headers={**headers, "Content-Type": "application/json"})
        assert response.status == 400
        assert await response.json() == {"error": "send a JSON object (Content-Type: application/json)"}


async def test_the_bookmark_limit_is_a_clear_refusal_counted_and_audited(client: Client,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording_routes, "Bookmarks", functools.partial(Bookmarks, max_per_recording=2))
    headers = await supervisor(client)
    for n in range(2):
        assert (await bookmark(client, headers, ALICE_ID, 1, f"note {n}")).status == 201
    response = await bookmark(client, headers, ALICE_ID, 1, "one too many")
    assert response.status == 409
    assert await response.json() == {"error": "you already keep 2 bookmarks on this recording; "
                                              "delete one you no longer need first"}
    metrics: Metrics = client.app[METRICS]
    assert metrics.registry.get_sample_value("deskgate_review_refused_total",
                                             {"reason": "bookmarks_per_recording"}) == 1
    assert (await audit_trail(client))[-1] == ("sue", "recording.bookmark", ALICE_ID, "denied")


async def test_my_bookmarks_only_on_recordings_i_may_still_see(client: Client) -> None:
    sue = await supervisor(client)
    await bookmark(client, sue, ALICE_ID, 1, "alice's")
    await bookmark(client, sue, BOB_ID, 2, "bob's")
    response = await client.get("/api/v1/bookmarks", headers=sue)
    body = (await response.json())["bookmarks"]
    assert [(b["note"], b["recording"]["id"], b["recording"]["user"]) for b in body] == [
        ("bob's", BOB_ID, "bob"), ("alice's", ALICE_ID, "alice")]
    assert body[0]["recording"]["started"] == "2026-11-25T09:00:00.000000Z"
    # The same person, now only a trainee: recordings: own — neither recording is hers to see.
    response = await client.get("/api/v1/bookmarks", headers=await login(client, "sue", "trainees"))
    assert (await response.json())["bookmarks"] == []
    assert (await audit_trail(client))[-1] == ("sue", "bookmark.list", None, "allowed")


async def test_bookmarks_need_the_csrf_token(config: Config, aiohttp_client: ClientFactory) -> None:
    app = build_app(config)
    app.middlewares.append(csrf_protection)
    client = await aiohttp_client(app)
    session = await client.app[WEB_SESSIONS].create(Identity("sue", frozenset({"supervisors"}), False, "local"),
                                                    "127.0.0.1")
    index = client.app[RECORDING_INDEX]
    started = datetime(2026, 11, 25, 8, tzinfo=UTC)
    await index.add_journal(write_journal(config.storage.recordings, [end_record(30.0, started=started)],
                                          journal_header(ALICE_ID, started)), None, "gw-1")
    cookie = {"Cookie": f"deskgate={session.id}"}
    url = f"/api/v1/recordings/{ALICE_ID}/bookmarks"
    body = {"t": 1, "note": "x"}
    response = await client.post(url, json=body, headers=cookie)
    assert response.status == 403 and "X-CSRF-Token" in (await response.json())["error"]
    response = await client.post(url, json=body, headers={**cookie, "X-CSRF-Token": session.csrf_token,
                                                          "Origin": "https://evil.example"})
    assert response.status == 403 and await response.json() == {"error": "cross-site request refused"}
    response = await client.post(url, json=body, headers={**cookie, "X-CSRF-Token": session.csrf_token})
    assert response.status == 201
    bookmark_id = (await response.json())["bookmark"]["id"]
    response = await client.delete(f"{url}/{bookmark_id}", headers=cookie)
    assert response.status == 403 and "X-CSRF-Token" in (await response.json())["error"]


# ---------------------------------------------------------------- clips


@pytest.fixture
async def clip_client(config: Config, aiohttp_client: ClientFactory) -> Client:
    """The recordings of ``client``, with a real RecordingService (one render worker) for clip exports."""

    async def recording_service(app: web.Application) -> AsyncIterator[None]:
        service = RecordingService(RecordingSettings(config.storage.recordings, bytes(32), 3600.0), app[METRICS],
                                   app[RECORDING_INDEX], app[AUDIT], RenderPool(1, progress_interval=0.05),
                                   max_clip_jobs_per_user=1)
        app[RECORDINGS] = service
        yield
        await service.close()

    app = build_app(config)
    app.cleanup_ctx.append(recording_service)
    client = await aiohttp_client(app)
    await add_recordings(app, config)
    return client


async def wait_until_ready(client: Client, headers: dict[str, str], clip_id: str) -> dict[str, Any]:
    progress = []
    async with asyncio.timeout(90):
        while True:
            response = await client.get(f"/api/v1/recordings/{ALICE_ID}/clips/{clip_id}", headers=headers)
            clip: dict[str, Any] = (await response.json())["clip"]
            progress.append(clip["progress"])
            if clip["state"] in ("ready", "failed"):
                assert progress == sorted(progress)
                return clip
            await asyncio.sleep(0.05)


async def test_a_clip_is_exported_followed_and_downloaded(clip_client: Client) -> None:
    client, headers = clip_client, await supervisor(clip_client)
    response = await client.post(f"/api/v1/recordings/{ALICE_ID}/clips", json={"from": 2, "to": 12}, headers=headers)
    assert response.status == 202, await response.text()
    queued = (await response.json())["clip"]
    assert (queued["from"], queued["to"], queued["state"], queued["owner"]) == (2.0, 12.0, "queued", "sue")
    response = await client.post(f"/api/v1/recordings/{ALICE_ID}/clips", json={"from": 0, "to": 5}, headers=headers)
    assert response.status == 429
    assert await response.json() == {"error": "you have 1 clip exports under way; wait for one to finish"}

    clip = await wait_until_ready(client, headers, queued["id"])
    assert clip["state"] == "ready", clip
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/clips", headers=headers)
    assert [c["id"] for c in (await response.json())["clips"]] == [queued["id"]]
    url = f"/api/v1/recordings/{ALICE_ID}/clips/{queued['id']}/video"
    response = await client.get(url, headers=headers)
    assert response.status == 200 and response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{ALICE_ID}-2s-12s.mp4"'
    data = await response.read()
    response = await client.get(url, headers={**headers, "Range": "bytes=0-99"})
    assert response.status == 206 and await response.read() == data[:100]
    clip_file = client.app[RECORDINGS].settings.root / "clips" / f"{queued['id']}.mp4"  # type: ignore[attr-defined]
    with av.open(str(clip_file)) as container:
        assert float(container.duration or 0) / 1e6 == pytest.approx(10.0, abs=0.1)
    assert [entry[1:] for entry in await audit_trail(client)] == [
        ("recording.clip", ALICE_ID, "allowed"), ("recording.clip", ALICE_ID, "denied"),
        ("recording.clip_download", ALICE_ID, "allowed"), ("recording.clip_download", ALICE_ID, "allowed")]


async def test_bad_clip_requests(clip_client: Client) -> None:
    client, headers = clip_client, await supervisor(clip_client)
    for body, message in (({"from": 20, "to": 20.5}, "the clip must be at least 1 s long"),
                          ({"from": 40, "to": 50}, "from must be between 0 and the recording's end (31.0 s)"),
                          ({"to": 5}, "from must be a number")):
        response = await client.post(f"/api/v1/recordings/{ALICE_ID}/clips", json=body, headers=headers)
        assert response.status == 400 and message in (await response.json())["error"]
    for suffix in ("0123456789abcdef", "0123456789abcdef/video", "..%2F..%2Fetc", "NOT-A-CLIP/video"):
        response = await client.get(f"/api/v1/recordings/{ALICE_ID}/clips/{suffix}", headers=headers)
        assert response.status == 404


async def test_without_the_recording_service_clips_are_503(client: Client) -> None:
    response = await client.post(f"/api/v1/recordings/{ALICE_ID}/clips", json={"from": 0, "to": 5},
                                 headers=await supervisor(client))
    assert response.status == 503 and await response.json() == {"error": "this gateway cannot export clips"}


async def test_a_clip_not_ready_is_not_served(clip_client: Client) -> None:
    client, headers = clip_client, await supervisor(clip_client)
    clip = await client.app[RECORDINGS].clips.create(ALICE_ID, "sue", 0.0, 5.0, "gw-9")  # type: ignore[attr-defined]
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/clips/{clip.id}/video", headers=headers)
    assert response.status == 404 and await response.json() == {"error": f"clip {clip.id} is not ready (state: queued)"}
