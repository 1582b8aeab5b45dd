"""The recordings HTTP API against a real SQLite store, real journals and a real MP4: access, filters, Range, audit."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from yarl import URL

from auth.identity import Identity
from auth.websession import WebSessionStore
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config, load_config
from gateway.policy import PolicySet, RecordingAccess
from gateway.settings import LiveSettings, Settings
from gateway.web import recording_routes, unmask_routes
from gateway.web.app import database_context
from gateway.web.keys import AUDIT, CLOCK, METRICS, RECORDING_INDEX, SETTINGS, STORE, WEB_SESSIONS
from gateway.web.recording_routes import (
    LIST_PARAMETERS,
    parse_list_filters,
    recording_access,
)
from gateway.web.security import (
    DENIAL_AUDITOR,
    DenialAuditor,
    network_allow_list,
    web_session,
)
from recorder.encrypted_files import encrypt_in_place
from recorder.index import VideoState
from recorder.keyring import FIRST_KEY_ID, RecordingKeyring, install
from tests.recorder.test_index import (
    end_record,
    event,
    full_session,
    journal_header,
    write_journal,
)

ALICE_ID = "20261125T080000Z-0000a11c"  # operator, 31 s, with a rendered video
BOB_ID = "20261125T090000Z-00000b0b"  # operator, 10 min, idle timeout, not rendered
TINA_ID = "20261126T100000Z-0000717a"  # trainee, 5 s

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


def write_config(workdir: Path) -> Config:
    path = workdir / "deskgate.yaml"
    path.write_text(textwrap.dedent("""\
        network: {allow: ["127.0.0.0/8", "::1/128", "10.9.0.0/16"], trusted_proxies: ["127.0.0.1/32"]}
        storage: {recordings: recordings, database: "sqlite:///state/deskgate.db"}
        targets:
          desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}
        policies:
          - {name: operators, groups: [operators], targets: ["desk-*"]}
          - {name: trainees, groups: [trainees], targets: ["desk-*"], recordings: own}
          - {name: supervisors, groups: [supervisors], targets: ["desk-*"], recordings: all}
          - {name: remote-review, groups: [reviewers], from: ["10.9.0.0/16"], targets: ["desk-*"], recordings: all}
          - {name: team-leads, groups: [leads], targets: ["desk-*"], watch: [operators]}
          - {name: trainers, groups: [trainers], targets: ["desk-*"], recordings: own, watch: [trainees]}
          - {name: auditors, groups: [auditors], targets: ["desk-*"], watch: "*"}
          - {name: privacy, groups: [privacy], targets: ["desk-*"], recordings: all, unmask: true}
        """))
    return load_config(path)


def write_mp4(path: Path, frames: int = 48) -> None:
    """A real H.264 MP4: a gradient moving across a 64×48 picture."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(frames):
            picture = np.zeros((48, 64, 3), np.uint8)
            picture[:, :, 0] = (np.arange(64) * 4 + n * 5) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def web_sessions_context(app: web.Application) -> AsyncIterator[None]:
    app[WEB_SESSIONS] = WebSessionStore(app[STORE], 900, 3600)
    yield


def build_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[network_allow_list, web_session])
    app[SETTINGS] = LiveSettings(Settings.from_config(config))
    app[METRICS] = Metrics()
    app[DENIAL_AUDITOR] = DenialAuditor()
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(web_sessions_context)
    app[CLOCK] = time.time
    app.add_routes(recording_routes.routes)
    app.add_routes(unmask_routes.routes)
    return app


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


