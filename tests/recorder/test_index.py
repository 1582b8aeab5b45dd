"""Journal summaries (counts, activity, events, torn and crashed journals) and the recording index."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

import recorder.index as index_module
from base.db import Store
from gateway.rfb.messages import (
    RGBX8888,
    ClientCutText,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    QEMUExtendedKeyEvent,
    SetEncodings,
    SetPixelFormat,
)
from recorder.errors import JournalCorrupt
from recorder.index import RecordingIndex, VideoState, Visibility
from recorder.journal import (
    JOURNAL_MAGIC,
    JournalFile,
    RecordKind,
    encode_json,
    encode_record,
    iso_utc,
    recording_path,
)
from recorder.records import SessionEvent
from recorder.summary import ActivityBucket, RecordingSummary, TimelineEvent, quiet_stretches, summarize_journal
from recorder.tables import recording_sources, recordings
from tests.text_keys import TEXT_KEYS

STARTED = datetime(2026, 11, 25, 8, 0, 0, 250000, tzinfo=UTC)
SESSION_ID = "20261125T080000Z-0123abcd"

Record = tuple[RecordKind, float, bytes]  # kind, seconds since start, payload


def journal_header(session_id: str = SESSION_ID, start: datetime = STARTED, **changes: Any) -> dict[str, Any]:
    header = {
        "format": 1, "session_id": session_id, "user": "alice", "source": "10.0.0.5", "target": "desk-01",
        "protocol": "vnc", "started": iso_utc(start.timestamp()), "started_epoch": start.timestamp(),
        "width": 1024, "height": 768, "pixel_format": dataclasses.asdict(RGBX8888), "desktop_name": "desk",
        "gateway_version": "0.1.0", "node": "gw-1", "policy": "operators", "record_input": "full",
        "clipboard": "off",
    }
    header.update(changes)
    return header


def event(t: float, type_: str, **fields: Any) -> Record:
    return RecordKind.EVENT, t, encode_json({"type": type_, **fields})


def client(t: float, *messages: Any) -> Record:
    return RecordKind.CLIENT_DATA, t, b"".join(message.encode() for message in messages)


def end_record(t: float, reason: str = "closed", started: datetime = STARTED) -> Record:
    ended = started.timestamp() + t
    return RecordKind.END, t, encode_json({"ended": iso_utc(ended), "ended_epoch": ended, "reason": reason,
                                           "crashed": False, "torn_at": None})


def write_journal(root: Path, records: Iterable[Record], header: dict[str, Any] | None = None) -> Path:
    """A journal under ``root`` as the gateway writes it: magic, HEADER, then ``records``."""
    header = header or journal_header()
    path = recording_path(root, header["session_id"])
    with JournalFile.create(path, header) as journal:
        for kind, t, payload in records:
            journal.write(encode_record(kind, round(t * 1e6), payload))
    return path


def full_session(start: datetime = STARTED) -> list[Record]:
    """A session with full input: 2 key presses in the first bucket, clicks in the first and third."""
    return [
        event(0.0, "session_start"),
        client(0.0, SetPixelFormat(RGBX8888), SetEncodings((16, 0)), FramebufferUpdateRequest(False, 0, 0, 1024, 768)),
        client(1.0, KeyEvent(True, 0x61), KeyEvent(False, 0x61), QEMUExtendedKeyEvent(True, 0x62, 0x30)),
        client(2.0, PointerEvent(0, 10, 10), PointerEvent(1, 10, 10), PointerEvent(1, 12, 12)),  # drag: one press
        client(3.0, PointerEvent(0, 12, 12), ClientCutText(b"hello")),
        # A message split across two records, as the proxy's reads may cut it.
        (RecordKind.CLIENT_DATA, 11.0, PointerEvent(0b101, 5, 5).encode()[:3]),
        (RecordKind.CLIENT_DATA, 11.5, PointerEvent(0b101, 5, 5).encode()[3:]),  # two buttons at once
        client(12.0, PointerEvent(0b100, 5, 5), PointerEvent(0b110, 5, 5)),  # one more press, one held
        (RecordKind.SERVER_DATA, 12.5, b"\x00" * 64),
        event(20.25, "clipboard_blocked", direction="to_local", length=42),
        event(30.0, "resize", width=800, height=600),
        event(31.0, "session_end", reason="closed"),
        end_record(31.0, started=start),
    ]


# ---------------------------------------------------------------- summarize_journal


def test_the_summary_carries_the_users_groups_from_the_header(tmp_path: Path) -> None:
    path = write_journal(tmp_path, full_session(), journal_header(groups=["night-shift", "operators"]))
    assert summarize_journal(path).user_groups == ("night-shift", "operators")


def test_summary_of_a_finished_session_with_full_input(tmp_path: Path) -> None:
    path = write_journal(tmp_path, full_session())
    summary = summarize_journal(path)
    assert (summary.id, summary.user, summary.source, summary.target, summary.protocol) == \
        (SESSION_ID, "alice", "10.0.0.5", "desk-01", "vnc")
    assert summary.started == STARTED
    assert summary.ended == STARTED + timedelta(seconds=31)
    assert summary.duration == pytest.approx(31.0)
    assert summary.end_reason == "closed"
    assert summary.bytes == path.stat().st_size and summary.path == str(path)
    assert (summary.keys, summary.clicks) == (2, 1 + 2 + 1)
    assert summary.activity == [ActivityBucket(0.0, 2, 1), ActivityBucket(10.0, 0, 3, screen=64)]
    assert [event.to_json() for event in summary.events] == [
        {"t": 0.0, "type": "session_start"},
        {"t": 20.25, "type": "clipboard_blocked", "direction": "to_local", "length": 42},
        {"t": 30.0, "type": "resize", "width": 800, "height": 600},
        {"t": 31.0, "type": "session_end", "reason": "closed"},
    ]


def test_summary_of_a_session_with_input_counts_only(tmp_path: Path) -> None:
    def counts(t: float, keys: int, clicks: int) -> Record:
        return RecordKind.INPUT_COUNTS, t, encode_json({"keys": keys, "pointer": 40, "clicks": clicks, "cut_text": 0})

    records = [client(0.0, SetEncodings((16,))), counts(1.0, 7, 1), counts(2.0, 3, 0), counts(9.0, 0, 2),
               counts(26.0, 5, 5), end_record(27.0, "idle timeout")]
    summary = summarize_journal(write_journal(tmp_path, records, journal_header(record_input="counts")))
    assert (summary.keys, summary.clicks) == (15, 8)
    assert summary.activity == [ActivityBucket(0.0, 10, 1), ActivityBucket(5.0, 0, 2), ActivityBucket(25.0, 5, 5)]
    assert summary.end_reason == "idle timeout"


def test_summary_of_a_torn_journal_stops_at_the_last_whole_record(tmp_path: Path) -> None:
    path = write_journal(tmp_path, full_session()[:4])
    with path.open("ab") as file:  # a record cut short by a crash
        file.write(encode_record(RecordKind.CLIENT_DATA, 5_000_000, KeyEvent(True, 0x63).encode())[:-3])
    summary = summarize_journal(path)
    assert summary.ended is None and summary.end_reason is None
    assert summary.duration == pytest.approx(2.0)  # the last whole record's time
    assert (summary.keys, summary.clicks) == (2, 1)
    assert summary.bytes == path.stat().st_size


def test_summary_of_a_recovered_journal_uses_the_end_epoch_when_there_is_no_end_time(tmp_path: Path) -> None:
    crashed_end = encode_json({"reason": "gateway crashed", "crashed": True,
                               "ended_epoch": STARTED.timestamp() + 2.0, "torn_at": 999})
    summary = summarize_journal(write_journal(tmp_path, [*full_session()[:4], (RecordKind.END, 2.0, crashed_end)]))
    assert summary.end_reason == "gateway crashed"
    assert summary.ended is not None and abs(summary.ended - (STARTED + timedelta(seconds=2))) < timedelta(
        microseconds=2)
    assert summary.duration == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize(("end", "seconds"), [
    ({"ended": "not a time", "ended_epoch": STARTED.timestamp() + 2.5}, 2.5),
    ({"ended_epoch": float("inf")}, 3.0),  # neither is usable: the END record's own time
    ({}, 3.0),
])
def test_an_end_record_without_a_usable_time_still_ends_the_recording(tmp_path: Path, end: dict[str, Any],
                                                                      seconds: float) -> None:
    payload = json.dumps({"reason": "closed", **end}).encode()  # json.dumps writes Infinity, as a broken writer might
    summary = summarize_journal(write_journal(tmp_path, [event(1.0, "idle_warning"), (RecordKind.END, 3.0, payload)]))
    assert summary.end_reason == "closed"
    assert summary.ended is not None and abs(summary.ended - (STARTED + timedelta(seconds=seconds))) < timedelta(
        microseconds=2)
    assert summary.duration == pytest.approx(seconds, abs=1e-5)


def test_implausible_input_counts_are_ignored(tmp_path: Path) -> None:
    def counts(t: float, keys: object) -> Record:
        return RecordKind.INPUT_COUNTS, t, json.dumps({"keys": keys, "clicks": 1}).encode()

    records = [counts(1.0, 10**30), counts(2.0, -5), counts(3.0, True), counts(4.0, "7"), counts(5.0, 4)]
    summary = summarize_journal(write_journal(tmp_path, records, journal_header(record_input="counts")))
    assert (summary.keys, summary.clicks) == (4, 5)


def test_unreadable_client_data_stops_the_counts_but_not_the_summary(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    records = [client(1.0, KeyEvent(True, 0x61)), (RecordKind.CLIENT_DATA, 2.0, b"\xee\x00"),
               client(3.0, KeyEvent(True, 0x62)), end_record(4.0)]
    summary = summarize_journal(write_journal(tmp_path, records))
    assert summary.keys == 1 and summary.end_reason == "closed"
    assert "input counts stop here" in caplog.text


def test_malformed_json_records_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [(RecordKind.EVENT, 1.0, b"{not json"), (RecordKind.EVENT, 1.5, b"[1, 2]"),
               (RecordKind.EVENT, 1.6, encode_json({"no": "type"})), (RecordKind.INPUT_COUNTS, 2.0, b"\xff"),
               event(3.0, "idle_warning"), end_record(4.0)]
    summary = summarize_journal(write_journal(tmp_path, records))
    assert [event.to_json() for event in summary.events] == [{"t": 3.0, "type": "idle_warning"}]
    assert caplog.text.count("not a JSON object") == 3


def test_events_are_capped(tmp_path: Path) -> None:
    records = [event(n / 100, "resize", width=800, height=600) for n in range(50)]
    summary = summarize_journal(write_journal(tmp_path, records), max_events=10)
    assert len(summary.events) == 10


@pytest.mark.parametrize(("changes", "message"), [
    ({"user": None}, "no text field 'user'"),
    ({"session_id": "../../etc/passwd"}, "session id '../../etc/passwd' is malformed"),
    ({"started": "yesterday"}, "started: 'yesterday' is not an ISO-8601"),
])
def test_a_header_without_what_the_index_needs_is_corrupt(tmp_path: Path, changes: dict[str, Any],
                                                          message: str) -> None:
    path = tmp_path / "bad.dgj"
    path.parent.mkdir(exist_ok=True)
    with JournalFile.create(path, journal_header(**changes)):
        pass
    with pytest.raises(JournalCorrupt, match=message):
        summarize_journal(path)


def test_a_file_that_is_not_a_journal_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.dgj"
    path.write_bytes(b"GIF89a")
    with pytest.raises(JournalCorrupt):
        summarize_journal(path)


record_strategy = st.tuples(
    st.sampled_from([RecordKind.CLIENT_DATA, RecordKind.EVENT, RecordKind.INPUT_COUNTS, RecordKind.SERVER_DATA,
                     RecordKind.END]),
    st.binary(max_size=64) | st.sampled_from([b"{}", b'{"type": 5}', b'{"keys": 1e400}', b"\x04\x01\x00\x00",
                                              b"\x05\xff\x00\x01\x00\x01", b"null", b'{"ended": 1}']),
)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(record_strategy, max_size=12), tail=st.binary(max_size=16))
def test_summarize_journal_survives_any_records(records: list[tuple[RecordKind, bytes]], tail: bytes) -> None:
    """Whatever a journal holds after a good header, summarizing it gives a summary (never another exception)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.dgj"
        body = b"".join(encode_record(kind, n * 100_000, payload) for n, (kind, payload) in enumerate(records))
        path.write_bytes(JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, encode_json(journal_header()))
                         + body + tail)
        summary = summarize_journal(path)
    assert summary.id == SESSION_ID
    assert summary.keys >= 0 and summary.clicks >= 0 and summary.duration >= 0
    assert [bucket.t for bucket in summary.activity] == sorted({bucket.t for bucket in summary.activity})


