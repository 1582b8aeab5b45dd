"""RecordingService with a real database, disk and render workers: what happens around a session's journal."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_network
from pathlib import Path

import pytest
from aiohttp import web

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config, load_config
from gateway.journals import RecordingContext, SessionJournal
from gateway.policy import Policy
from gateway.recording_service import RecordingService, RecordingSettings
from gateway.rfb.messages import (
    RGBX8888,
    Encoding,
    Rectangle,
    ServerInit,
    encode_update_header,
)
from gateway.sessions import LiveSession
from gateway.web.app import create_app
from gateway.web.keys import AUDIT, METRICS, RECORDING_INDEX, RECORDINGS
from recorder.errors import RecordingUnavailable
from recorder.index import RecordingIndex, VideoState
from recorder.journal import JournalFile, JournalReader, RecordKind, encode_batched_record
from recorder.recovery import CRASHED_REASON
from recorder.worker import RenderPool
from tests.text_keys import TEXT_KEYS

KEY = bytes(range(32))
WIDTH, HEIGHT = 64, 48
POLICY = Policy("operators", ("operators",), (ip_network("127.0.0.0/8"),), ("desk-*",))


def live_session(number: int = 1) -> LiveSession:
    return LiveSession(id=f"s-{number}", protocol="vnc", username="alice", source="127.0.0.1", target="desk-01",
                       web_session_id="w", groups=frozenset({"operators", "night-shift"}))


def raw_screen(colour: tuple[int, int, int]) -> bytes:
    """A FramebufferUpdate painting the whole screen in ``colour`` (RGBX8888: little-endian BGRX)."""
    pixel = bytes((colour[2], colour[1], colour[0], 0))
    return encode_update_header(1) + Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW).encode() + pixel * WIDTH * HEIGHT


def service(root: Path, store: Store, render_pool: RenderPool | None = None) -> RecordingService:
    return RecordingService(RecordingSettings(root, KEY, 3600.0), Metrics(), RecordingIndex(store, TEXT_KEYS),
                            AuditLog(store), render_pool)


async def test_a_finished_session_is_indexed_and_its_video_rendered(tmp_path: Path, store: Store) -> None:
    recordings = service(tmp_path / "recordings", store, RenderPool(1))
    live = live_session()
    recorder = await recordings.start(live, ServerInit(WIDTH, HEIGHT, RGBX8888, b"desk"), POLICY)
    recorder.server_data(raw_screen((200, 40, 10)))
    await recordings.finish(live, recorder, "the browser closed the session")
    await recordings.close()  # waits for indexing and rendering

    sealed = await recorder.close("closed again: returns how it was sealed")
    assert sealed.sealed
    row = await RecordingIndex(store, TEXT_KEYS).get(recorder.recording_id)
    assert row is not None and row.video_state == VideoState.READY and row.sha256 is not None
    assert row.end_reason == "the browser closed the session"
    assert row.user_groups == ("night-shift", "operators")  # the user's groups, for supervisors' watch
    assert row.video_path == str(sealed.path.with_suffix(".mp4")) and Path(row.video_path).stat().st_size > 0


async def test_storage_that_cannot_hold_a_journal_refuses_and_audits(tmp_path: Path, store: Store) -> None:
    (tmp_path / "recordings").write_text("not a directory")
    recordings = service(tmp_path / "recordings", store)
    with pytest.raises(RecordingUnavailable, match="not writable"):
        await recordings.start(live_session(), ServerInit(WIDTH, HEIGHT, RGBX8888, b"desk"), POLICY)
    (event,) = await AuditLog(store).list(limit=None)
    assert (event.action, event.outcome, event.user, event.target) == ("recording.start", "failure", "alice",
                                                                       "desk-01")
    assert "not writable" in (event.reason or "")


async def test_recovery_finalizes_indexes_and_renders_a_crashed_sessions_journal(
    tmp_path: Path, store: Store
) -> None:
    # What a gateway killed mid-session leaves: a journal with data, no END, no seal, nobody holding it.
    first = service(tmp_path / "recordings", store)
    live = live_session()
    recorder = await first.start(live, ServerInit(WIDTH, HEIGHT, RGBX8888, b"desk"), POLICY)
    path = recorder.path
    await recorder.close("unused")  # then cut back to before its end, as a crash would have left it
    reader = JournalReader(path)
    cut = _session_end_offset(path)
    batches_before = 1 + len({record.position for record in reader if record.position < cut})  # 1: the HEADER's
    journal = JournalFile.reopen(path)
    assert journal is not None and reader.codec is not None
    journal.truncate(cut)
    journal.write_batch(reader.codec, batches_before,
                        encode_batched_record(RecordKind.SERVER_DATA, 250_000, raw_screen((0, 128, 255))))
    journal.close()
    path.with_name(path.name + ".seal").unlink()

    second = service(tmp_path / "recordings", store, RenderPool(1))
    assert await second.recover() == 1
    await second.close()
    row = await RecordingIndex(store, TEXT_KEYS).get(recorder.recording_id)
    assert row is not None and row.end_reason == CRASHED_REASON and row.video_state == VideoState.READY
    assert row.duration == pytest.approx(0.25, abs=0.001)  # ended at its last record


def _session_end_offset(path: Path) -> int:
    """The offset of the session_end EVENT (the close wrote it, then END)."""
    records = list(JournalReader(path))
    end_event = next(r for r in records if r.kind == RecordKind.EVENT and b"session_end" in r.payload)
    return end_event.position



# ---------------------------------------------------------------- how the application gets its recordings


class NoRecordings:
    """A SessionRecordings that refuses every session: enough to see which one the application uses."""

    async def start(self, live: LiveSession, server_init: ServerInit, policy: Policy) -> SessionJournal:
        raise RecordingUnavailable("not in this test")

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        pass


def app_config(tmp_path: Path) -> Config:
    path = tmp_path / "deskgate.yaml"
    path.write_text(textwrap.dedent("""\
        auth:
          local: {users_file: users.yaml}
        storage: {recordings: recordings, database: "sqlite:///deskgate.db"}
        """))
    return load_config(path)


async def test_create_app_builds_its_recordings_at_start_up_with_the_factory_it_is_given(tmp_path: Path) -> None:
    config, given, events = app_config(tmp_path), NoRecordings(), []

    @asynccontextmanager
    async def recordings(context: RecordingContext) -> AsyncIterator[NoRecordings]:
        events.append(context)
        yield given
        events.append("closed")

    app = create_app(config, recordings=recordings)
    runner = web.AppRunner(app)
    assert events == []
    await runner.setup()
    try:
        assert app[RECORDINGS] is given
        assert events == [RecordingContext(config, app[METRICS], app[RECORDING_INDEX], app[AUDIT])]
    finally:
        await runner.cleanup()
    assert events[-1] == "closed"


async def test_by_default_the_application_records_with_the_recording_service(tmp_path: Path) -> None:
    app = create_app(app_config(tmp_path))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert isinstance(app[RECORDINGS], RecordingService)
        assert app[RECORDINGS].settings.root == tmp_path / "recordings"
    finally:
        await runner.cleanup()