@pytest.fixture
async def client(config: Config, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    client = await aiohttp_client(build_app(config))
    await add_recordings(client.app, config)
    yield client


async def add_recordings(app: web.Application, config: Config) -> None:
    """alice's (rendered), bob's and tina's recordings, indexed."""
    index, root = app[RECORDING_INDEX], config.storage.recordings
    alice_start = datetime(2026, 11, 25, 8, tzinfo=UTC)
    alice = write_journal(root, full_session(alice_start), journal_header(ALICE_ID, alice_start))
    bob_start = datetime(2026, 11, 25, 9, tzinfo=UTC)
    bob = write_journal(root, [event(0.0, "session_start"), end_record(600.0, "idle timeout", bob_start)],
                        journal_header(BOB_ID, bob_start, user="bob", groups=["operators", "staff"]))
    tina_start = datetime(2026, 11, 26, 10, tzinfo=UTC)
    tina = write_journal(root, [end_record(5.0, "closed", tina_start)],
                         journal_header(TINA_ID, tina_start, user="tina", groups=["trainees"]))
    for journal in (alice, bob, tina):
        await index.add_journal(journal, None, "gw-1")
    video = alice.with_suffix(".mp4")
    await asyncio.to_thread(write_mp4, video)
    await index.set_video(ALICE_ID, VideoState.READY, video)


async def login(client: Client, username: str, *groups: str, admin: bool = False) -> dict[str, str]:
    """Request headers carrying a fresh web session's cookie."""
    identity = Identity(username, frozenset(groups), admin, "local")
    session = await client.app[WEB_SESSIONS].create(identity, "127.0.0.1")
    return {"Cookie": f"deskgate={session.id}"}


async def audit_trail(client: Client) -> list[tuple[str | None, str, str | None, str]]:
    audit: AuditLog = client.app[AUDIT]
    assert (await audit.verify()).ok
    return [(e.user, e.action, e.target, e.outcome) for e in await audit.list()]


async def listed(client: Client, headers: dict[str, str], query: str = "") -> list[str]:
    response = await client.get(f"/api/v1/recordings{query}", headers=headers)
    assert response.status == 200, await response.text()
    return [recording["id"] for recording in (await response.json())["recordings"]]


# ---------------------------------------------------------------- who may see what


def test_recording_access_takes_the_widest_grant_of_the_matching_policies(config: Config) -> None:
    policies = PolicySet(config.policies)
    local, remote = ip_address("127.0.0.1"), ip_address("10.9.1.1")

    def access(source: Any, *groups: str, admin: bool = False) -> RecordingAccess:
        return recording_access(Identity("u", frozenset(groups), admin, "local"), source, policies)

    assert access(local, "operators") == RecordingAccess.NONE
    assert access(local, "trainees") == RecordingAccess.OWN
    assert access(local, "operators", "trainees", "supervisors") == RecordingAccess.ALL
    assert access(local, "reviewers") == RecordingAccess.NONE  # their policy needs another source
    assert access(remote, "reviewers") == RecordingAccess.ALL
    assert access(ip_address("::ffff:10.9.1.1"), "reviewers") == RecordingAccess.ALL
    assert access(local, admin=True) == RecordingAccess.ALL


@pytest.mark.parametrize("path", ["/api/v1/recordings", f"/api/v1/recordings/{ALICE_ID}/video",
                                  f"/api/v1/recordings/{ALICE_ID}/events"])
async def test_without_a_session_everything_is_401(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert await response.json() == {"error": "log in first"}
    response = await client.get(path, headers={"Cookie": "deskgate=forged"})
    assert response.status == 401


async def test_operators_without_recording_access_get_403_and_are_audited(client: Client) -> None:
    headers = await login(client, "alice", "operators")
    for path in ("/api/v1/recordings", f"/api/v1/recordings/{ALICE_ID}/events",
                 f"/api/v1/recordings/{ALICE_ID}/video"):
        response = await client.get(path, headers=headers)
        assert response.status == 403
        assert await response.json() == {"error": "you may not see recordings"}
    assert await audit_trail(client) == [("alice", "recording.list", None, "denied"),
                                         ("alice", "recording.view", ALICE_ID, "denied"),
                                         ("alice", "recording.download", ALICE_ID, "denied")]


async def test_own_access_sees_only_ones_own_recordings(client: Client) -> None:
    headers = await login(client, "tina", "trainees")
    assert await listed(client, headers) == [TINA_ID]
    assert await listed(client, headers, "?user=tina") == [TINA_ID]
    response = await client.get("/api/v1/recordings?user=alice", headers=headers)
    assert response.status == 403
    assert await response.json() == {"error": "you may only see your own recordings"}
    assert (await client.get(f"/api/v1/recordings/{TINA_ID}/events", headers=headers)).status == 200
    assert (await client.get(f"/api/v1/recordings/{ALICE_ID}/events", headers=headers)).status == 403
    assert (await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=headers)).status == 403
    assert await audit_trail(client) == [
        ("tina", "recording.list", None, "allowed"),
        ("tina", "recording.list", None, "allowed"),
        ("tina", "recording.list", None, "denied"),
        ("tina", "recording.view", TINA_ID, "allowed"),
        ("tina", "recording.view", ALICE_ID, "denied"),
        ("tina", "recording.download", ALICE_ID, "denied"),
    ]


async def test_supervisors_and_admins_see_everything(client: Client) -> None:
    assert await listed(client, await login(client, "sue", "supervisors")) == [TINA_ID, BOB_ID, ALICE_ID]
    assert await listed(client, await login(client, "root", admin=True)) == [TINA_ID, BOB_ID, ALICE_ID]


async def test_watch_shows_the_recordings_of_the_watched_groups_only(client: Client) -> None:
    lead = await login(client, "leo", "leads")  # watch: [operators]; no recordings grant
    assert await listed(client, lead) == [BOB_ID]
    assert await listed(client, lead, "?user=tina") == []
    assert await listed(client, lead, "?limit=1") == [BOB_ID]  # narrowed in the query, so limits count right
    assert (await client.get(f"/api/v1/recordings/{BOB_ID}/events", headers=lead)).status == 200
    for other in (TINA_ID, ALICE_ID):  # another group; groups not recorded: only "*" covers that
        refused = await client.get(f"/api/v1/recordings/{other}/events", headers=lead)
        assert refused.status == 403
        assert (await refused.json())["error"].startswith("you may not see ")
    assert (await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=lead)).status == 403
    trail = await audit_trail(client)
    assert trail[-3:] == [("leo", "recording.view", TINA_ID, "denied"), ("leo", "recording.view", ALICE_ID, "denied"),
                          ("leo", "recording.download", ALICE_ID, "denied")]


