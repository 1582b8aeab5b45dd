"""Cut each RFB byte stream into whole messages, as events, without decoding a pixel.

The target's stream is cut by :class:`~gateway.rfb.boundaries.ServerBoundaries`, the one
definition of its framing rules and limits; :class:`ServerMessageFramer` builds an event for
each piece it finds (the recorder, the live viewer and the tests use them; the proxy forwards
from the boundaries alone). The browser's stream is parsed here by generators in the style of
python-websockets: they read from a :class:`~gateway.rfb.streams.StreamReader` with ``yield
from reader.read_exact(n)`` and resume when more bytes arrive. Either way a message split at
any byte frames the same. The framers never raise into the caller: on a violation they stop
and emit a final :class:`ProtocolFailed` carrying the exception; later data is ignored and freed.

Every event carries ``raw``, the exact wire bytes it covers: the concatenation of ``raw`` over
all events is the stream itself (up to a failure). Events are named tuples: the recorder
builds one per rectangle.

Every length field is checked against its limit before anything waits for, or allocates,
the bytes it announces. Cut text, classic or Extended Clipboard, is read by :mod:`gateway.rfb.clipboard`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import NamedTuple, TypeAlias

from gateway.rfb.boundary_impl import (
    DESKTOP_NAME,
    RECTANGLE,
    RESIZED,
    UPDATE,
    UPDATE_END,
    ServerBoundaries,
    boundaries,
)
from gateway.rfb.clipboard import (
    EXTENDED_CLIPBOARD_ENCODING,
    MAX_CLIPBOARD_INFLATED,
    ExtendedClientCutText,
    ExtendedServerCutText,
    read_cut_text,
)
from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.messages import (
    COMPRESS_LEVELS,
    JPEG_QUALITY_LEVELS,
    ClientCutText,
    ClientMessage,
    ClientMessageType,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    ServerMessage,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb.streams import StreamReader

#: The largest desktop the gateway frames (and the recorder replays), unless told otherwise.
MAX_FRAMEBUFFER: tuple[int, int] = boundaries.MAX_FRAMEBUFFER
check_framebuffer_size = boundaries.check_framebuffer_size

Parser: TypeAlias = Generator[None, None, None]


# ---------------------------------------------------------------- events


class ProtocolFailed(NamedTuple):
    """The stream broke the protocol or a limit; nothing after this is parsed."""

    error: ProtocolViolation
    raw: bytes = b""


class ClientMessageReceived(NamedTuple):
    message: ClientMessage | ExtendedClientCutText
    raw: bytes


class UpdateBegin(NamedTuple):
    """A FramebufferUpdate header; its rectangles follow, then :class:`UpdateEnd`."""

    rect_count: int
    raw: bytes


class RectangleReceived(NamedTuple):
    """One rectangle: ``raw`` is its 12-byte header followed by ``payload``."""

    rect: Rectangle
    payload: bytes
    raw: bytes


class UpdateEnd(NamedTuple):
    """The update is complete: its last rectangle, or a LastRect, was received."""

    raw: bytes = b""


class DesktopResized(NamedTuple):
    """The framebuffer now has this size (right after the DesktopSize/ExtendedDesktopSize rectangle)."""

    width: int
    height: int
    raw: bytes = b""


class ServerMessageReceived(NamedTuple):
    message: ServerMessage | ExtendedServerCutText
    raw: bytes


ClientEvent: TypeAlias = ClientMessageReceived | ProtocolFailed
ServerEvent: TypeAlias = (
    UpdateBegin | RectangleReceived | UpdateEnd | ServerMessageReceived | DesktopResized | ProtocolFailed
)


class _Framer:
    """Feeds a parser generator and collects its events; see the module docstring."""

    def __init__(self) -> None:
        self._reader = StreamReader()
        self._events: list[ClientEvent] = []
        self._failed = False
        self._parser = self._parse()
        next(self._parser)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; parse as far as they go."""
        if self._failed:
            return
        self._reader.feed_data(data)
        next(self._parser)

    def events_received(self) -> list[ClientEvent]:
        """Return the events parsed since the last call, and forget them."""
        events, self._events = self._events, []
        return events

    def _parse(self) -> Parser:
        try:
            yield from self._parse_messages()
        except ProtocolViolation as exc:
            self._failed = True
            self._reader.buffer.clear()
            self._events.append(ProtocolFailed(exc))
        yield  # so that this next() returns; receive_data feeds nothing after a failure

    def _parse_messages(self) -> Parser:
        raise NotImplementedError

    def _read_counted(
        self, message: type[SetEncodings | SetDesktopSize], limit: int, items: str
    ) -> Generator[None, None, bytes]:
        """Read a message whose header counts the items that follow, refusing a count over ``limit`` first."""
        header = message.HEADER
        yield from self._reader.wait_for(header.size)
        count: int = header.unpack_from(self._reader.buffer)[-1]
        if count > limit:
            raise LimitExceeded(f"{message.__name__} announces {count} {items}; the limit is {limit}")
        return (yield from self._reader.read_exact(header.size + count * message.ITEM_SIZE))