# ---------------------------------------------------------------- RecordingIndex


def summary_of(recording_id: str, user: str, target: str, started: datetime, duration: float,
               end_reason: str | None = "closed") -> RecordingSummary:
    return RecordingSummary(id=recording_id, user=user, source="10.0.0.5", target=target, protocol="vnc",
                            started=started, ended=started + timedelta(seconds=duration), duration=duration,
                            end_reason=end_reason, bytes=1000, keys=1, clicks=0, path=f"/r/{recording_id}.dgj",
                            events=[TimelineEvent(1.0, SessionEvent.resize(1, 2))],
                            activity=[ActivityBucket(0.0, 1, 0)])


SAMPLES = [
    summary_of("20261124T230000Z-00000001", "alice", "desk-01", datetime(2026, 11, 24, 23, tzinfo=UTC), 60),
    summary_of("20261125T080000Z-00000002", "alice", "desk-02", datetime(2026, 11, 25, 8, tzinfo=UTC), 3600,
               "idle timeout"),
    summary_of("20261125T090000Z-00000003", "bob", "desk-01", datetime(2026, 11, 25, 9, tzinfo=UTC), 600),
    summary_of("20261126T000000Z-00000004", "bob", "desk-02", datetime(2026, 11, 26, tzinfo=UTC), 5,
               "gateway crashed"),
]


