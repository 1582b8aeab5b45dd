"""Terminal recordings as asciicast v2, the format asciinema-player plays and ``asciinema play`` reads.

A terminal session's journal (HEADER ``protocol: ssh``) becomes one JSON header line and then
one JSON event line per record: ``[t, "o", text]`` for the target's output, ``[t, "i", text]``
for the operator's input (present only when the session's ``record_input`` was ``full``: a
``counts`` journal has no input bytes to export), ``[t, "r", "COLSxROWS"]`` for a resize. Text
is decoded as UTF-8 per direction, incrementally, so a character split between two records
stays whole; undecodable bytes become U+FFFD.

Blocking (reads the journal): run it in a worker thread.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recorder.errors import JournalCorrupt
from recorder.journal import JournalReader, RecordKind, decode_json
from recorder.records import TERMINAL_PROTOCOL, SessionHeader

ASCIICAST_VERSION = 2
ASCIICAST_MEDIA_TYPE = "application/x-asciicast"
#: What the terminal sessions' PTY announces, so the player interprets the output the same way.
TERMINAL_TYPE = "xterm-256color"


def _line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def asciicast_header(header: SessionHeader) -> dict[str, Any]:
    """The asciicast header line's object for a terminal journal's HEADER."""
    return {"version": ASCIICAST_VERSION, "width": header.width, "height": header.height,
            "timestamp": int(header.started_epoch), "title": f"{header.user} → {header.target}",
            "env": {"TERM": TERMINAL_TYPE}}


def asciicast_lines(path: Path) -> Iterator[str]:
    """The asciicast v2 lines (each ending in a newline) of the terminal journal at ``path``.

    JournalCorrupt when the journal is unreadable or is not a terminal session's; a torn tail
    ends the cast where the journal's whole records end.
    """
    reader = JournalReader(path)
    try:
        header = SessionHeader.from_json(reader.header)
    except JournalCorrupt as exc:
        raise JournalCorrupt(f"{path}: {exc}") from exc
    if header.protocol != TERMINAL_PROTOCOL:
        raise JournalCorrupt(f"{path} records a {header.protocol} session, not a terminal: it has no asciicast")
    yield _line(asciicast_header(header))
    output = codecs.getincrementaldecoder("utf-8")("replace")
    typed = codecs.getincrementaldecoder("utf-8")("replace")
    for record in reader:
        t = round(record.offset_us / 1e6, 6)
        if record.kind == RecordKind.SERVER_DATA:
            if text := output.decode(record.payload):
                yield _line([t, "o", text])
        elif record.kind == RecordKind.CLIENT_DATA:
            if text := typed.decode(record.payload):
                yield _line([t, "i", text])
        elif record.kind == RecordKind.EVENT:
            event = decode_json(record.payload)
            if event is not None and event.get("type") == "resize":
                cols, rows = event.get("cols"), event.get("rows")
                if type(cols) is int and type(rows) is int:
                    yield _line([t, "r", f"{cols}x{rows}"])
