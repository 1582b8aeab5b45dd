"""The terminal WebSocket's messages (``/ws/ssh/{target}``), without I/O.

Binary frames carry terminal bytes both ways: keystrokes and pastes as UTF-8 from the
browser, the target's output as it comes (a UTF-8 character may be split between frames;
xterm.js decodes the stream). Text frames go from the browser only and carry one JSON
control object; the only one today is a resize, ``{"resize": [cols, rows]}``, which the
page sends first (the PTY opens at that size) and whenever the terminal's size changes.
Anything else in a text frame is a protocol error: the session ends with close code 1008.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.errors import TerminalProtocolError
from recorder.records import TerminalSize

#: The longest control message (text frame) accepted, in characters.
MAX_CONTROL_MESSAGE = 256
#: The most columns and rows a terminal may have (xterm.js itself tops out well below).
MAX_CELLS = 1000
#: The size a terminal starts at when the browser's first message is input, not a resize.
DEFAULT_SIZE = TerminalSize(80, 24)


@dataclass(frozen=True, slots=True)
class TerminalInput:
    """Bytes the operator typed or pasted, for the target."""

    data: bytes


@dataclass(frozen=True, slots=True)
class TerminalResize:
    """The operator's terminal changed size."""

    size: TerminalSize


TerminalMessage = TerminalInput | TerminalResize


def parse_control(text: str) -> TerminalResize:
    """The control message of a text frame; TerminalProtocolError says what is wrong with it."""
    if len(text) > MAX_CONTROL_MESSAGE:
        raise TerminalProtocolError(f"a control message is at most {MAX_CONTROL_MESSAGE} characters")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise TerminalProtocolError("a text frame must hold a JSON control message") from None
    if not isinstance(value, dict) or set(value) != {"resize"}:
        raise TerminalProtocolError('the only control message is {"resize": [cols, rows]}')
    size = value["resize"]
    if (not isinstance(size, list) or len(size) != 2
            or not all(type(cells) is int and 1 <= cells <= MAX_CELLS for cells in size)):
        raise TerminalProtocolError(f"resize takes [cols, rows], two whole numbers from 1 to {MAX_CELLS}")
    return TerminalResize(TerminalSize(size[0], size[1]))


def resize_message(size: TerminalSize) -> str:
    """The text frame that asks for ``size`` (what the page sends)."""
    return json.dumps({"resize": [size.cols, size.rows]})