async def test_watch_extends_own_access_and_star_covers_everyone(client: Client) -> None:
    trainer = await login(client, "tina", "trainers")  # recordings: own, watch: [trainees]: her own and trainees'
    assert await listed(client, trainer) == [TINA_ID]
    assert await listed(client, await login(client, "tom", "trainers")) == [TINA_ID]
    assert await listed(client, await login(client, "ann", "auditors")) == [TINA_ID, BOB_ID, ALICE_ID]
    both = await login(client, "max", "leads", "trainers")
    assert await listed(client, both) == [TINA_ID, BOB_ID]
    assert (await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=both)).status == 403


async def test_access_depends_on_the_source_address(client: Client) -> None:
    headers = await login(client, "rita", "reviewers")
    assert (await client.get("/api/v1/recordings", headers=headers)).status == 403
    from_review_network = {**headers, "X-Forwarded-For": "10.9.1.1"}  # through the trusted proxy
    assert await listed(client, from_review_network) == [TINA_ID, BOB_ID, ALICE_ID]
    trail = [(e.source, e.outcome) for e in await client.app[AUDIT].list()]
    assert trail == [("127.0.0.1", "denied"), ("10.9.1.1", "allowed")]


# ---------------------------------------------------------------- list and filters


async def test_list_fields(client: Client) -> None:
    response = await client.get("/api/v1/recordings?user=alice", headers=await login(client, "sue", "supervisors"))
    (alice,) = (await response.json())["recordings"]
    assert alice == {
        "id": ALICE_ID, "user": "alice", "source": "10.0.0.5", "target": "desk-01", "protocol": "vnc",
        "started": "2026-11-25T08:00:00.000000Z", "ended": "2026-11-25T08:00:31.000000Z", "duration": 31.0,
        "end_reason": "closed", "bytes": alice["bytes"], "keys": 2, "clicks": 4, "video": "ready",
        "groups": None, "display_name": None,  # recorded before groups (and display names) were
    }
    assert alice["bytes"] > 100
    response = await client.get("/api/v1/recordings?user=bob", headers=await login(client, "sue", "supervisors"))
    assert (await response.json())["recordings"][0]["groups"] == ["operators", "staff"]


