"""The JSON records' payloads: the bytes the gateway has always written, round trips, and clear refusals."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.messages import RGBX8888, PixelFormat
from recorder.errors import JournalCorrupt
from recorder.journal import encode_json
from recorder.records import (
    InputCounts,
    SessionEnd,
    SessionEvent,
    SessionHeader,
    journal_session_id,
    journal_started_epoch,
)

SESSION_ID = "20261125T080000Z-1a2b3c4d"
STARTED = 1795593600.25
FUZZ = settings(max_examples=300, deadline=None)

#: Written by the gateway before the payloads were typed (``encode_json`` of the dicts it built then).
GOLDEN_HEADER = (
    b'{"format":1,"session_id":"20261125T080000Z-1a2b3c4d","user":"alice","source":"192.0.2.7",'
    b'"target":"desk-01","protocol":"vnc","started":"2026-11-25T08:00:00.250000Z","started_epoch":1795593600.25,'
    b'"width":1024,"height":768,"pixel_format":{"bits_per_pixel":32,"depth":24,"big_endian":false,'
    b'"true_colour":true,"red_max":255,"green_max":255,"blue_max":255,"red_shift":16,"green_shift":8,'
    b'"blue_shift":0},"desktop_name":"x11 \xef\xbf\xbd desk","gateway_version":"0.1.0","node":"gw-1",'
    b'"policy":"operators","record_input":"counts","clipboard":"to-remote"}'
)
GOLDEN_END = (b'{"ended":"2026-11-25T08:00:01.500000Z","ended_epoch":1795593601.5,"reason":"browser closed",'
              b'"crashed":false,"torn_at":null}')
GOLDEN_CRASHED_END = (b'{"ended":"2026-11-25T08:00:01.500000Z","ended_epoch":1795593601.5,'
                      b'"reason":"gateway crashed","crashed":true,"torn_at":4096}')
GOLDEN_COUNTS = b'{"keys":3,"pointer":9,"clicks":1,"cut_text":0}'


def header(**changes: Any) -> SessionHeader:
    fields: dict[str, Any] = {
        "session_id": SESSION_ID, "user": "alice", "source": "192.0.2.7", "target": "desk-01", "protocol": "vnc",
        "started": datetime.fromtimestamp(STARTED, UTC), "started_epoch": STARTED, "width": 1024, "height": 768,
        "pixel_format": RGBX8888, "desktop_name": "x11 \ufffd desk", "gateway_version": "0.1.0", "node": "gw-1",
        "policy": "operators", "record_input": "counts", "clipboard": "to-remote",
    }
    return SessionHeader(**{**fields, **changes})


def header_json(**changes: Any) -> dict[str, Any]:
    """The golden HEADER object with ``changes``; a change to ``...`` removes that key."""
    value = {**json.loads(GOLDEN_HEADER), **changes}
    return {key: item for key, item in value.items() if item is not ...}


# ---------------------------------------------------------------- the bytes on disk


class TestGoldenBytes:
    def test_header(self) -> None:
        assert encode_json(header().to_json()) == GOLDEN_HEADER
        assert SessionHeader.from_json(json.loads(GOLDEN_HEADER)) == header()

    def test_header_with_the_users_groups(self) -> None:
        """Journals written since groups are recorded: one more key, last; older ones read as groups None."""
        with_groups = header(groups=("operators", "night-shift"))
        assert encode_json(with_groups.to_json()) == GOLDEN_HEADER[:-1] + b',"groups":["operators","night-shift"]}'
        assert SessionHeader.from_json(json.loads(encode_json(with_groups.to_json()))) == with_groups
        assert header().groups is None and "groups" not in header().to_json()

    @pytest.mark.parametrize(("end", "golden"), [
        (SessionEnd(1795593601.5, "browser closed"), GOLDEN_END),
        (SessionEnd(1795593601.5, "gateway crashed", crashed=True, torn_at=4096), GOLDEN_CRASHED_END),
    ])
    def test_end(self, end: SessionEnd, golden: bytes) -> None:
        assert encode_json(end.to_json()) == golden
        assert SessionEnd.from_json(json.loads(golden)) == end
        assert end.ended == datetime(2026, 11, 25, 8, 0, 1, 500000, tzinfo=UTC)

    @pytest.mark.parametrize(("event", "golden"), [
        (SessionEvent.session_start(), b'{"type":"session_start"}'),
        (SessionEvent.session_end("idle timeout"), b'{"type":"session_end","reason":"idle timeout"}'),
        (SessionEvent.resize(800, 600), b'{"type":"resize","width":800,"height":600}'),
        (SessionEvent.idle_warning(29.5), b'{"type":"idle_warning","seconds_left":29.5}'),
        (SessionEvent.clipboard_blocked("to-local", 42),
         b'{"type":"clipboard_blocked","direction":"to-local","length":42}'),
        (SessionEvent("custom", {"n": [1, {"ü": None}]}), '{"type":"custom","n":[1,{"ü":null}]}'.encode()),
    ])
    def test_events(self, event: SessionEvent, golden: bytes) -> None:
        assert encode_json(event.to_json()) == golden
        assert SessionEvent.from_json(json.loads(golden)) == event

    def test_events_built_by_keyword_are_the_same_as_by_constructor(self) -> None:
        """What ``SessionJournal.event(type, **fields)`` makes of the proxy's calls."""
        assert SessionEvent("resize", {"width": 800, "height": 600}) == SessionEvent.resize(800, 600)
        assert SessionEvent("clipboard_blocked", {"direction": "to-remote", "length": 7}) == \
            SessionEvent.clipboard_blocked("to-remote", 7)

    def test_input_counts(self) -> None:
        counts = InputCounts(keys=3, pointer=9, clicks=1)
        assert encode_json(counts.to_json()) == GOLDEN_COUNTS
        assert InputCounts.from_json(json.loads(GOLDEN_COUNTS)) == counts
        assert InputCounts().to_json() == {"keys": 0, "pointer": 0, "clicks": 0, "cut_text": 0}


