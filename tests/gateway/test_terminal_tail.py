"""The live tail of a terminal's output: what a late viewer starts with, what a slow one is told, the wall's lines."""

from __future__ import annotations

from gateway.terminal_tail import TailEnded, TerminalTail, TerminalTails
from recorder.records import TerminalSize


async def test_a_viewer_starts_with_the_size_and_the_recent_output_then_follows() -> None:
    tail = TerminalTail(keep=8)
    tail.resize(TerminalSize(100, 30))
    tail.feed(b"0123456789")
    viewer = tail.follow()
    assert await viewer.next() == TerminalSize(100, 30)
    assert await viewer.next() == b"23456789"  # only the last ``keep`` bytes
    tail.feed(b"more")
    tail.resize(TerminalSize(120, 40))
    assert [await viewer.next(), await viewer.next()] == [b"more", TerminalSize(120, 40)]
    tail.end("the operator's session has ended")
    assert await viewer.next() == TailEnded("the operator's session has ended")
    assert isinstance(await tail.follow().next(), TerminalSize)  # a viewer after the end learns it at once


async def test_a_viewer_that_falls_too_far_behind_is_dropped_not_buffered() -> None:
    tail = TerminalTail(viewer_backlog=10)
    viewer = tail.follow()
    assert isinstance(await viewer.next(), TerminalSize)
    tail.feed(b"123456")
    tail.feed(b"789012")
    ended = await viewer.next()
    assert isinstance(ended, TailEnded) and "keep up" in ended.reason
    tail.leave(viewer)


def test_the_last_lines_drop_escape_sequences_and_tails_are_kept_per_session() -> None:
    tail = TerminalTail()
    tail.feed(b"\x1b[1;32mgreen\x1b[0m\r\n" + "".join(f"line {n}\r\n" for n in range(20)).encode())
    assert tail.last_lines(3) == ["line 17", "line 18", "line 19"]
    assert TerminalTail().last_lines(3) == []
    tails = TerminalTails()
    opened = tails.open("s-1")
    assert tails.get("s-1") is opened and tails.get("s-2") is None
    tails.close("s-1")
    assert tails.get("s-1") is None and opened.ended is not None