@pytest.mark.parametrize(("query", "expected"), [
    ("?user=bob", [BOB_ID]),
    ("?target=desk-01", [TINA_ID, BOB_ID, ALICE_ID]),
    ("?target=desk-99", []),
    ("?since=2026-11-25T08:30:00Z", [TINA_ID, BOB_ID]),
    ("?until=2026-11-25", [TINA_ID, BOB_ID, ALICE_ID][1:]),  # a bare date: the whole day
    ("?since=2026-11-25&until=2026-11-25T09:00:00%2B00:00", [ALICE_ID]),
    ("?min_duration=30", [BOB_ID, ALICE_ID]),
    ("?min_duration=1m", [BOB_ID]),
    ("?max_duration=31.5", [TINA_ID, ALICE_ID]),
    ("?min_duration=10&max_duration=10m", [BOB_ID, ALICE_ID]),
    ("?end_reason=idle+timeout", [BOB_ID]),
    ("?limit=1", [TINA_ID]),
    ("?user=&target=&since=", [TINA_ID, BOB_ID, ALICE_ID]),  # empty form fields mean "any"
])
async def test_list_filters(client: Client, query: str, expected: list[str]) -> None:
    assert await listed(client, await login(client, "sue", "supervisors"), query) == expected


@pytest.mark.parametrize(("query", "message"), [
    ("?since=yesterday", "since: 'yesterday' is not an ISO-8601 date or time"),
    ("?until=2026-13-01", "until: '2026-13-01' is not an ISO-8601 date or time"),
    ("?until=9999-12-31", "until: '9999-12-31' is not an ISO-8601 date or time"),
    ("?since=9999-12-31T23:59:59-01:00", "since: '9999-12-31T23:59:59-01:00' is not an ISO-8601 date or time"),
    ("?since=2026-11-26&until=2026-11-25", "since must be before until"),
    ("?min_duration=abc", "min_duration: 'abc' is not a duration"),
    ("?max_duration=-5", "max_duration: '-5' is not a duration"),
    ("?max_duration=1e999", "max_duration: '1e999' is not a duration"),
    ("?min_duration=10m&max_duration=1m", "min_duration must not be greater than max_duration"),
    ("?limit=0", "limit: '0' is not a whole number from 1 to 1000"),
    ("?limit=1001", "limit: '1001' is not a whole number from 1 to 1000"),
    ("?limit=ten", "limit: 'ten' is not a whole number from 1 to 1000"),
    ("?user=a&user=b", "give user at most once"),
    ("?sort=asc", "unknown query parameter 'sort'"),
    ("?user=" + "x" * 256, "user is longer than 255 characters"),
])
async def test_bad_filters_are_400_with_a_clear_message(client: Client, query: str, message: str) -> None:
    response = await client.get(f"/api/v1/recordings{query}", headers=await login(client, "sue", "supervisors"))
    assert response.status == 400
    assert message in (await response.json())["error"]