# ---------------------------------------------------------------- round trips

text = st.text(max_size=20)
header_strategy = st.builds(
    header,
    user=text, source=text, target=text, protocol=text, desktop_name=text, node=text, policy=text, clipboard=text,
    gateway_version=text,
    started=st.datetimes(datetime(1970, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC)),
    started_epoch=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
    width=st.integers(0, 0xFFFF), height=st.integers(0, 0xFFFF),
    pixel_format=st.sampled_from([RGBX8888, PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
                                  PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)]),
    record_input=st.sampled_from(["full", "counts", "off"]),
)


@FUZZ
@given(value=header_strategy)
def test_a_header_reads_back_as_written(value: SessionHeader) -> None:
    assert SessionHeader.from_json(json.loads(encode_json(value.to_json()))) == value


@FUZZ
@given(ended_epoch=st.floats(-1e10, 2.5e11), reason=text, crashed=st.booleans(),
       torn_at=st.none() | st.integers(0, 2**63))
def test_an_end_reads_back_as_written(ended_epoch: float, reason: str, crashed: bool, torn_at: int | None) -> None:
    end = SessionEnd(ended_epoch, reason, crashed, torn_at)
    assert SessionEnd.from_json(json.loads(encode_json(end.to_json()))) == end


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(event_type=text.filter(bool), fields=st.dictionaries(text.filter(lambda name: name != "type"), json_values,
                                                             max_size=4))
def test_an_event_reads_back_as_written(event_type: str, fields: dict[str, Any]) -> None:
    event = SessionEvent(event_type, fields)
    assert SessionEvent.from_json(json.loads(encode_json(event.to_json()))) == event


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("changes", "message"), [
    ({"user": None}, "the header has no text field 'user'"),
    ({"node": ...}, "the header has no text field 'node'"),
    ({"session_id": "../../etc/passwd"}, "the header's session id '../../etc/passwd' is malformed"),
    ({"started": "yesterday"}, "started: 'yesterday' is not an ISO-8601"),
    ({"started": 1795593600}, "the header has no text field 'started'"),
    ({"started_epoch": "now"}, "the header's started_epoch must be a number of seconds, not 'now'"),
    ({"started_epoch": True}, "the header's started_epoch must be a number of seconds, not True"),
    ({"width": -1}, "the header's width must be a whole number from 0 to 65535, not -1"),
    ({"height": 768.0}, "the header's height must be a whole number from 0 to 65535, not 768.0"),
    ({"pixel_format": [32, 24]}, "the header's pixel_format is not an object with exactly the pixel format's fields"),
    ({"pixel_format": {**dataclasses.asdict(RGBX8888), "alpha": 1}}, "the header's pixel_format is not an object"),
    ({"pixel_format": {**dataclasses.asdict(RGBX8888), "big_endian": 0}},
     "the header's pixel_format.big_endian must be true or false, not 0"),
    ({"pixel_format": {**dataclasses.asdict(RGBX8888), "depth": "24"}},
     "the header's pixel_format.depth must be a whole number, not '24'"),
    ({"pixel_format": {**dataclasses.asdict(RGBX8888), "bits_per_pixel": 12}},
     "the header's pixel_format is unusable: bits-per-pixel must be 8, 16 or 32, not 12"),
    ({"record_input": "keys"}, "the header's record_input must be 'full', 'counts' or 'off', not 'keys'"),
    ({"groups": "operators"}, "the header's groups must be a list of texts, not 'operators'"),
    ({"groups": ["operators", 7]}, "the header's groups must be a list of texts, not ('operators', 7)"),
    ({"format": 2}, "the header's format is 2; this gateway reads format 1"),
    ({"format": True}, "the header's format is True"),
    ({"format": ...}, "the header's format is None"),
])
def test_a_malformed_header_is_refused_saying_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(JournalCorrupt, match="^" + re.escape(message)):
        SessionHeader.from_json(header_json(**changes))


