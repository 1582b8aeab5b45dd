"""The text that appeared on a terminal, from its output bytes: what terminal recordings are searched by.

:class:`ScreenText` decodes a terminal's output as UTF-8 (incrementally: a character may be
split between two records), drops escape sequences (CSI, OSC, DCS and the other string
sequences, two- and three-character escapes) and control characters, keeps line breaks, and
stops at ``limit`` characters so a recording of a huge ``cat`` cannot bloat the index. It
is the text as written, not the screen's final state: a line overwritten later is still found.

No I/O: bytes in, text out.
"""

from __future__ import annotations

import codecs
from enum import Enum, auto

#: Characters of screen text kept per recording (the rest is not searchable).
MAX_SCREEN_TEXT = 1 << 20

_ESC = "\x1b"
_BEL = "\x07"
#: After ESC, these open a string that runs to ST (ESC \\) or BEL: DCS, SOS, PM, APC, and OSC.
_STRING_OPENERS = frozenset("P X ^ _ ]".split())
#: After ESC, these take one more character (character sets, DEC line attributes, ...).
_INTERMEDIATES = frozenset("()*+-./#% ")


class _State(Enum):
    TEXT = auto()
    ESCAPE = auto()
    INTERMEDIATE = auto()
    CSI = auto()
    STRING = auto()
    STRING_ESCAPE = auto()


class ScreenText:
    """Accumulates the printable text of a terminal's output, at most ``limit`` characters."""

    def __init__(self, limit: int = MAX_SCREEN_TEXT) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 or more")
        self._limit = limit
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._state = _State.TEXT
        self._parts: list[str] = []
        self._size = 0

    @property
    def full(self) -> bool:
        """Whether the limit is reached: more output is ignored."""
        return self._size >= self._limit

    def feed(self, data: bytes) -> None:
        """The next output bytes, in order."""
        if not self.full:
            self._feed_text(self._decoder.decode(data))

    @property
    def size(self) -> int:
        """Characters kept so far (of :meth:`written`): where the next output will start."""
        return self._size

    def text(self) -> str:
        """The text so far: lines without trailing blanks, no empty lines."""
        lines = (line.rstrip() for line in self.written().split("\n"))
        return "\n".join(line for line in lines if line)

    def written(self) -> str:
        """The text so far as it was kept, line breaks and blanks included."""
        return "".join(self._parts)

    def _feed_text(self, text: str) -> None:
        state = self._state
        run_start = 0 if state is _State.TEXT else None
        for index, char in enumerate(text):
            if state is _State.TEXT:
                if char >= " " and char != "\x7f" and not "\x80" <= char <= "\x9f":
                    continue
                if run_start is not None and index > run_start:
                    self._keep(text[run_start:index])
                run_start = None
                if char == _ESC:
                    state = _State.ESCAPE
                elif char == "\n":
                    self._keep("\n")
                elif char == "\t":
                    self._keep(" ")
                if state is _State.TEXT:
                    run_start = index + 1
            elif state is _State.ESCAPE:
                if char == "[":
                    state = _State.CSI
                elif char in _STRING_OPENERS:
                    state = _State.STRING
                elif char in _INTERMEDIATES:
                    state = _State.INTERMEDIATE
                else:
                    state, run_start = _State.TEXT, index + 1
            elif state is _State.INTERMEDIATE:
                state, run_start = _State.TEXT, index + 1
            elif state is _State.CSI:
                if "@" <= char <= "~":
                    state, run_start = _State.TEXT, index + 1
            elif state is _State.STRING:
                if char == _BEL:
                    state, run_start = _State.TEXT, index + 1
                elif char == _ESC:
                    state = _State.STRING_ESCAPE
            else:  # STRING_ESCAPE: ESC \ ends the string; anything else stays in it
                if char == "\\":
                    state, run_start = _State.TEXT, index + 1
                else:
                    state = _State.STRING
            if self.full:
                return
        if state is _State.TEXT and run_start is not None and run_start < len(text):
            self._keep(text[run_start:])
        self._state = state

    def _keep(self, text: str) -> None:
        room = self._limit - self._size
        if room > 0:
            text = text[:room]
            self._parts.append(text)
            self._size += len(text)