def test_parse_list_filters_converts_types() -> None:
    filters = parse_list_filters(MultiDict({"since": "2026-11-25T09:00:00+01:00", "min_duration": "1h30m",
                                            "max_duration": "7200.5", "limit": "20", "target": " desk-01 "}))
    assert filters == {"target": "desk-01", "since": datetime(2026, 11, 25, 8, tzinfo=UTC), "min_duration": 5400.0,
                       "max_duration": 7200.5, "limit": 20}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*LIST_PARAMETERS, "x"]), st.text(max_size=40)), max_size=6))
def test_parse_list_filters_raises_only_value_error(pairs: list[tuple[str, str]]) -> None:
    try:
        filters = parse_list_filters(MultiDict(pairs))
    except ValueError as exc:
        assert str(exc)
    else:
        assert set(filters) <= set(LIST_PARAMETERS)
        assert 1 <= filters.get("limit", 1) <= 1000


# ---------------------------------------------------------------- video


async def test_video_is_served_whole_with_accept_ranges(client: Client, config: Config) -> None:
    video = next(config.storage.recordings.rglob("*.mp4")).read_bytes()
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=await login(client, "sue", "supervisors"))
    assert response.status == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == video
    with av.open(next(config.storage.recordings.rglob("*.mp4")).as_posix()) as container:
        assert container.streams.video[0].codec_context.name == "h264"


@pytest.mark.parametrize(("range_", "start", "stop"), [("bytes=0-99", 0, 100), ("bytes=100-299", 100, 300),
                                                       ("bytes=-50", -50, None), ("bytes=1000-", 1000, None)])
async def test_video_ranges_are_206_with_content_range(client: Client, config: Config, range_: str, start: int,
                                                       stop: int | None) -> None:
    video = next(config.storage.recordings.rglob("*.mp4")).read_bytes()
    expected = video[start:stop]
    headers = {**await login(client, "sue", "supervisors"), "Range": range_}
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=headers)
    assert response.status == 206
    first = start % len(video)
    assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(video)}"
    assert await response.read() == expected
    (entry,) = await client.app[AUDIT].list()
    assert (entry.action, entry.target, entry.outcome, entry.detail) == ("recording.download", ALICE_ID, "allowed",
                                                                         {"range": range_})


async def test_an_encrypted_video_is_decrypted_by_range_and_a_lost_key_is_a_counted_500(
    client: Client, config: Config, tmp_path: Path
) -> None:
    path = next(config.storage.recordings.rglob("*.mp4"))
    video = path.read_bytes()
    lost = RecordingKeyring.load(tmp_path / "lost-keys")  # never installed: this process cannot find it
    encrypt_in_place(path, lost, ALICE_ID)
    headers = await login(client, "sue", "supervisors")
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=headers)
    assert response.status == 500
    assert f"restore the file {FIRST_KEY_ID}.key from a backup" in (await response.json())["error"]
    errors = client.app[METRICS].recording_key_errors_total
    assert errors.labels(what="export")._value.get() == 1

    kept = RecordingKeyring.load(tmp_path / "kept-keys")
    install(kept)
    path.write_bytes(video)
    encrypt_in_place(path, kept, ALICE_ID)
    assert video[4:12] not in path.read_bytes()
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers={**headers, "Range": "bytes=4-1000"})
    assert response.status == 206 and await response.read() == video[4:1001]
    assert response.headers["Content-Range"] == f"bytes 4-1000/{len(video)}"


async def test_an_unsatisfiable_range_is_416(client: Client) -> None:
    headers = {**await login(client, "sue", "supervisors"), "Range": "bytes=99999999-"}
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/video", headers=headers)
    assert response.status == 416


async def test_a_video_not_rendered_yet_is_404(client: Client) -> None:
    response = await client.get(f"/api/v1/recordings/{BOB_ID}/video", headers=await login(client, "sue", "supervisors"))
    assert response.status == 404
    assert await response.json() == {"error": f"the video of {BOB_ID} is not rendered yet (state: none)"}