def checked_cut_text_limit(limit: int) -> int:
    """A cut-text limit (on the wire, either form) must stay under 2**31, the largest length either form can say."""
    if not 0 <= limit < 1 << 31:
        raise ValueError(f"the cut-text limit must be from 0 to 2**31 - 1 bytes, not {limit}")
    return limit


# ---------------------------------------------------------------- browser → gateway

_FIXED_SIZE_CLIENT_MESSAGES: dict[int, type[SetPixelFormat | FramebufferUpdateRequest | KeyEvent | PointerEvent]] = {
    ClientMessageType.SET_PIXEL_FORMAT: SetPixelFormat,
    ClientMessageType.FRAMEBUFFER_UPDATE_REQUEST: FramebufferUpdateRequest,
    ClientMessageType.KEY_EVENT: KeyEvent,
    ClientMessageType.POINTER_EVENT: PointerEvent,
}


class ClientMessageFramer(_Framer):
    """Cuts the browser's stream (after the handshake) into :class:`ClientMessageReceived` events."""

    def __init__(self, *, max_cut_text: int = 1 << 20, max_clipboard: int = MAX_CLIPBOARD_INFLATED,
                 max_encodings: int = 64, max_screens: int = 16) -> None:
        self._max_cut_text = checked_cut_text_limit(max_cut_text)
        self._max_clipboard = max_clipboard
        self._max_encodings = max_encodings
        self._max_screens = max_screens
        super().__init__()

    def _parse_messages(self) -> Parser:
        reader = self._reader
        while True:
            yield from reader.wait_for(1)
            message_type = reader.buffer[0]
            message: type[ClientMessage]
            if message_type == ClientMessageType.CLIENT_CUT_TEXT:  # classic or Extended Clipboard
                cut_text, raw = yield from read_cut_text(
                    reader, ClientCutText, ExtendedClientCutText, self._max_cut_text, self._max_clipboard
                )
                self._events.append(ClientMessageReceived(cut_text, raw))
                continue
            if message_type in _FIXED_SIZE_CLIENT_MESSAGES:
                message = _FIXED_SIZE_CLIENT_MESSAGES[message_type]
                raw = yield from reader.read_exact(message.LAYOUT.size)
            elif message_type == ClientMessageType.SET_ENCODINGS:
                message = SetEncodings
                raw = yield from self._read_counted(message, self._max_encodings, "encodings")
            elif message_type == ClientMessageType.SET_DESKTOP_SIZE:
                message = SetDesktopSize
                raw = yield from self._read_counted(message, self._max_screens, "screens")
            elif message_type == ClientMessageType.QEMU:
                message = QEMUExtendedKeyEvent
                yield from reader.wait_for(2)
                if reader.buffer[1] != 0:
                    raise UnsupportedEncoding(f"QEMU client message sub-type {reader.buffer[1]} is not supported")
                raw = yield from reader.read_exact(message.LAYOUT.size)
            else:
                raise UnsupportedEncoding(f"client message type {message_type} is not supported")
            self._events.append(ClientMessageReceived(message.parse(raw), raw))


# ---------------------------------------------------------------- target → gateway

