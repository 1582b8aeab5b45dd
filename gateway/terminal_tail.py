"""The live tail of a terminal session's output, for supervisors' live views and wall tiles (view-only).

A :class:`TerminalSession` feeds every chunk of the target's output, and every resize, into its
:class:`TerminalTail`; the tail keeps the last ``keep`` bytes (what a viewer who arrives later sees
first) and hands each chunk to the viewers following it. Viewers never write anywhere: there is no
path from a viewer to the target. A viewer that falls more than ``viewer_backlog`` bytes behind
is dropped (its view ends with a reason) rather than buffering without bound. The tails of this
node's sessions are in :class:`TerminalTails` (``app[TERMINAL_TAILS]``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from recorder.records import TerminalSize
from recorder.terminal_text import ScreenText

#: Bytes of recent output a new viewer starts with.
TAIL_BYTES = 64 * 1024
#: Bytes a viewer may fall behind before its view is ended.
VIEWER_BACKLOG = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TailEnded:
    """The view is over: the session ended, or the viewer fell too far behind."""

    reason: str


TailItem = bytes | TerminalSize | TailEnded


class TailViewer:
    """One viewer's queue of output and resizes."""

    def __init__(self, backlog_limit: int) -> None:
        self._items: deque[TailItem] = deque()
        self._bytes = 0
        self._limit = backlog_limit
        self._ready = asyncio.Event()
        self.ended: TailEnded | None = None

    def put(self, item: TailItem) -> None:
        if self.ended is not None:
            return
        if isinstance(item, TailEnded):
            self.ended = item
        elif isinstance(item, bytes):
            self._bytes += len(item)
            if self._bytes > self._limit:
                self._items.clear()
                self.ended = TailEnded("the live view could not keep up with the terminal's output; open it again")
        if self.ended is None:
            self._items.append(item)
        self._ready.set()

    async def next(self) -> TailItem:
        """The next output chunk or size; :class:`TailEnded` once the view is over (after what was queued)."""
        while not self._items:
            if self.ended is not None:
                return self.ended
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._bytes -= len(item)
        return item


class TerminalTail:
    """The recent output and size of one live terminal session, and its viewers."""

    def __init__(self, keep: int = TAIL_BYTES, viewer_backlog: int = VIEWER_BACKLOG) -> None:
        self.size = TerminalSize(80, 24)
        self._keep = keep
        self._viewer_backlog = viewer_backlog
        self._recent = bytearray()
        self._viewers: set[TailViewer] = set()
        self.ended: TailEnded | None = None

    def feed(self, data: bytes) -> None:
        """The target's next output (as the operator got it)."""
        self._recent += data
        if len(self._recent) > self._keep:
            del self._recent[:len(self._recent) - self._keep]
        for viewer in self._viewers:
            viewer.put(data)

    def resize(self, size: TerminalSize) -> None:
        self.size = size
        for viewer in self._viewers:
            viewer.put(size)

    def follow(self) -> TailViewer:
        """A new viewer: the current size, then the recent output, then whatever comes."""
        viewer = TailViewer(self._viewer_backlog)
        viewer.put(self.size)
        if self._recent:
            viewer.put(bytes(self._recent))
        if self.ended is not None:
            viewer.put(self.ended)
        else:
            self._viewers.add(viewer)
        return viewer

    def leave(self, viewer: TailViewer) -> None:
        self._viewers.discard(viewer)

    def last_lines(self, count: int) -> list[str]:
        """The last ``count`` lines of text in the recent output, escape sequences dropped (a wall tile)."""
        text = ScreenText(limit=len(self._recent) + 1)
        text.feed(bytes(self._recent))
        return text.text().split("\n")[-count:] if self._recent else []

    def end(self, reason: str) -> None:
        self.ended = TailEnded(reason)
        for viewer in self._viewers:
            viewer.put(self.ended)
        self._viewers.clear()


class TerminalTails:
    """The tails of this node's live terminal sessions, by session id."""

    def __init__(self) -> None:
        self._tails: dict[str, TerminalTail] = {}

    def open(self, session_id: str) -> TerminalTail:
        tail = self._tails[session_id] = TerminalTail()
        return tail

    def get(self, session_id: str) -> TerminalTail | None:
        return self._tails.get(session_id)

    def close(self, session_id: str, reason: str = "the operator's session has ended") -> None:
        tail = self._tails.pop(session_id, None)
        if tail is not None:
            tail.end(reason)


TERMINAL_TAILS = web.AppKey("terminal_tails", TerminalTails)
