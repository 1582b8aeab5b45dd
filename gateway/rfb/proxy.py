"""The proxy connection: both RFB directions between the browser and the target, after both handshakes.

In the style of python-websockets' ``Protocol``, it does no I/O and keeps no time: the
I/O layer feeds what it reads to :meth:`ProxyConnection.receive_browser_data` and
:meth:`ProxyConnection.receive_target_data` (or :meth:`~ProxyConnection.receive_eof`),
writes what :meth:`~ProxyConnection.data_to_send_target` and
:meth:`~ProxyConnection.data_to_send_browser` return, and acts on
:meth:`~ProxyConnection.events_received`.

Theory of operation: each direction has its framer (:mod:`gateway.rfb.framing`), and the
proxy applies the session's rules to every whole message before forwarding its exact bytes:

- the encoding filter: the browser's SetEncodings loses what the target's framer cannot
  frame, and gets the target's preferred encoding first if it lists it (and is re-encoded
  if that changed it); the SetEncodings and SetPixelFormat it
  forwards change how the target's stream is framed from then on;
- the clipboard rule: cut text, classic or Extended Clipboard (:mod:`gateway.rfb.clipboard`),
  crosses only in the directions allowed, else it is dropped with :class:`ClipboardBlocked`.
  Both sides speak the Extended Clipboard to each other through the gateway when both offer
  it (the browser's SetEncodings keeps its pseudo-encoding; the target answers with its caps,
  which reach the browser): caps always cross; a notify or provide moves its sender's
  clipboard and a request or peek asks for the peer's, so each is dropped when that
  direction is closed. A dropped notify or provide is :class:`ClipboardBlocked` (a notify
  with length 0: its data is then never sent);
- the input-recording rule: with ``journal_input=False`` the operator's keys, pointer and
  clipboard text are forwarded but left out of the journal, only counted (:class:`InputCounted`);
- the browser's limits (:mod:`gateway.rfb.browser_limits`), on the clock value ``now``
  the caller passes in: past the message budget, :meth:`ProxyConnection.browser_pause`
  says how long to stop reading the browser; pointer moves beyond the rate a person makes
  are dropped (:class:`PointerMovesDropped`: neither forwarded nor journaled), and key or
  button events beyond it fail the browser's side with :class:`~gateway.rfb.errors.InputFlood`;
- the desktop's name: the target's DesktopName rectangles reach the browser carrying the
  gateway's name for the desktop instead (the target's own name is untrusted text, as in
  its ServerInit), while the journal keeps the rectangle the target sent. The rectangle
  is replaced, not removed, because the update's header, which counts its rectangles, may
  already be on its way to the browser.

Each chunk fed gives the events of its messages in order (:class:`InputActivity`,
:class:`InputCounted`, :class:`ClipboardBlocked`, :class:`Resized`), then at most one
:class:`PointerMovesDropped`, then one :class:`JournalData` holding exactly what to journal
for that direction; the bytes to forward wait in ``data_to_send_*``, joined once per chunk.
The work of a call is bounded by the size of the chunk, so the I/O layer keeps the event
loop free by feeding a browser's data in slices. The target's direction is the throughput
path: beyond the framer's own work, it costs one pass over the chunk's events.

A peer that breaks the protocol never raises into the caller: the proxy emits
:class:`ProxyFailed` and ignores everything fed after it. Feeding a side after its end of
stream is the caller's bug and raises :class:`~gateway.rfb.errors.LocalProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, TypeAlias

from gateway.rfb.boundary_impl import DESKTOP_NAME, RESIZED, ServerBoundaries
from gateway.rfb.browser_limits import BrowserLimits, TokenBucket
from gateway.rfb.clipboard import (
    MAX_CLIPBOARD_INFLATED,
    ClipboardAction,
    ExtendedClientCutText,
    ExtendedCutText,
    ExtendedServerCutText,
)
from gateway.rfb.errors import InputFlood, LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    ProtocolFailed,
    filter_encodings,
    prefer_encoding,
)
from gateway.rfb.input_presses import InputActivityTracker, InputKind, InputPresses
from gateway.rfb.messages import (
    ClientCutText,
    Encoding,
    KeyEvent,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    ServerCutText,
    ServerInit,
    ServerMessage,
    SetEncodings,
    SetPixelFormat,
)


class Side(Enum):
    """One end of the proxy."""

    BROWSER = "browser"
    TARGET = "target"



@dataclass(frozen=True, slots=True)
class JournalData:
    """Journal these bytes, which ``sender`` sent: as forwarded, less any input only counted, and with
    the target's own DesktopName rectangles where the browser got the gateway's name."""

    sender: Side
    data: bytes
    #: From the browser: the journaled messages as framed, so that no later step frames ``data`` again.
    messages: tuple[ClientMessageReceived, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InputActivity:
    """The operator used the keyboard or the pointer (what the idle watchdog watches): a pointer event that
    moved the pointer or changed its buttons, a key pressed or released — not a key-down repeated while the
    key is held, nor a pointer event that changes nothing (:class:`~gateway.rfb.input_presses.InputActivityTracker`)."""


@dataclass(frozen=True, slots=True)
class InputCounted:
    """Input forwarded but left out of the journal: ``count`` more of ``kind``."""

    kind: InputKind
    count: int


@dataclass(frozen=True, slots=True)
class PointerMovesDropped:
    """``count`` pointer moves came faster than the limit and were dropped (neither forwarded nor journaled)."""

    count: int


@dataclass(frozen=True, slots=True)
class ClipboardBlocked:
    """Cut text of ``length`` bytes (inflated, for the Extended Clipboard) was dropped: the clipboard
    may not cross in ``direction``."""

    direction: Literal["to_remote", "to_local"]
    length: int


@dataclass(frozen=True, slots=True)
class Resized:
    """The target's desktop now has this size."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """``side`` ended its stream; a message it left unfinished was dropped."""

    side: Side


