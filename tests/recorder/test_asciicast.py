"""Terminal journals exported as asciicast v2: output always, input only as recorded, resizes, whole characters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.metrics import Metrics
from recorder.asciicast import asciicast_lines
from recorder.errors import JournalCorrupt
from recorder.journal import recording_path
from recorder.records import SessionHeader
from recorder.summary import summarize_journal
from recorder.typed_text import read_typed_text
from recorder.writer import SessionRecorder, session_header

SESSION_ID = "20261207T043000Z-0a1b2c3d"


async def terminal_journal(root: Path, record_input: str = "full") -> Path:
    header = session_header(session_id=SESSION_ID, user="alice", source="127.0.0.1", target="shell-01",
                            started_epoch=1_765_000_000.0, width=100, height=30, pixel_format=None,
                            desktop_name=b"shell-01", policy="operators", record_input=record_input,  # type: ignore[arg-type]
                            clipboard="off", groups=frozenset({"operators"}), protocol="ssh")
    path = recording_path(root, SESSION_ID)
    recorder = await SessionRecorder.open(path, header, key=b"k" * 32, fsync_interval=1.0, metrics=Metrics())
    typed = "echo 日本語\r".encode()
    if record_input == "full":
        recorder.client_data(typed)
    else:
        recorder.input_counted("keys", 10)
    output = "echo 日本語\r\n日本語\r\n$ ".encode()
    recorder.server_data(output[:7])  # "echo " and a part of 日
    recorder.server_data(output[7:])
    recorder.event("resize", cols=120, rows=40)
    await recorder.close("the shell ended")
    return path


async def test_output_input_and_resizes_become_asciicast_events(tmp_path: Path) -> None:
    lines = [json.loads(line) for line in asciicast_lines(await terminal_journal(tmp_path))]
    assert lines[0] == {"version": 2, "width": 100, "height": 30, "timestamp": 1_765_000_000,
                        "title": "alice → shell-01", "env": {"TERM": "xterm-256color"}}
    events = lines[1:]
    assert [kind for _, kind, _ in events] == ["i", "o", "o", "r"]
    assert "".join(text for _, kind, text in events if kind == "o") == "echo 日本語\r\n日本語\r\n$ "
    assert events[0][2] == "echo 日本語\r" and events[3][2] == "120x40"
    assert all(isinstance(t, float) and t >= 0 for t, _, _ in events)


async def test_counted_input_is_not_exported_and_the_summary_has_the_screen_text(tmp_path: Path) -> None:
    path = await terminal_journal(tmp_path, record_input="counts")
    assert [json.loads(line)[1] for line in list(asciicast_lines(path))[1:]] == ["o", "o", "r"]
    summary = summarize_journal(path)
    assert summary.protocol == "ssh" and summary.keys == 10
    assert summary.screen_text == "echo 日本語\n日本語\n$"


def test_a_desktop_journal_has_no_asciicast(tmp_path: Path) -> None:
    path = tmp_path / "x.dgj"
    path.write_bytes(b"not a journal")
    with pytest.raises(JournalCorrupt):
        list(asciicast_lines(path))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.text(max_size=20), st.sampled_from(["full", "counts"]))
def test_a_terminal_header_round_trips_and_only_terminals_may_lack_a_pixel_format(
        cols: int, rows: int, user: str, record_input: str) -> None:
    header = session_header(session_id=SESSION_ID, user=user, source="::1", target="shell-01", started_epoch=1.5,
                            width=cols, height=rows, pixel_format=None, desktop_name=b"", policy="p",
                            record_input=record_input,  # type: ignore[arg-type]
                            clipboard="off", groups=frozenset(), protocol="ssh")
    assert SessionHeader.from_json(json.loads(json.dumps(header.to_json()))) == header
    with pytest.raises(JournalCorrupt):
        SessionHeader.from_json({**header.to_json(), "protocol": "vnc"})


async def test_a_terminal_recordings_typed_text_is_its_input_characters(tmp_path: Path) -> None:
    typed = read_typed_text(await terminal_journal(tmp_path))
    assert [entry.text for entry in typed.entries] == ["echo 日本語⏎"]