@pytest.mark.parametrize(("value", "message"), [
    ({"ended_epoch": 1.5}, "the END record has no text field 'reason'"),
    ({"reason": 7, "ended_epoch": 1.5}, "the END record has no text field 'reason'"),
    ({"reason": "x"}, "the END's ended_epoch must be a number of seconds, not None"),
    ({"reason": "x", "ended_epoch": 1e300}, "the END's ended_epoch 1e+300 is not a time"),
    ({"reason": "x", "ended_epoch": 1.5, "ended": 1}, "the END's ended must be text, not 1"),
    ({"reason": "x", "ended_epoch": 1.5, "crashed": "yes"}, "the END's crashed must be true or false, not 'yes'"),
    ({"reason": "x", "ended_epoch": 1.5, "torn_at": -1}, "the END's torn_at must be a file offset or null, not -1"),
    ({"reason": "x", "ended_epoch": 1.5, "torn_at": 1.0}, "the END's torn_at must be a file offset or null"),
])
def test_a_malformed_end_is_refused_saying_what_is_wrong(value: dict[str, Any], message: str) -> None:
    with pytest.raises(JournalCorrupt, match="^" + re.escape(message)):
        SessionEnd.from_json(value)


def test_an_end_needs_only_its_reason_and_time() -> None:
    """Older or hand-written END records: ``crashed`` and ``torn_at`` default, ``ended`` is derived."""
    assert SessionEnd.from_json({"reason": "closed", "ended_epoch": STARTED}) == SessionEnd(STARTED, "closed")
    assert SessionEnd.from_json({"reason": "closed", "ended_epoch": STARTED, "ended": "not a time"}).ended == \
        datetime.fromtimestamp(STARTED, UTC)


def test_what_can_be_salvaged_of_an_end() -> None:
    assert SessionEnd.salvage({"reason": "closed", "ended_epoch": float("inf")}, STARTED) == \
        SessionEnd(STARTED, "closed")
    assert SessionEnd.salvage({"reason": ["x"]}, STARTED) == SessionEnd(STARTED, "")


@pytest.mark.parametrize("value", [{}, {"type": None}, {"type": ""}, {"type": 4, "width": 1}])
def test_an_event_without_a_type_is_refused(value: dict[str, Any]) -> None:
    with pytest.raises(JournalCorrupt, match="^an EVENT record has no text field 'type'$"):
        SessionEvent.from_json(value)


def test_implausible_counts_read_as_zero_each_on_its_own() -> None:
    value = {"keys": 10**30, "pointer": -5, "clicks": True, "cut_text": "7"}
    assert InputCounts.from_json(value) == InputCounts()
    assert InputCounts.from_json({"keys": 1 << 20, "clicks": 2}) == InputCounts(keys=1 << 20, clicks=2)
    assert InputCounts.from_json({"keys": (1 << 20) + 1}) == InputCounts()


@pytest.mark.parametrize(("build", "message"), [
    (lambda: header(user=5), "the header has no text field 'user'"),
    (lambda: header(started=datetime(2026, 11, 25)), "the header's started must be a time with its zone"),
    (lambda: header(pixel_format={"bits_per_pixel": 32}), "the header's pixel_format must be a PixelFormat"),
    (lambda: SessionEvent("", {}), "an event's type must be a non-empty text"),
    (lambda: SessionEvent("resize", {"type": "x"}), "an event's fields must not hold another 'type'"),
    (lambda: SessionEnd(float("nan"), "x"), "the END's ended_epoch must be a number of seconds"),
    (lambda: InputCounts(keys=-1), "the keys count must be a whole number of at least 0"),
])
def test_a_payload_built_wrong_is_a_value_error(build: Any, message: str) -> None:
    """Built by the gateway itself: a bug of ours (ValueError), not a corrupt file."""
    with pytest.raises(ValueError, match=message):
        build()


@FUZZ
@given(name=st.sampled_from(sorted(json.loads(GOLDEN_HEADER))), value=json_values)
def test_reading_a_header_raises_only_journal_corrupt(name: str, value: Any) -> None:
    try:
        SessionHeader.from_json(header_json(**{name: value}))
    except JournalCorrupt:
        pass


@FUZZ
@given(value=st.dictionaries(st.sampled_from(["ended", "ended_epoch", "reason", "crashed", "torn_at", "x"]),
                             json_values | st.floats()))
def test_reading_an_end_raises_only_journal_corrupt(value: dict[str, Any]) -> None:
    try:
        SessionEnd.from_json(value)
    except JournalCorrupt:
        SessionEnd.salvage(value, STARTED)


# ---------------------------------------------------------------- any journal's HEADER


def test_the_fields_every_journal_tool_reads() -> None:
    assert journal_session_id({"session_id": SESSION_ID}) == SESSION_ID
    assert journal_started_epoch({"started_epoch": 5}) == 5.0
    assert journal_started_epoch({"session_id": SESSION_ID}) is None
    assert journal_started_epoch({"started_epoch": True}) is None
    for bad in ({}, {"session_id": "../x"}, {"session_id": 1}):
        with pytest.raises(JournalCorrupt, match="the HEADER has no valid session_id"):
            journal_session_id(bad)