#: Everything :class:`ServerMessageFramer` can frame, plus the tuning pseudo-encodings and the Extended Clipboard.
FRAMEABLE_ENCODINGS = frozenset((*Encoding, *JPEG_QUALITY_LEVELS, *COMPRESS_LEVELS, EXTENDED_CLIPBOARD_ENCODING))


def filter_encodings(requested: Iterable[int]) -> tuple[int, ...]:
    """The client's encodings, in its order, without those the server framer cannot frame."""
    return tuple(encoding for encoding in requested if encoding in FRAMEABLE_ENCODINGS)


def prefer_encoding(encodings: tuple[int, ...], preferred: int | None) -> tuple[int, ...]:
    """``encodings`` with ``preferred`` first, when the client listed it (an encoding it cannot decode is never added)."""
    if preferred is None or preferred not in encodings or encodings[0] == preferred:
        return encodings
    return (preferred, *(encoding for encoding in encodings if encoding != preferred))


_RECT_HEADER = Rectangle.LAYOUT
_RECT_HEADER_SIZE = _RECT_HEADER.size
_UPDATE_END = UpdateEnd()


class ServerMessageFramer:
    """Cuts the target's stream (after the handshake) into updates, rectangles and messages.

    The rules are :class:`~gateway.rfb.boundaries.ServerBoundaries`' (every piece marked);
    this class only builds an event for each piece it marks.
    """

    def __init__(
        self,
        pixel_format: PixelFormat,
        width: int,
        height: int,
        *,
        encodings: Iterable[int] = (Encoding.RAW,),
        max_framebuffer: tuple[int, int] = MAX_FRAMEBUFFER,
        max_cut_text: int = 1 << 20,
        max_clipboard: int = MAX_CLIPBOARD_INFLATED,
        max_name: int = 1024,
        max_payload: int = 64 << 20,
    ) -> None:
        self._boundaries = ServerBoundaries(
            pixel_format, width, height, encodings=encodings, max_framebuffer=max_framebuffer,
            max_cut_text=checked_cut_text_limit(max_cut_text), max_clipboard=max_clipboard, max_name=max_name,
            max_payload=max_payload, every_piece=True,
        )
        self._events: list[ServerEvent] = []
        self._failed = False

    @property
    def width(self) -> int:
        return self._boundaries.width

    @property
    def height(self) -> int:
        return self._boundaries.height

    @property
    def pixel_format(self) -> PixelFormat:
        return self._boundaries.pixel_format

    def set_pixel_format(self, pixel_format: PixelFormat) -> None:
        """Frame later rectangles in ``pixel_format`` (the client's SetPixelFormat was forwarded)."""
        self._boundaries.set_pixel_format(pixel_format)

    def set_encodings(self, encodings: Iterable[int]) -> None:
        """Accept rectangles only in ``encodings`` (the client's forwarded SetEncodings) and Raw."""
        self._boundaries.set_encodings(encodings)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the target; parse as far as they go."""
        if self._failed:
            return
        boundaries = self._boundaries
        framed = boundaries.receive_data(data)
        marks = boundaries.marks
        messages = iter(boundaries.messages)
        append = self._events.append
        for at in range(0, len(marks), 3):
            kind, start, end = marks[at], marks[at + 1], marks[at + 2]
            if kind == RECTANGLE or kind == DESKTOP_NAME:
                raw = framed[start:end]
                append(RectangleReceived(Rectangle(*_RECT_HEADER.unpack_from(raw)), raw[_RECT_HEADER_SIZE:], raw))
            elif kind == UPDATE:
                raw = framed[start:end]
                append(UpdateBegin(raw[2] << 8 | raw[3], raw))
            elif kind == UPDATE_END:
                append(_UPDATE_END)
            elif kind == RESIZED:
                _, _, width, height, _ = _RECT_HEADER.unpack_from(framed, start)
                append(DesktopResized(width, height))
            else:
                append(ServerMessageReceived(next(messages), framed[start:end]))
        if boundaries.error is not None:
            self._failed = True
            append(ProtocolFailed(boundaries.error))

    def events_received(self) -> list[ServerEvent]:
        """Return the events parsed since the last call, and forget them."""
        events, self._events = self._events, []
        return events