@dataclass(frozen=True, slots=True)
class ProxyFailed:
    """``side`` broke the protocol; nothing fed after this is looked at."""

    side: Side
    error: ProtocolViolation


ProxyEvent: TypeAlias = (
    JournalData
    | InputActivity
    | InputCounted
    | PointerMovesDropped
    | ClipboardBlocked
    | Resized
    | ConnectionClosed
    | ProxyFailed
)

_INPUT_ACTIVITY = InputActivity()
_OPERATOR_INPUT = (KeyEvent, PointerEvent, QEMUExtendedKeyEvent)
_NAME_LENGTH = struct.Struct(">I")


class ProxyConnection:
    """Both directions of one desktop session; see the module docstring."""

    def __init__(
        self,
        server_init: ServerInit,
        *,
        clipboard_to_remote: bool = False,
        clipboard_to_local: bool = False,
        journal_input: bool = True,
        browser_limits: BrowserLimits = BrowserLimits(),
        desktop_name: bytes = b"",
        max_clipboard: int = MAX_CLIPBOARD_INFLATED,
        preferred_encoding: int | None = None,
    ) -> None:
        """Start from the target's ``server_init`` (its size and pixel format frame its first updates).

        The clipboard crosses in no direction unless allowed; ``journal_input=False``
        journals only counts of the operator's input. The browser is held to
        ``browser_limits`` and told ``desktop_name`` when the target renames its desktop. Extended
        Clipboard data inflating past ``max_clipboard`` bytes, from either side, fails the session.
        The browser's SetEncodings is forwarded with ``preferred_encoding`` first when it lists it.
        """
        self._browser = ClientMessageFramer(max_cut_text=browser_limits.max_cut_text, max_clipboard=max_clipboard)
        self._target = ServerBoundaries(
            server_init.pixel_format, server_init.width, server_init.height, max_clipboard=max_clipboard
        )
        self._clipboard_to_remote = clipboard_to_remote
        self._clipboard_to_local = clipboard_to_local
        self._journal_input = journal_input
        self._preferred_encoding = preferred_encoding
        self._limits = browser_limits
        self._message_tokens = TokenBucket(browser_limits.messages_per_second, browser_limits.message_burst)
        self._move_tokens = TokenBucket(browser_limits.pointer_moves_per_second, browser_limits.pointer_move_burst)
        self._press_tokens = TokenBucket(browser_limits.presses_per_second, browser_limits.press_burst)
        self._buttons = 0  # the pointer's buttons as last forwarded: a pointer event with others is a press
        self._desktop_name_rectangle = (
            Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME).encode() + _NAME_LENGTH.pack(len(desktop_name)) + desktop_name
        )
        self._presses = InputPresses()
        self._activity = InputActivityTracker()
        self._events: list[ProxyEvent] = []
        self._to_browser: list[bytes] = []
        self._to_target: list[bytes] = []
        self._ended: set[Side] = set()
        self._failed = False

    def receive_browser_data(self, data: bytes, now: float | None = None) -> None:
        """Feed bytes read from the browser; ``now``, the caller's monotonic clock in seconds, refills
        the input limits (without it, no time has passed since the last call)."""
        if not self._accepts(Side.BROWSER):
            return
        if now is not None:
            self._message_tokens.refill(now)
            self._move_tokens.refill(now)
            self._press_tokens.refill(now)
        self._browser.receive_data(data)
        framed = self._browser.events_received()
        self._message_tokens.spend(len(framed))
        events = self._events
        forwarded: list[bytes] = []  # to the target, in order
        journaled: list[ClientMessageReceived] = []  # to the journal: all of it, or all but the operator's input
        active = False
        dropped = 0
        failure: ProtocolViolation | None = None  # the messages before it are still forwarded and journaled
        for event in framed:
            if isinstance(event, ProtocolFailed):
                failure = event.error
                break
            message, raw = event.message, event.raw
            journal = True
            if isinstance(message, _OPERATOR_INPUT):
                if self._activity.is_activity(message) and not active:  # the tracker sees every message
                    active = True
                    events.append(_INPUT_ACTIVITY)
                if isinstance(message, PointerEvent) and message.button_mask == self._buttons:
                    if not self._move_tokens.take():
                        dropped += 1
                        continue
                elif self._press_tokens.take():
                    if isinstance(message, PointerEvent):
                        self._buttons = message.button_mask
                else:
                    rate = self._limits.presses_per_second
                    failure = InputFlood(f"key or button events faster than a person can (over {rate:g} a second)")
                    break
                if not self._journal_input:
                    journal = False
                    self._count_input(message)
            elif isinstance(message, SetEncodings):
                allowed = prefer_encoding(filter_encodings(message.encodings), self._preferred_encoding)
                self._target.set_encodings(allowed)
                if allowed != message.encodings:
                    raw = SetEncodings(allowed).encode()
            elif isinstance(message, SetPixelFormat):
                self._target.set_pixel_format(message.pixel_format)
            elif isinstance(message, ClientCutText | ExtendedClientCutText):
                if isinstance(message, ClientCutText):
                    if not self._clipboard_to_remote:
                        events.append(ClipboardBlocked("to_remote", len(message.text)))
                        continue
                elif not self._extended_clipboard_crosses(message, from_browser=True):
                    continue
                if not self._journal_input and (
                    isinstance(message, ClientCutText) or message.action == ClipboardAction.PROVIDE
                ):
                    journal = False
                    events.append(InputCounted("cut_text", 1))
            forwarded.append(raw)
            if journal:
                journaled.append(event if raw is event.raw else ClientMessageReceived(message, raw))
        if dropped:
            events.append(PointerMovesDropped(dropped))
        if forwarded:
            payload = b"".join(forwarded)
            self._to_target.append(payload)
            if len(journaled) == len(forwarded):
                events.append(JournalData(Side.BROWSER, payload, tuple(journaled)))
            elif journaled:
                events.append(JournalData(Side.BROWSER, b"".join(each.raw for each in journaled), tuple(journaled)))
        if failure is not None:
            self._fail(Side.BROWSER, failure)

    def receive_target_data(self, data: bytes) -> None:
        """Feed bytes read from the target (the hot path: no object per rectangle)."""
        if not self._accepts(Side.TARGET):
            return
        target = self._target
        framed = target.receive_data(data)
        if target.marks:
            forwarded, journaled = self._look_at(framed, target.marks, target.messages)
        else:
            forwarded = journaled = framed
        if forwarded:
            self._to_browser.append(forwarded)
        if journaled:
            self._events.append(JournalData(Side.TARGET, journaled))
        if target.error is not None:
            self._fail(Side.TARGET, target.error)

    def _look_at(
        self, framed: bytes, marks: list[int], messages: list[ServerMessage | ExtendedServerCutText]
    ) -> tuple[bytes, bytes]:
        """What to forward and what to journal of ``framed``, given the pieces the target's framer marked:
        cut text the clipboard rule stops is neither; a DesktopName rectangle is forwarded with the
        gateway's name and journaled as sent; a size change is reported."""
        forwarded: list[bytes] = []
        renamed: list[tuple[int, bytes]] = []  # where in forwarded a DesktopName was replaced, and the target's own
        done = 0  # framed[:done] is dealt with
        message_index = 0
        for at in range(0, len(marks), 3):
            kind, start, end = marks[at], marks[at + 1], marks[at + 2]
            if kind == RESIZED:
                _, _, width, height, _ = Rectangle.LAYOUT.unpack_from(framed, start)
                self._events.append(Resized(width, height))
                continue
            forwarded.append(framed[done:start])
            done = end
            if kind == DESKTOP_NAME:
                renamed.append((len(forwarded), framed[start:end]))
                forwarded.append(self._desktop_name_rectangle)
                continue
            message = messages[message_index]
            message_index += 1
            if isinstance(message, ServerCutText):
                crosses = self._clipboard_to_local
                if not crosses:
                    self._events.append(ClipboardBlocked("to_local", len(message.text)))
            elif isinstance(message, ExtendedServerCutText):
                crosses = self._extended_clipboard_crosses(message, from_browser=False)
            else:
                crosses = True
            if crosses:
                forwarded.append(framed[start:end])
        forwarded.append(framed[done:])
        to_browser = b"".join(forwarded)
        if not renamed:
            return to_browser, to_browser
        for index, raw in renamed:  # the journal keeps what the target sent
            forwarded[index] = raw
        return to_browser, b"".join(forwarded)

    def receive_eof(self, side: Side) -> None:
        """``side`` closed its connection; a repeated end of stream is ignored."""
        if side in self._ended:
            return
        self._ended.add(side)
        if not self._failed:
            self._events.append(ConnectionClosed(side))

    def browser_pause(self) -> float:
        """Seconds to wait before feeding more of the browser's data: 0.0 unless it sent messages
        faster than its budget (the time from the last ``now`` until the budget is back in credit)."""
        return self._message_tokens.debt_seconds()

    def data_to_send_browser(self) -> bytes:
        """The bytes to write to the browser now, once; ``b""`` when there are none."""
        return _take(self._to_browser)

    def data_to_send_target(self) -> bytes:
        """The bytes to write to the target now, once; ``b""`` when there are none."""
        return _take(self._to_target)

    def events_received(self) -> list[ProxyEvent]:
        """The events since the last call, in order."""
        events, self._events = self._events, []
        return events

    def _accepts(self, side: Side) -> bool:
        if side in self._ended:
            raise LocalProtocolError(f"data from the {side.value} after its end of stream")
        return not self._failed

    def _fail(self, side: Side, error: ProtocolViolation) -> None:
        self._failed = True
        self._events.append(ProxyFailed(side, error))

    def _extended_clipboard_crosses(self, message: ExtendedCutText, *, from_browser: bool) -> bool:
        """Whether an Extended Clipboard message may cross; a dropped notify or provide is reported."""
        action = message.action
        if action == ClipboardAction.CAPS:
            return True
        moves_own_clipboard = action in (ClipboardAction.NOTIFY, ClipboardAction.PROVIDE)
        to_remote = from_browser == moves_own_clipboard
        if self._clipboard_to_remote if to_remote else self._clipboard_to_local:
            return True
        if moves_own_clipboard:
            self._events.append(ClipboardBlocked("to_remote" if to_remote else "to_local", message.inflated_length))
        return False

    def _count_input(self, message: KeyEvent | PointerEvent | QEMUExtendedKeyEvent) -> None:
        keys, clicks = self._presses.presses(message)
        if keys:
            self._events.append(InputCounted("keys", keys))
        if clicks:
            self._events.append(InputCounted("clicks", clicks))
        if isinstance(message, PointerEvent):
            self._events.append(InputCounted("pointer", 1))


def _take(pending: list[bytes]) -> bytes:
    """Everything in ``pending``, joined (without a copy when it is one chunk); leaves it empty."""
    data = pending[0] if len(pending) == 1 else b"".join(pending)
    pending.clear()
    return data
