"""What an operator typed, rebuilt from a recording's key events (``record_input: full``).

With ``record_input: full`` the journal's CLIENT_DATA holds every KeyEvent (and QEMU
extended key event) the browser sent. :class:`TypedTextBuilder` follows the key presses in
time order and writes them as :class:`TypedEntry` lines: characters as typed (see
:mod:`recorder.keysyms`), Return, Tab, BackSpace and the arrows as visible marks (⏎ ⇥ ⌫ ←),
shortcuts as ``‹Ctrl+C›``, the Japanese input-method keys by their key caps (``‹変換›``). An entry ends at Return, after ``burst_gap`` seconds without
typing, or at ``max_entry_chars``. Nothing is applied: a BackSpace shows as ⌫ after the
characters it erased, so a reviewer sees corrections as they were made.

What reaches the desktop is keys, not text: an input method on the desktop (Japanese
kana-kanji conversion) turns ``nihon`` and a conversion key into 日本 there, and the
entry shows ``nihon``.

A terminal session's CLIENT_DATA is the characters typed (UTF-8): they are shown as they
are, Return, Tab and BackSpace as marks, other control characters as ``‹Ctrl+X›``.

With ``record_input: counts`` the journal has no key events: :func:`read_typed_text` says
so without reading further. It reads a whole journal (blocking: call it in a worker thread).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.rfb.clipboard import ExtendedClientCutText
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.messages import ClientMessage, KeyEvent, QEMUExtendedKeyEvent
from recorder.journal import MAX_RECORD, JournalReader, RecordKind
from recorder.keysyms import CHORD_MODIFIERS, JAPANESE_KEYS, LINE_ENDS, MARKS, character, is_modifier
from recorder.records import TERMINAL_PROTOCOL, SessionHeader

#: Seconds without a key press that end an entry.
BURST_GAP = 2.0
#: Characters (and marks) in one entry at most; a longer run of typing continues in the next.
MAX_ENTRY_CHARS = 500
#: Characters kept of one recording at most: what a reviewer can read, and a bound on memory.
MAX_TYPED_CHARS = 200_000
_CHORD_ORDER = ("Ctrl", "Alt", "Meta", "Super", "Hyper")
#: Keys shown by name, as ‹F1› or ‹変換›: F1 … F12 and the Japanese input-method keys.
_NAMED_KEYS = {**{0xFFBE + n: f"F{n + 1}" for n in range(12)}, **JAPANESE_KEYS}


@dataclass(frozen=True, slots=True)
class TypedEntry:
    """Keys typed from ``t`` to ``end`` seconds into the recording, as ``text``."""

    t: float
    end: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "end": self.end, "text": self.text}


@dataclass(frozen=True, slots=True)
class TypedText:
    """A recording's typed text: its entries in time order, or why there are none.

    ``record_input`` is the recording's policy setting: only ``full`` keeps key events.
    ``truncated`` says :data:`MAX_TYPED_CHARS` cut the text short; ``error`` why reading
    stopped early (a journal whose client data breaks the protocol).
    """

    record_input: str
    entries: tuple[TypedEntry, ...] = ()
    truncated: bool = False
    error: str | None = None

    @property
    def recorded(self) -> bool:
        return self.record_input == "full"

    def to_json(self) -> dict[str, Any]:
        return {"record_input": self.record_input, "recorded": self.recorded,
                "entries": [entry.to_json() for entry in self.entries], "truncated": self.truncated,
                "error": self.error}


class TypedTextBuilder:
    """Key events in, typed entries out."""

    def __init__(self, *, burst_gap: float = BURST_GAP, max_entry_chars: int = MAX_ENTRY_CHARS,
                 max_chars: int = MAX_TYPED_CHARS) -> None:
        if burst_gap <= 0 or max_entry_chars < 1 or max_chars < 1:
            raise ValueError("burst_gap, max_entry_chars and max_chars must be positive")
        self._burst_gap = burst_gap
        self._max_entry_chars = max_entry_chars
        self._max_chars = max_chars
        self._held: set[int] = set()  # chord modifiers held down
        self._entries: list[TypedEntry] = []
        self._pieces: list[str] = []  # the entry being typed
        self._entry_length = 0
        self._entry_start = 0.0
        self._last = 0.0
        self._total = 0
        self.truncated = False

    def message(self, t: float, message: ClientMessage | ExtendedClientCutText) -> None:
        """Follow one of the browser's messages at ``t``; only key events type anything."""
        if isinstance(message, KeyEvent):
            self.key(t, message.down, message.key)
        elif isinstance(message, QEMUExtendedKeyEvent):
            self.key(t, message.down, message.keysym)

    def key(self, t: float, down: bool, keysym: int) -> None:
        """A key pressed (``down``) or released at ``t`` seconds."""
        if not down:
            self._held.discard(keysym)
            return
        if is_modifier(keysym):
            if keysym in CHORD_MODIFIERS:
                self._held.add(keysym)
            return
        piece = self._piece(keysym)
        if piece is None or self.truncated:
            return
        if self._total + len(piece) > self._max_chars:
            self.truncated = True
            return
        if self._pieces and (t - self._last > self._burst_gap
                             or self._entry_length + len(piece) > self._max_entry_chars):
            self._close()
        if not self._pieces:
            self._entry_start = t
        self._pieces.append(piece)
        self._entry_length += len(piece)
        self._total += len(piece)
        self._last = t
        if keysym in LINE_ENDS and len(piece) == 1:  # Return, not Ctrl+Return
            self._close()

    def entries(self) -> list[TypedEntry]:
        """Every entry so far, the one being typed included."""
        self._close()
        return list(self._entries)

    def _piece(self, keysym: int) -> str | None:
        """What pressing ``keysym`` adds to the text with the modifiers now held; None for nothing."""
        text = character(keysym)
        chord = [name for name in _CHORD_ORDER if name in {CHORD_MODIFIERS[held] for held in self._held}]
        if chord == ["Ctrl", "Alt"] and text is not None and not (text.isascii() and text.isalnum()):
            chord = []  # AltGr as Windows browsers send it: Ctrl+Alt typing a character such as @ or €
        name = _NAMED_KEYS.get(keysym)
        if chord:
            key: str | None
            if text == " ":
                key = "Space"
            elif text is not None:
                key = text.upper()
            else:
                key = MARKS.get(keysym) or name
            return f"‹{'+'.join(chord)}+{key}›" if key is not None else None
        if text is not None:
            return text
        return MARKS.get(keysym) or (f"‹{name}›" if name is not None else None)

    def _close(self) -> None:
        if self._pieces:
            self._entries.append(TypedEntry(self._entry_start, self._last, "".join(self._pieces)))
            self._pieces.clear()
            self._entry_length = 0