@pytest.fixture
async def index(store: Store) -> RecordingIndex:
    index = RecordingIndex(store, TEXT_KEYS)
    for summary in SAMPLES:
        await index.add(summary, sha256=None, node="gw-1")
    return index


async def test_add_then_get_events_and_activity(tmp_path: Path, store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    summary = await index.add_journal(write_journal(tmp_path, full_session()), "ab" * 32, "gw-1")
    row = await index.get(SESSION_ID)
    assert row is not None
    assert (row.user, row.target, row.started, row.ended, row.keys, row.clicks, row.bytes, row.path) == \
        (summary.user, summary.target, summary.started, summary.ended, 2, 4, summary.bytes, summary.path)
    assert (row.sha256, row.node, row.video_state, row.video_path) == ("ab" * 32, "gw-1", VideoState.NONE, None)
    assert await index.events(SESSION_ID) == summary.events
    assert await index.activity(SESSION_ID) == summary.activity
    assert row.to_json() == {
        "id": SESSION_ID, "user": "alice", "source": "10.0.0.5", "target": "desk-01", "protocol": "vnc",
        "started": "2026-11-25T08:00:00.250000Z", "ended": "2026-11-25T08:00:31.250000Z", "duration": 31.0,
        "end_reason": "closed", "bytes": summary.bytes, "keys": 2, "clicks": 4, "video": "none",
        "groups": None,  # the journal's HEADER predates recorded groups
        "display_name": None,  # nor does it name the user otherwise
    }
    assert await index.get("20261125T080000Z-ffffffff") is None
    assert await index.events("20261125T080000Z-ffffffff") == []
    assert await index.activity("20261125T080000Z-ffffffff") == []


async def test_adding_again_replaces_the_summary_but_keeps_the_video(index: RecordingIndex) -> None:
    first = SAMPLES[0]
    assert await index.set_video(first.id, VideoState.READY, Path("/r/v.mp4"))
    await index.add(dataclasses.replace(first, bytes=5000, events=[], end_reason="gateway crashed"), "cd" * 32, "gw-2")
    row = await index.get(first.id)
    assert row is not None
    assert (row.bytes, row.end_reason, row.sha256, row.node) == (5000, "gateway crashed", "cd" * 32, "gw-2")
    assert (row.video_state, row.video_path) == (VideoState.READY, "/r/v.mp4")
    assert await index.events(first.id) == []


async def test_set_video_states(index: RecordingIndex) -> None:
    recording_id = SAMPLES[1].id
    assert await index.set_video(recording_id, VideoState.PENDING)
    row = await index.get(recording_id)
    assert row is not None and (row.video_state, row.video_path) == (VideoState.PENDING, None)
    assert await index.set_video(recording_id, VideoState.FAILED)
    assert not await index.set_video("20261125T080000Z-ffffffff", VideoState.READY, "/x.mp4")


def ids(rows: Iterable[Any]) -> list[str]:
    return [row.id[-1] for row in rows]


async def test_search_is_newest_first_and_filters(index: RecordingIndex) -> None:
    day = datetime(2026, 11, 25, tzinfo=UTC)
    assert ids(await index.search()) == ["4", "3", "2", "1"]
    assert ids(await index.search(user="alice")) == ["2", "1"]
    assert ids(await index.search(target="desk-01")) == ["3", "1"]
    assert ids(await index.search(user="bob", target="desk-02")) == ["4"]
    assert ids(await index.search(since=day, until=day + timedelta(days=1))) == ["3", "2"]
    assert ids(await index.search(since=datetime(2026, 11, 25, 9, tzinfo=UTC))) == ["4", "3"]  # inclusive
    assert ids(await index.search(until=datetime(2026, 11, 25, 9, tzinfo=UTC))) == ["2", "1"]  # exclusive
    assert ids(await index.search(min_duration=60, max_duration=600)) == ["3", "1"]
    assert ids(await index.search(end_reason="gateway crashed")) == ["4"]
    assert ids(await index.search(limit=2)) == ["4", "3"]
    assert await index.search(user="carol") == []


#: Group names a directory may hold, with characters that mean something to JSON and to LIKE.
AWKWARD_GROUPS = {"1": ("ops",), "2": ("Ops", "sales_team"), "3": ('x","ops', "a%b"), "4": None, "5": ("ops\\",)}


async def awkward_index(store: Store) -> RecordingIndex:
    index = RecordingIndex(store, TEXT_KEYS)
    for n, groups in AWKWARD_GROUPS.items():
        summary = summary_of(f"20261125T08000{n}Z-0000000{n}", f"user{n}", "desk-01",
                             datetime(2026, 11, 25, 8, 0, int(n), tzinfo=UTC), 60)
        await index.add(dataclasses.replace(summary, user_groups=groups), sha256=None, node="gw-1")
    return index


async def check_visibility(index: RecordingIndex) -> None:
    """Who finds what: users by name, groups by exact (case-sensitive) membership, unknown groups never."""
    async def visible(users: Iterable[str] = (), groups: Iterable[str] = ()) -> list[str]:
        return ids(await index.search(visible=Visibility(frozenset(users), frozenset(groups))))

    assert await visible(groups={"ops"}) == ["1"]
    assert await visible(groups={"Ops"}) == ["2"]
    assert await visible(groups={"sales_team"}) == ["2"] and await visible(groups={"sales%"}) == []
    assert await visible(groups={'x","ops'}) == ["3"] and await visible(groups={"a%b"}) == ["3"]
    assert await visible(groups={"ops\\"}) == ["5"]
    assert await visible(groups={"op", "s"}) == []
    assert await visible(users={"user4"}, groups={"ops"}) == ["4", "1"]
    assert await visible() == []
    row = await index.get("20261125T080003Z-00000003")
    assert row is not None and row.user_groups == ('a%b', 'x","ops') and row.to_json()["groups"] == ['a%b', 'x","ops']


async def test_search_narrowed_to_what_a_viewer_may_see(store: Store) -> None:
    await check_visibility(await awkward_index(store))


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_search_limit_is_bounded(index: RecordingIndex, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        await index.search(limit=limit)


# ---------------------------------------------------------------- screen activity and quiet stretches


def test_screen_updates_count_in_the_activity_buckets(tmp_path: Path) -> None:
    records = [(RecordKind.SERVER_DATA, 0.5, b"\x00" * 100), (RecordKind.SERVER_DATA, 4.9, b"\x00" * 20),
               (RecordKind.SERVER_DATA, 42.0, b"\x00" * 7), client(43.0, KeyEvent(True, 0x61)), end_record(60.0)]
    summary = summarize_journal(write_journal(tmp_path, records))
    assert summary.activity == [ActivityBucket(0.0, 0, 0, 120), ActivityBucket(40.0, 1, 0, 7)]
    assert (summary.keys, summary.clicks) == (1, 0)


@pytest.mark.parametrize(("buckets", "duration", "min_seconds", "expected"), [
    ([], 30.0, 10.0, [(0.0, 30.0)]),
    ([(0.0, 1, 0, 0), (5.0, 0, 0, 10)], 10.0, 10.0, []),
    ([(0.0, 1, 0, 0), (40.0, 0, 0, 10), (45.0, 0, 2, 0), (100.0, 3, 0, 0)], 130.0, 10.0,
     [(5.0, 40.0), (50.0, 100.0), (105.0, 130.0)]),
    ([(0.0, 1, 0, 0), (40.0, 0, 0, 10), (45.0, 0, 2, 0), (100.0, 3, 0, 0)], 130.0, 40.0, [(50.0, 100.0)]),
    ([(10.0, 0, 0, 5), (20.0, 0, 0, 5)], 24.0, 10.0, [(0.0, 10.0)]),  # the end is within 10 s of the last bucket
    ([(0.0, 0, 0, 0), (15.0, 1, 0, 0)], 20.0, 10.0, [(0.0, 15.0)]),  # an empty bucket is no activity
])
def test_quiet_stretches(buckets: list[tuple[float, int, int, int]], duration: float, min_seconds: float,
                         expected: list[tuple[float, float]]) -> None:
    stretches = quiet_stretches([ActivityBucket(*bucket) for bucket in buckets], duration, min_seconds)
    assert stretches is not None
    assert [(stretch.start, stretch.end) for stretch in stretches] == expected
    assert [stretch.to_json() for stretch in stretches] == [{"from": a, "to": b} for a, b in expected]


def test_quiet_stretches_are_unknown_without_screen_counts() -> None:
    assert quiet_stretches([ActivityBucket(0.0, 1, 0, None)], 60.0) is None


async def test_quiet_stretches_of_an_indexed_recording(tmp_path: Path, store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    records = [client(1.0, KeyEvent(True, 0x61)), (RecordKind.SERVER_DATA, 31.0, b"\x01" * 8), end_record(60.0)]
    await index.add_journal(write_journal(tmp_path, records), None, "gw-1")
    stretches = await index.quiet_stretches(SESSION_ID)
    assert stretches is not None and [(s.start, s.end) for s in stretches] == [(5.0, 30.0), (35.0, 60.0)]
    assert await index.quiet_stretches("20261125T080000Z-ffffffff") is None


async def test_activity_indexed_before_screen_counts_reads_as_unknown(store: Store) -> None:
    """Rows written by the previous version hold [t, keys, clicks] lists: their screen is unknown, not quiet."""
    index = RecordingIndex(store, TEXT_KEYS)
    await index.add(SAMPLES[0], sha256=None, node="gw-1")
    for legacy in ("[[0.0, 1, 0]]", "[]"):
        async with store.transaction() as connection:
            await connection.execute(update(recordings).values(activity=legacy))
        assert await index.quiet_stretches(SAMPLES[0].id) is None
    assert await index.activity(SAMPLES[0].id) == []


# ---------------------------------------------------------------- search: part of a name, source, event


async def test_search_by_part_of_the_user_name(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    for n, user in enumerate(["alice", "Alicia", "malice", "bob", "a_b", "a%b", "佐藤花子"], start=1):
        await index.add(dataclasses.replace(SAMPLES[0], id=f"20261125T080000Z-0000000{n}", user=user,
                                            started=SAMPLES[0].started + timedelta(minutes=n)), None, "gw-1")
    assert ids(await index.search(user_contains="lic")) == ["3", "2", "1"]
    assert ids(await index.search(user_contains="ALI")) == ["3", "2", "1"]  # case ignored
    assert ids(await index.search(user_contains="_")) == ["5"]  # LIKE's wildcards are plain characters
    assert ids(await index.search(user_contains="%")) == ["6"]
    assert ids(await index.search(user_contains="花")) == ["7"]
    assert ids(await index.search(user="alice")) == ["1"]  # exact stays exact
    assert ids(await index.search(user="alice", user_contains="lic")) == ["1"]


async def test_search_by_source_address_or_network(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    sources = ["10.0.0.5", "10.0.0.200", "10.0.1.5", "192.168.1.9", "2001:db8::7", "2001:db8:1::7", "not an ip"]
    for n, source in enumerate(sources, start=1):
        await index.add(dataclasses.replace(SAMPLES[0], id=f"20261125T080000Z-0000000{n}", source=source,
                                            started=SAMPLES[0].started + timedelta(minutes=n)), None, "gw-1")
    assert ids(await index.search(source=ip_network("10.0.0.5"))) == ["1"]
    assert ids(await index.search(source=ip_network("10.0.0.0/24"))) == ["2", "1"]
    assert ids(await index.search(source=ip_network("10.0.0.0/8"))) == ["3", "2", "1"]
    assert ids(await index.search(source=ip_network("0.0.0.0/0"))) == ["4", "3", "2", "1"]
    assert ids(await index.search(source=ip_network("::ffff:10.0.0.0/120"))) == ["2", "1"]  # IPv4-mapped
    assert ids(await index.search(source=ip_network("2001:db8::/32"))) == ["6", "5"]
    assert ids(await index.search(source=ip_network("2001:db8::/48"))) == ["5"]
    assert ids(await index.search(source=ip_network("2001:db8::7"))) == ["5"]
    assert ids(await index.search(source=ip_network("::/0"))) == ["6", "5"]
    assert await index.search(source=ip_network("10.0.2.0/24")) == []


async def test_source_search_fills_in_recordings_indexed_before_the_source_table(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    await index.add(SAMPLES[0], sha256=None, node="gw-1")
    async with store.transaction() as connection:
        await connection.execute(delete(recording_sources))
    fresh = RecordingIndex(store, TEXT_KEYS)
    assert ids(await fresh.search(source=ip_network("10.0.0.0/24"))) == ["1"]


async def test_search_by_event_type(store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    blocked = TimelineEvent(3.0, SessionEvent.clipboard_blocked("to_local", 5))
    warned = TimelineEvent(9.0, SessionEvent.idle_warning(60))
    for summary, events in zip(SAMPLES, ([blocked], [blocked, warned], [warned], [])):
        await index.add(dataclasses.replace(summary, events=events), None, "gw-1")
    assert ids(await index.search(event="clipboard_blocked")) == ["2", "1"]
    assert ids(await index.search(event="idle_warning")) == ["3", "2"]
    assert ids(await index.search(event="idle_warning", user="alice")) == ["2"]
    assert await index.search(event="viewed_by") == []


# ---------------------------------------------------------------- typed text


async def test_typed_text_is_read_from_the_journal_and_cached(tmp_path: Path, store: Store,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    index = RecordingIndex(store, TEXT_KEYS, typed_text_cache=1)
    path = write_journal(tmp_path, [client(1.0, KeyEvent(True, 0x61)), end_record(2.0)])
    reads: list[Path] = []
    real_read = index_module.read_typed_text

    def counting_read(journal: Path) -> Any:
        reads.append(journal)
        return real_read(journal)

    monkeypatch.setattr(index_module, "read_typed_text", counting_read)
    first = await index.typed_text(SESSION_ID, path)
    assert [entry.text for entry in first.entries] == ["a"]
    assert await index.typed_text(SESSION_ID, path) is first and len(reads) == 1
    with path.open("ab") as journal:  # the journal changed (recovered): read again
        journal.write(b"\x00")
    await index.typed_text(SESSION_ID, path)
    assert len(reads) == 2


async def test_the_source_backfill_goes_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "SOURCE_BACKFILL_BATCH", 2)
    index = RecordingIndex(store, TEXT_KEYS)
    sources = ["10.0.0.1", "bogus", "10.0.0.3", "10.0.0.4", "10.1.0.5"]
    for n, source in enumerate(sources, start=1):
        await index.add(dataclasses.replace(SAMPLES[0], id=f"20261125T080000Z-0000000{n}", source=source,
                                            started=SAMPLES[0].started + timedelta(minutes=n)), None, "gw-1")
    async with store.transaction() as connection:
        await connection.execute(delete(recording_sources))
    assert ids(await RecordingIndex(store, TEXT_KEYS).search(source=ip_network("10.0.0.0/16"))) == ["4", "3", "1"]


async def test_recordings_are_found_by_part_of_a_japanese_display_name(tmp_path: Path, store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    people = [("20261125T080000Z-0000000a", "yamada", "山田 太郎"), ("20261125T080000Z-0000000b", "tanaka", "田中 花子"),
              ("20261125T080000Z-0000000c", "sato", None)]
    for number, (session_id, user, shown) in enumerate(people):
        header = journal_header(session_id, STARTED + timedelta(minutes=number), user=user,
                                **({"display_name": shown} if shown else {}))
        await index.add_journal(write_journal(tmp_path, [end_record(5)], header), None, "gw-1")
    found = await index.search(user_contains="山田")
    assert [(row.user, row.display_name) for row in found] == [("yamada", "山田 太郎")]
    assert found[0].to_json()["display_name"] == "山田 太郎"
    assert [row.user for row in await index.search(user_contains="花子")] == ["tanaka"]
    assert [row.user for row in await index.search(user_contains="a")] == ["sato", "tanaka", "yamada"]  # login names


async def test_an_older_database_gains_the_display_name_column_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    store = await Store.open(url)
    async with store.transaction() as connection:
        await connection.exec_driver_sql("ALTER TABLE recordings DROP COLUMN display_name")
    await store.close()
    store = await Store.open(url)
    try:
        index = RecordingIndex(store, TEXT_KEYS)
        header = journal_header(user="yamada", display_name="山田 太郎")
        await index.add_journal(write_journal(tmp_path, [end_record(5)], header), None, "gw-1")
        assert [row.display_name for row in await index.search(user_contains="山田")] == ["山田 太郎"]
    finally:
        await store.close()