async def test_a_video_path_outside_the_recordings_directory_is_never_served(client: Client, tmp_path: Path) -> None:
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"not for you")
    link = client.app[SETTINGS].current.config.storage.recordings / "link.mp4"
    link.symlink_to(outside)
    headers = await login(client, "sue", "supervisors")
    for path in (outside, link, client.app[SETTINGS].current.config.storage.recordings / ".." / "secret.mp4", Path("/etc/passwd")):
        await client.app[RECORDING_INDEX].set_video(BOB_ID, VideoState.READY, path)
        response = await client.get(f"/api/v1/recordings/{BOB_ID}/video", headers=headers)
        assert response.status == 404
        assert await response.json() == {"error": f"the video of {BOB_ID} is missing"}


@pytest.mark.parametrize("raw_path", [
    "/api/v1/recordings/..%2F..%2Fetc%2Fpasswd/video",
    "/api/v1/recordings/%2e%2e/video",
    "/api/v1/recordings/%2e%2e%2f%2e%2e%2fetc%2fpasswd/events",
    "/api/v1/recordings/../../etc/passwd/video",
    f"/api/v1/recordings/{ALICE_ID}%00/video",
    f"/api/v1/recordings/{ALICE_ID.upper()}/video",
    "/api/v1/recordings/20261125T080000Z-0000a11c.mp4/video",
    "/api/v1/recordings/%EF%BC%92%EF%BC%90261125T080000Z-0000a11c/video",  # fullwidth digits
])
async def test_ids_that_are_not_session_ids_are_refused(client: Client, raw_path: str) -> None:
    response = await client.get(URL(raw_path, encoded=True), headers=await login(client, "sue", "supervisors"))
    assert response.status in (400, 404)
    body = await response.read()
    assert b"root:" not in body and b"ftyp" not in body
    assert await client.app[AUDIT].list() == []  # nothing was accessed


async def test_an_unknown_recording_is_404(client: Client) -> None:
    headers = await login(client, "sue", "supervisors")
    for suffix in ("video", "events"):
        response = await client.get(f"/api/v1/recordings/20261125T080000Z-ffffffff/{suffix}", headers=headers)
        assert response.status == 404
        assert await response.json() == {"error": "there is no recording 20261125T080000Z-ffffffff"}


# ---------------------------------------------------------------- events and activity


async def test_events_and_activity_for_the_timeline(client: Client) -> None:
    response = await client.get(f"/api/v1/recordings/{ALICE_ID}/events", headers=await login(client, "sue", "supervisors"))
    assert response.status == 200
    body = await response.json()
    assert body["recording"]["id"] == ALICE_ID and body["recording"]["video"] == "ready"
    assert body["events"] == [
        {"t": 0.0, "type": "session_start"},
        {"t": 20.25, "type": "clipboard_blocked", "direction": "to_local", "length": 42},
        {"t": 30.0, "type": "resize", "width": 800, "height": 600},
        {"t": 31.0, "type": "session_end", "reason": "closed"},
    ]
    assert body["activity"] == [{"t": 0.0, "keys": 2, "clicks": 1, "screen": 0},
                                {"t": 10.0, "keys": 0, "clicks": 3, "screen": 64}]
    assert body["idle"] == [{"from": 15.0, "to": 31.0}]  # no input and no screen change for 10 s or more
    assert await audit_trail(client) == [("sue", "recording.view", ALICE_ID, "allowed")]


# ---------------------------------------------------------------- fail-closed audit


async def test_nothing_is_served_when_the_access_cannot_be_audited(client: Client,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_record(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(client.app[AUDIT], "record", broken_record)
    headers = await login(client, "sue", "supervisors")
    for path in ("/api/v1/recordings", f"/api/v1/recordings/{ALICE_ID}/events",
                 f"/api/v1/recordings/{ALICE_ID}/video"):
        response = await client.get(path, headers=headers)
        assert response.status == 500
        assert ALICE_ID not in await response.text()
