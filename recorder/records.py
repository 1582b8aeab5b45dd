"""What a journal's JSON records say: HEADER, EVENT, INPUT_COUNTS and END, as typed payloads.

The container (:mod:`recorder.journal`) stores each of these records as one compact JSON
object. Here each object is a frozen dataclass, validated on construction (ValueError: the
caller built a wrong one), with ``to_json()`` — the object as the gateway writes it, key for
key — and ``from_json()``, which raises :class:`~recorder.errors.JournalCorrupt` saying what
is wrong with an object read from a file.

Tools that must handle any journal, whatever its HEADER holds (seal, verify, crash recovery),
read only the fields they need with :func:`journal_session_id` and :func:`journal_started_epoch`.

No I/O: objects in, objects out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard, get_args

from base.times import parse_time
from gateway.rfb.errors import RFBError
from gateway.rfb.input_presses import InputKind
from gateway.rfb.messages import PixelFormat
from recorder.errors import JournalCorrupt
from recorder.journal import JOURNAL_FORMAT, is_session_id, iso_utc

#: Operator input a recording may only count (``record_input: counts``), by kind.
#: How much of the operator's input a journal keeps.
RecordInput = Literal["full", "counts", "off"]
#: More input events of one kind than this between two INPUT_COUNTS records is garbage.
MAX_COUNT_PER_RECORD = 1 << 20

_HEADER_TEXT = ("session_id", "user", "source", "target", "protocol", "desktop_name", "gateway_version", "node",
                "policy", "clipboard")
_U16 = 0xFFFF


def _is_number(value: object) -> TypeGuard[float]:
    """A finite JSON number (``true`` and ``false`` are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: The protocol of terminal sessions' journals: their data records are terminal bytes, not RFB.
TERMINAL_PROTOCOL = "ssh"


@dataclass(frozen=True, slots=True)
class TerminalSize:
    """A terminal's size in character cells."""

    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """The HEADER record: who, from where, to what, when, and the desktop's screen and pixel format.

    ``groups`` are the user's groups when the session started (what supervisors' ``watch``
    is judged by); None in journals written before they were recorded.

    A terminal session's journal (``protocol`` :data:`TERMINAL_PROTOCOL`) has the terminal's
    columns and rows as ``width`` and ``height`` and no pixel format (None); its SERVER_DATA is
    the target's output, its CLIENT_DATA the operator's input, both as terminal bytes.
    ``display_name`` is the
    name people know the user by (Unicode), when they have one (optional: absent in older journals).
    """

    session_id: str
    user: str
    source: str
    target: str
    protocol: str
    started: datetime
    started_epoch: float
    width: int
    height: int
    pixel_format: PixelFormat | None
    desktop_name: str
    gateway_version: str
    node: str
    policy: str
    record_input: RecordInput
    clipboard: str
    groups: tuple[str, ...] | None = None
    display_name: str | None = None

    def __post_init__(self) -> None:
        for name in _HEADER_TEXT:
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"the header has no text field {name!r}")
        if not is_session_id(self.session_id):
            raise ValueError(f"the header's session id {self.session_id!r} is malformed")
        if not isinstance(self.started, datetime) or self.started.tzinfo is None:
            raise ValueError(f"the header's started must be a time with its zone, not {self.started!r}")
        if not _is_number(self.started_epoch):
            raise ValueError(f"the header's started_epoch must be a number of seconds, not {self.started_epoch!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _U16:
                raise ValueError(f"the header's {name} must be a whole number from 0 to {_U16}, not {value!r}")
        if self.pixel_format is None and self.protocol != TERMINAL_PROTOCOL:
            raise ValueError("only a terminal session's header may have no pixel_format")
        if self.pixel_format is not None and not isinstance(self.pixel_format, PixelFormat):
            raise ValueError(f"the header's pixel_format must be a PixelFormat, not {self.pixel_format!r}")
        if self.record_input not in get_args(RecordInput):
            raise ValueError(f"the header's record_input must be 'full', 'counts' or 'off', not {self.record_input!r}")
        if self.groups is not None and (not isinstance(self.groups, tuple)
                                        or not all(isinstance(group, str) for group in self.groups)):
            raise ValueError(f"the header's groups must be a list of texts, not {self.groups!r}")
        if self.display_name is not None and not isinstance(self.display_name, str):
            raise ValueError(f"the header's display_name must be a text, not {self.display_name!r}")

    def to_json(self) -> dict[str, Any]:
        """The HEADER object, in the order the gateway writes it (``groups`` only when known)."""
        header: dict[str, Any] = {
            "format": JOURNAL_FORMAT, "session_id": self.session_id, "user": self.user, "source": self.source,
            "target": self.target, "protocol": self.protocol,
            "started": f"{self.started.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}", "started_epoch": self.started_epoch,
            "width": self.width, "height": self.height,
            "pixel_format": None if self.pixel_format is None else dataclasses.asdict(self.pixel_format),
            "desktop_name": self.desktop_name, "gateway_version": self.gateway_version, "node": self.node,
            "policy": self.policy, "record_input": self.record_input, "clipboard": self.clipboard,
        }
        if self.groups is not None:
            header["groups"] = list(self.groups)
        if self.display_name is not None:
            header["display_name"] = self.display_name
        return header

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SessionHeader:
        """The header a HEADER object describes; JournalCorrupt says which field is missing or wrong."""
        if value.get("format") != JOURNAL_FORMAT or type(value.get("format")) is not int:
            raise JournalCorrupt(f"the header's format is {value.get('format')!r}; this gateway reads format "
                                 f"{JOURNAL_FORMAT}")
        started = value.get("started")
        if not isinstance(started, str):
            raise JournalCorrupt("the header has no text field 'started'")
        try:
            started_time = parse_time(started)
        except ValueError as exc:
            raise JournalCorrupt(f"started: {exc}") from None
        try:
            arguments: dict[str, Any] = {item.name: value.get(item.name) for item in dataclasses.fields(cls)}
            pixel_format = value.get("pixel_format")
            arguments.update(started=started_time,
                             pixel_format=None if pixel_format is None else _pixel_format(pixel_format))
            if isinstance(arguments["groups"], list):
                arguments["groups"] = tuple(arguments["groups"])
            return cls(**arguments)
        except ValueError as exc:
            raise JournalCorrupt(str(exc)) from None


def _pixel_format(value: object) -> PixelFormat:
    """The header's ``pixel_format`` object as a PixelFormat; ValueError if it is not a valid one."""
    if not isinstance(value, dict) or set(value) != {item.name for item in dataclasses.fields(PixelFormat)}:
        raise ValueError("the header's pixel_format is not an object with exactly the pixel format's fields")
    for item in dataclasses.fields(PixelFormat):
        flag = item.type in ("bool", bool)
        if type(value[item.name]) is not (bool if flag else int):
            raise ValueError(f"the header's pixel_format.{item.name} must be "
                             f"{'true or false' if flag else 'a whole number'}, not {value[item.name]!r}")
    try:
        return PixelFormat(**value)
    except RFBError as exc:
        raise ValueError(f"the header's pixel_format is unusable: {exc}") from None


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """An EVENT record: something that happened in the session (``type``), with its details."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise ValueError(f"an event's type must be a non-empty text, not {self.type!r}")
        if "type" in self.fields:
            raise ValueError("an event's fields must not hold another 'type'")

    @classmethod
    def session_start(cls) -> SessionEvent:
        return cls("session_start")

    @classmethod
    def session_end(cls, reason: str) -> SessionEvent:
        return cls("session_end", {"reason": reason})

    @classmethod
    def resize(cls, width: int, height: int) -> SessionEvent:
        """The desktop changed size."""
        return cls("resize", {"width": width, "height": height})

    @classmethod
    def idle_warning(cls, seconds_left: float) -> SessionEvent:
        """The operator was warned of the idle logout ``seconds_left`` before it."""
        return cls("idle_warning", {"seconds_left": seconds_left})

    @classmethod
    def clipboard_blocked(cls, direction: str, length: int) -> SessionEvent:
        """Clipboard text of ``length`` bytes was stopped going ``direction`` (the policy forbids it)."""
        return cls("clipboard_blocked", {"direction": direction, "length": length})

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.fields}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SessionEvent:
        """The event an EVENT object describes; JournalCorrupt if it has no type."""
        event_type = value.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise JournalCorrupt("an EVENT record has no text field 'type'")
        return cls(event_type, {name: item for name, item in value.items() if name != "type"})


@dataclass(frozen=True, slots=True)
class InputCounts:
    """An INPUT_COUNTS record: how much input was forwarded but only counted since the previous one."""

    keys: int = 0
    pointer: int = 0
    clicks: int = 0
    cut_text: int = 0

    def __post_init__(self) -> None:
        for name in get_args(InputKind):
            count = getattr(self, name)
            if type(count) is not int or count < 0:
                raise ValueError(f"the {name} count must be a whole number of at least 0, not {count!r}")

    def to_json(self) -> dict[str, int]:
        """Every kind, zero or not."""
        return {"keys": self.keys, "pointer": self.pointer, "clicks": self.clicks, "cut_text": self.cut_text}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> InputCounts:
        """The counts of an INPUT_COUNTS object, each read on its own.

        A count that is not a plausible whole number (missing, negative, ``true``, text, over
        :data:`MAX_COUNT_PER_RECORD`) reads as 0: one garbled count must not lose the others.
        """
        counts = {name: value.get(name) for name in get_args(InputKind)}
        return cls(**{name: count if type(count) is int and 0 < count <= MAX_COUNT_PER_RECORD else 0
                      for name, count in counts.items()})


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """The END record: when and why the session ended.

    ``crashed`` says that crash recovery wrote it; ``torn_at`` is the file offset where data
    was lost (a failed write, or a crash's torn tail), None when nothing was.
    """

    ended_epoch: float
    reason: str
    crashed: bool = False
    torn_at: int | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.ended_epoch):
            raise ValueError(f"the END's ended_epoch must be a number of seconds, not {self.ended_epoch!r}")
        try:
            datetime.fromtimestamp(self.ended_epoch, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"the END's ended_epoch {self.ended_epoch!r} is not a time") from None
        if not isinstance(self.reason, str):
            raise ValueError(f"the END's reason must be text, not {self.reason!r}")
        if not isinstance(self.crashed, bool):
            raise ValueError(f"the END's crashed must be true or false, not {self.crashed!r}")
        if self.torn_at is not None and (type(self.torn_at) is not int or self.torn_at < 0):
            raise ValueError(f"the END's torn_at must be a file offset or null, not {self.torn_at!r}")

    @property
    def ended(self) -> datetime:
        return datetime.fromtimestamp(self.ended_epoch, UTC)

    def to_json(self) -> dict[str, Any]:
        """The END object; ``ended`` is ``ended_epoch`` in ISO-8601 UTC, for people reading it."""
        return {"ended": iso_utc(self.ended_epoch), "ended_epoch": self.ended_epoch, "reason": self.reason,
                "crashed": self.crashed, "torn_at": self.torn_at}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SessionEnd:
        """The end an END object describes; JournalCorrupt says what is missing or wrong.

        ``reason`` and ``ended_epoch`` are required; ``crashed`` and ``torn_at`` default to
        false and null. ``ended`` is derived from ``ended_epoch``, so it is only checked to be text.
        """
        if "ended" in value and not isinstance(value["ended"], str):
            raise JournalCorrupt(f"the END's ended must be text, not {value['ended']!r}")
        if not isinstance(value.get("reason"), str):
            raise JournalCorrupt("the END record has no text field 'reason'")
        try:
            ended_epoch: Any = value.get("ended_epoch")
            return cls(ended_epoch, value["reason"], value.get("crashed", False), value.get("torn_at"))
        except ValueError as exc:
            raise JournalCorrupt(str(exc)) from None

    @classmethod
    def salvage(cls, value: Mapping[str, Any], ended_epoch: float) -> SessionEnd:
        """What can be read of an END object :meth:`from_json` refuses: it still ends the recording.

        Its reason if that is text (else ""), ended at ``ended_epoch`` (the END record's own time).
        """
        reason = value.get("reason")
        return cls(ended_epoch, reason if isinstance(reason, str) else "")


def journal_session_id(header: Mapping[str, Any]) -> str:
    """The session id of any journal's HEADER object; JournalCorrupt if it has no well-formed one."""
    session_id = header.get("session_id")
    if not isinstance(session_id, str) or not is_session_id(session_id):
        raise JournalCorrupt("the HEADER has no valid session_id")
    return session_id


def journal_started_epoch(header: Mapping[str, Any]) -> float | None:
    """When any journal's session started (seconds since the epoch), or None if its HEADER does not say."""
    started = header.get("started_epoch")
    return float(started) if _is_number(started) else None