def read_typed_text(path: Path, *, max_record: int = MAX_RECORD, burst_gap: float = BURST_GAP,
                    max_entry_chars: int = MAX_ENTRY_CHARS, max_chars: int = MAX_TYPED_CHARS) -> TypedText:
    """The typed text of the journal at ``path``; blocking, so call it in a worker thread.

    Raises JournalCorrupt when the journal's magic or header is unusable, OSError when it
    cannot be read. A torn journal gives what its whole records hold.
    """
    reader = JournalReader(path, max_record=max_record)
    header = SessionHeader.from_json(reader.header)
    if header.record_input != "full":
        return TypedText(header.record_input)
    if header.protocol == TERMINAL_PROTOCOL:
        return _terminal_typed_text(reader, burst_gap, max_entry_chars, max_chars)
    # The journal holds what the proxy forwarded, within its limits: these only bound a hostile file.
    framer = ClientMessageFramer(max_cut_text=max_record, max_encodings=1024, max_screens=256)
    builder = TypedTextBuilder(burst_gap=burst_gap, max_entry_chars=max_entry_chars, max_chars=max_chars)
    error = None
    for record in reader:
        if record.kind != RecordKind.CLIENT_DATA:
            continue
        t = record.offset_us / 1e6
        framer.receive_data(record.payload)
        for event in framer.events_received():
            if not isinstance(event, ClientMessageReceived):
                error = f"the browser's messages are unreadable from {t:.3f} s on: {event.error}"
                break
            builder.message(t, event.message)
        if error is not None or builder.truncated:
            break
    return TypedText("full", tuple(builder.entries()), builder.truncated, error)


def _terminal_mark(char: str) -> str:
    """How a typed terminal character shows in an entry."""
    if char in "\r\n":
        return "⏎"
    if char == "\t":
        return "⇥"
    if char == "\x7f":
        return "⌫"
    if char == "\x1b":
        return "‹Esc›"
    if char < " ":
        return f"‹Ctrl+{chr(ord(char) + 64)}›"
    return char


def _terminal_typed_text(reader: JournalReader, burst_gap: float, max_entry_chars: int, max_chars: int) -> TypedText:
    """Typed text of a terminal journal: its input characters, in entries ended by Return or a pause."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    entries: list[TypedEntry] = []
    text: list[str] = []
    start = last = 0.0
    total = 0
    for record in reader:
        if record.kind != RecordKind.CLIENT_DATA:
            continue
        t = record.offset_us / 1e6
        for char in decoder.decode(record.payload):
            if text and (t - last > burst_gap or len(text) >= max_entry_chars):
                entries.append(TypedEntry(start, last, "".join(text)))
                text = []
            if not text:
                start = t
            text.append(_terminal_mark(char))
            last = t
            total += 1
            if total >= max_chars:
                entries.append(TypedEntry(start, last, "".join(text)))
                return TypedText("full", tuple(entries), truncated=True)
            if char in "\r\n":
                entries.append(TypedEntry(start, last, "".join(text)))
                text = []
    if text:
        entries.append(TypedEntry(start, last, "".join(text)))
    return TypedText("full", tuple(entries))
