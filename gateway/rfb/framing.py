"""Cut each RFB byte stream into whole messages, without decoding a pixel.

The parsers are generators in the style of python-websockets: they read from a
:class:`~gateway.rfb.streams.StreamReader` with ``yield from reader.read_exact(n)`` and
resume when more bytes arrive, so a message split at any byte parses the same. They
never raise into the caller: on a violation the parser stops and emits a final
:class:`ProtocolFailed` carrying the exception; later data is ignored and freed.

The target's stream is the hot path: rectangles are measured in place; an update yields only inside a rectangle.

Every event carries ``raw``, the exact wire bytes it covers: the concatenation of ``raw`` over
all events is the stream itself (up to a failure). The proxy (:mod:`gateway.rfb.proxy`)
forwards ``raw`` of the events it allows and the recorder journals it, byte for byte.

Every length field is checked against its limit before anything waits for, or allocates,
the bytes it announces. Cut text, classic or Extended Clipboard, is read by :mod:`gateway.rfb.clipboard`.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from gateway.rfb.clipboard import (
    EXTENDED_CLIPBOARD_ENCODING,
    MAX_CLIPBOARD_INFLATED,
    ExtendedClientCutText,
    ExtendedServerCutText,
    read_cut_text,
)
from gateway.rfb.constants import (
    HEXTILE_DEFINED_BITS,
    HEXTILE_TILE_SIZE,
    TIGHT_MIN_TO_COMPRESS,
    ExtendedDesktopSizeReason,
    ExtendedDesktopSizeStatus,
    HextileSubencoding,
    TightBasic,
    TightCompression,
    TightFilter,
)
from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.hextile import check_hextile_subrects
from gateway.rfb.messages import (
    COMPRESS_LEVELS,
    JPEG_QUALITY_LEVELS,
    UPDATE_HEADER,
    Bell,
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
    Screen,
    ServerCutText,
    ServerMessage,
    ServerMessageType,
    SetColourMapEntries,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb.streams import StreamReader

Parser: TypeAlias = Generator[None, None, None]


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ProtocolFailed:
    """The stream broke the protocol or a limit; nothing after this is parsed."""

    error: ProtocolViolation
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class ClientMessageReceived:
    message: ClientMessage | ExtendedClientCutText
    raw: bytes


@dataclass(frozen=True, slots=True)
class UpdateBegin:
    """A FramebufferUpdate header; its rectangles follow, then :class:`UpdateEnd`."""

    rect_count: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class RectangleReceived:
    """One rectangle: ``raw`` is its 12-byte header followed by ``payload``."""

    rect: Rectangle
    payload: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class UpdateEnd:
    """The update is complete: its last rectangle, or a LastRect, was received."""

    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class DesktopResized:
    """The framebuffer now has this size (right after the DesktopSize/ExtendedDesktopSize rectangle)."""

    width: int
    height: int
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class ServerMessageReceived:
    message: ServerMessage | ExtendedServerCutText
    raw: bytes


ClientEvent: TypeAlias = ClientMessageReceived | ProtocolFailed
ServerEvent: TypeAlias = (
    UpdateBegin | RectangleReceived | UpdateEnd | ServerMessageReceived | DesktopResized | ProtocolFailed
)
EventT = TypeVar("EventT", ClientEvent, ServerEvent)


class _Framer(Generic[EventT]):
    """Feeds a parser generator and collects its events; see the module docstring."""

    def __init__(self) -> None:
        self._reader = StreamReader()
        self._events: list[EventT] = []
        self._failed = False
        self._parser = self._parse()
        next(self._parser)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; parse as far as they go."""
        if self._failed:
            return
        self._reader.feed_data(data)
        next(self._parser)

    def events_received(self) -> list[EventT]:
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
        self, message: type[SetEncodings | SetDesktopSize | SetColourMapEntries], limit: int, items: str
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


class ClientMessageFramer(_Framer[ClientEvent]):
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


#: The largest desktop the gateway frames (and the recorder replays), unless told otherwise.
MAX_FRAMEBUFFER = (16384, 16384)


def check_framebuffer_size(width: int, height: int, limit: tuple[int, int]) -> None:
    """Raise :class:`LimitExceeded` unless the desktop is at least 1x1 and at most ``limit``."""
    max_width, max_height = limit
    if not (0 < width <= max_width and 0 < height <= max_height):
        raise LimitExceeded(f"a desktop of {width}x{height} is outside the limits 1x1 to {max_width}x{max_height}")


def filter_encodings(requested: Iterable[int]) -> tuple[int, ...]:
    """The client's encodings, in its order, without those the server framer cannot frame."""
    return tuple(encoding for encoding in requested if encoding in FRAMEABLE_ENCODINGS)


_RECT_HEADER = Rectangle.LAYOUT  # x, y, width, height: U16; encoding: S32
_RECT_HEADER_SIZE = _RECT_HEADER.size
_U32 = struct.Struct(">I")
_COPY_RECT_SOURCE = struct.Struct(">HH")
_RESIZE_ENCODINGS = (Encoding.DESKTOP_SIZE, Encoding.EXTENDED_DESKTOP_SIZE)
_NO_PAYLOAD_ENCODINGS = (Encoding.DESKTOP_SIZE, Encoding.LAST_RECT, Encoding.QEMU_EXTENDED_KEY_EVENT)
_SCREEN_SIZE = Screen.LAYOUT.size

# Plain ints for the hot loops: looking up an enum member costs more than comparing.
_LAST_RECT = int(Encoding.LAST_RECT)
_HEXTILE_RAW = int(HextileSubencoding.RAW)
_HEXTILE_BACKGROUND = int(HextileSubencoding.BACKGROUND_SPECIFIED)
_HEXTILE_FOREGROUND = int(HextileSubencoding.FOREGROUND_SPECIFIED)
_HEXTILE_ANY_SUBRECTS = int(HextileSubencoding.ANY_SUBRECTS)
_HEXTILE_SUBRECTS_COLOURED = int(HextileSubencoding.SUBRECTS_COLOURED)
_TIGHT_FILL = int(TightCompression.FILL)
_TIGHT_JPEG = int(TightCompression.JPEG)
_TIGHT_EXPLICIT_FILTER = int(TightBasic.EXPLICIT_FILTER)
_TIGHT_COPY = int(TightFilter.COPY)
_TIGHT_PALETTE = int(TightFilter.PALETTE)
_TIGHT_GRADIENT = int(TightFilter.GRADIENT)


class ServerMessageFramer(_Framer[ServerEvent]):
    """Cuts the target's stream (after the handshake) into updates, rectangles and messages."""

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
        self.set_pixel_format(pixel_format)
        self._width = width
        self._height = height
        self.set_encodings(encodings)
        self._max_framebuffer = max_framebuffer
        self._max_cut_text = checked_cut_text_limit(max_cut_text)
        self._max_clipboard = max_clipboard
        self._max_name = max_name
        self._max_payload = max_payload
        self._hextile_at = (0, 0, _RECT_HEADER_SIZE)  # where a Hextile walk resumes: tile y, tile x, offset
        super().__init__()

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def pixel_format(self) -> PixelFormat:
        return self._pixel_format

    def set_pixel_format(self, pixel_format: PixelFormat) -> None:
        """Frame later rectangles in ``pixel_format`` (the client's SetPixelFormat was forwarded)."""
        self._pixel_format = pixel_format
        self._bytes_per_pixel = pixel_format.bytes_per_pixel  # looked up once: used for every rectangle
        self._tight_pixel_size = pixel_format.tight_pixel_size

    def set_encodings(self, encodings: Iterable[int]) -> None:
        """Accept rectangles only in ``encodings`` (the client's forwarded SetEncodings) and Raw."""
        self._encodings = frozenset(encodings) | {Encoding.RAW}

    def _parse_messages(self) -> Parser:
        reader = self._reader
        while True:
            yield from reader.wait_for(1)
            message_type = reader.buffer[0]
            message: ServerMessage | ExtendedServerCutText
            if message_type == ServerMessageType.FRAMEBUFFER_UPDATE:
                yield from self._parse_update()
                continue
            if message_type == ServerMessageType.SET_COLOUR_MAP_ENTRIES:
                # 65535 colours are at most 393 KB; parse() checks they fit the 65536-entry map.
                raw = yield from self._read_counted(SetColourMapEntries, 0xFFFF, "colours")
                message = SetColourMapEntries.parse(raw)
            elif message_type == ServerMessageType.BELL:
                raw = yield from reader.read_exact(Bell.LAYOUT.size)
                message = Bell()
            elif message_type == ServerMessageType.SERVER_CUT_TEXT:
                message, raw = yield from read_cut_text(
                    reader, ServerCutText, ExtendedServerCutText, self._max_cut_text, self._max_clipboard
                )
            else:
                raise UnsupportedEncoding(f"server message type {message_type} is not supported")
            self._events.append(ServerMessageReceived(message, raw))

    def _parse_update(self) -> Parser:
        reader = self._reader
        buffer = reader.buffer
        # Fast path: while whole rectangles are buffered, this loop neither enters nor resumes a
        # generator; it yields only when the buffer ends inside a rectangle.
        if len(buffer) < UPDATE_HEADER.size:
            yield from reader.wait_for(UPDATE_HEADER.size)
        header = reader.take(UPDATE_HEADER.size)
        (_, rect_count) = UPDATE_HEADER.unpack(header)
        self._events.append(UpdateBegin(rect_count, header))
        for _ in range(rect_count):
            if len(buffer) < _RECT_HEADER_SIZE:
                yield from reader.wait_for(_RECT_HEADER_SIZE)
            rect = Rectangle(*_RECT_HEADER.unpack_from(buffer))
            encoding = rect.encoding
            new_size = self._new_size(rect) if encoding in _RESIZE_ENCODINGS else None
            self._hextile_at = (0, 0, _RECT_HEADER_SIZE)
            while True:
                try:
                    length = self._payload_length(rect)
                except _Incomplete as incomplete:
                    needed = incomplete.size
                else:
                    break
                yield from reader.wait_for(needed)
            if length > self._max_payload:
                raise LimitExceeded(f"a rectangle of {length} bytes is over the limit of {self._max_payload} bytes")
            size = _RECT_HEADER_SIZE + length
            if len(buffer) < size:
                yield from reader.wait_for(size)
            raw = reader.take(size)
            self._events.append(RectangleReceived(rect, raw[_RECT_HEADER_SIZE:], raw))
            if new_size is not None:
                self._width, self._height = new_size
                self._events.append(DesktopResized(*new_size))
            elif encoding == _LAST_RECT:
                break
        self._events.append(UpdateEnd())

    def _new_size(self, rect: Rectangle) -> tuple[int, int] | None:
        """The framebuffer size a DesktopSize/ExtendedDesktopSize rectangle sets, checked against the limits."""
        # x = 1 with a non-zero y answers our SetDesktopSize with an error: the size stays.
        if (
            rect.encoding == Encoding.EXTENDED_DESKTOP_SIZE
            and rect.x == ExtendedDesktopSizeReason.CLIENT
            and rect.y != ExtendedDesktopSizeStatus.OK
        ):
            return None
        check_framebuffer_size(rect.width, rect.height, self._max_framebuffer)
        return rect.width, rect.height

    # The payload-length methods read the fields they need in place, after the rectangle's header at
    # the start of the buffer. If the buffer ends before a field, they raise _Incomplete and are run
    # again once it holds that many bytes: they must check things in the order the bytes come.

    def _payload_length(self, rect: Rectangle) -> int:
        """How many bytes follow the rectangle's header (RFC 6143 §7.7 and the community registry)."""
        encoding, width, height = rect.encoding, rect.width, rect.height
        if encoding not in self._encodings:
            raise ProtocolViolation(
                f"the target sent a rectangle in encoding {encoding}, which the client did not request"
            )
        if encoding >= 0:
            self._check_inside(rect.x, rect.y, width, height, "rectangle")
        buffer = self._reader.buffer
        # The encodings are disjoint: the busiest come first.
        if encoding == Encoding.TIGHT:
            return self._tight_length(rect)
        if encoding == Encoding.ZRLE:
            return self._prefixed_length(self._max_payload, "ZRLE data")
        if encoding == Encoding.HEXTILE:
            return self._hextile_length(rect)
        if encoding == Encoding.RAW:
            return width * height * self._bytes_per_pixel
        if encoding == Encoding.COPY_RECT:
            _need(buffer, _RECT_HEADER_SIZE + 4)
            source_x, source_y = _COPY_RECT_SOURCE.unpack_from(buffer, _RECT_HEADER_SIZE)
            self._check_inside(source_x, source_y, width, height, "CopyRect source")
            return 4
        if encoding == Encoding.RRE:
            return self._rre_length(rect)
        if encoding == Encoding.CURSOR:
            return width * height * self._bytes_per_pixel + (width + 7) // 8 * height
        if encoding in _NO_PAYLOAD_ENCODINGS:
            return 0
        if encoding == Encoding.EXTENDED_DESKTOP_SIZE:
            _need(buffer, _RECT_HEADER_SIZE + 1)
            return 4 + _SCREEN_SIZE * buffer[_RECT_HEADER_SIZE]
        if encoding == Encoding.DESKTOP_NAME:
            return self._prefixed_length(self._max_name, "desktop name")
        raise UnsupportedEncoding(f"encoding {encoding} is not supported")

    def _check_inside(self, x: int, y: int, width: int, height: int, what: str) -> None:
        if x + width > self._width or y + height > self._height:
            raise ProtocolViolation(
                f"{what} {width}x{height} at ({x}, {y}) lies outside the {self._width}x{self._height} framebuffer"
            )

    def _prefixed_length(self, limit: int, what: str) -> int:
        """A U32 length followed by that many bytes."""
        buffer = self._reader.buffer
        _need(buffer, _RECT_HEADER_SIZE + 4)
        length: int = _U32.unpack_from(buffer, _RECT_HEADER_SIZE)[0]
        if length > limit:
            raise LimitExceeded(f"{what} of {length} bytes is over the limit of {limit} bytes")
        return 4 + length

    def _rre_length(self, rect: Rectangle) -> int:
        """U32 count, background pixel, then count × (pixel, x, y, w, h), each inside the rectangle."""
        buffer = self._reader.buffer
        bytes_per_pixel = self._bytes_per_pixel
        subrects_at = _RECT_HEADER_SIZE + 4 + bytes_per_pixel
        _need(buffer, subrects_at)
        count: int = _U32.unpack_from(buffer, _RECT_HEADER_SIZE)[0]
        if count > rect.width * rect.height:
            raise ProtocolViolation(f"RRE announces {count} sub-rectangles in a {rect.width}x{rect.height} rectangle")
        length = subrects_at - _RECT_HEADER_SIZE + count * (bytes_per_pixel + 8)
        if length > self._max_payload:
            raise LimitExceeded(f"an RRE rectangle of {length} bytes is over the limit of {self._max_payload} bytes")
        _need(buffer, _RECT_HEADER_SIZE + length)
        subrect = struct.Struct(f">{bytes_per_pixel}xHHHH")
        for x, y, width, height in subrect.iter_unpack(buffer[subrects_at : _RECT_HEADER_SIZE + length]):
            if x + width > rect.width or y + height > rect.height:
                raise ProtocolViolation(f"RRE sub-rectangle {width}x{height} at ({x}, {y}) lies outside its rectangle")
        return length

    def _hextile_length(self, rect: Rectangle) -> int:
        """Walk the 16x16 tiles in place; only sub-rectangle bounds are looked at, never pixels.

        When the buffer ends inside a tile, the next run resumes at that tile (``_hextile_at``):
        a rectangle arriving in many pieces is still walked about once.
        """
        buffer = self._reader.buffer
        available = len(buffer)
        bytes_per_pixel = self._bytes_per_pixel
        width, height = rect.width, rect.height
        end_limit = _RECT_HEADER_SIZE + self._max_payload
        first_y, first_x, position = self._hextile_at
        # Tiles run left to right then top to bottom; the last column and row may be smaller.
        tile = HEXTILE_TILE_SIZE
        for tile_y in range(first_y, height, tile):
            tile_height = tile if tile_y + tile <= height else height - tile_y
            for tile_x in range(first_x, width, tile):
                tile_width = tile if tile_x + tile <= width else width - tile_x
                self._hextile_at = (tile_y, tile_x, position)  # where to resume if the tile is incomplete
                if position >= available:
                    raise _Incomplete(position + 1)
                mask = buffer[position]
                position += 1
                if mask > HEXTILE_DEFINED_BITS:
                    raise ProtocolViolation(f"Hextile sub-encoding mask {mask:#x} has undefined bits set")
                if mask & _HEXTILE_RAW:
                    position += tile_width * tile_height * bytes_per_pixel
                    continue
                if mask & _HEXTILE_BACKGROUND:
                    position += bytes_per_pixel
                if mask & _HEXTILE_FOREGROUND:
                    position += bytes_per_pixel
                if mask & _HEXTILE_ANY_SUBRECTS:
                    if position >= available:
                        raise _Incomplete(position + 1)
                    stride = 2 + bytes_per_pixel if mask & _HEXTILE_SUBRECTS_COLOURED else 2
                    end = position + 1 + buffer[position] * stride
                    if end > available:
                        raise _Incomplete(end)
                    check_hextile_subrects(buffer, position + 1, end, stride, tile_width, tile_height)
                    position = end
                if position > end_limit:
                    raise LimitExceeded(f"a Hextile rectangle is over the limit of {self._max_payload} bytes")
            first_x = 0
        return position - _RECT_HEADER_SIZE

    def _tight_length(self, rect: Rectangle) -> int:
        """Compression control, then fill pixel, JPEG data, or (filtered) basic data (TightVNC's rfbproto.h)."""
        buffer = self._reader.buffer
        pixel_size = self._tight_pixel_size
        position = _RECT_HEADER_SIZE + 1
        _need(buffer, position)
        compression = buffer[_RECT_HEADER_SIZE] >> 4
        if compression == _TIGHT_FILL:
            return 1 + pixel_size
        if compression == _TIGHT_JPEG:
            return self._tight_compressed_length(position)
        if compression > _TIGHT_JPEG:
            raise UnsupportedEncoding(f"Tight compression {compression:#x} is not supported (PNG is for TightPNG)")
        filter_id = _TIGHT_COPY
        if compression & _TIGHT_EXPLICIT_FILTER:
            _need(buffer, position + 1)
            filter_id = buffer[position]
            position += 1
        if filter_id == _TIGHT_PALETTE:
            _need(buffer, position + 1)
            colours = buffer[position] + 1
            if colours < 2:
                raise ProtocolViolation("a Tight palette needs at least 2 colours")
            position += 1 + colours * pixel_size
            row_size = (rect.width + 7) // 8 if colours == 2 else rect.width
            data_size = row_size * rect.height
        elif filter_id in (_TIGHT_COPY, _TIGHT_GRADIENT):
            data_size = rect.width * rect.height * pixel_size
        else:
            raise ProtocolViolation(f"Tight filter {filter_id} does not exist")
        if data_size < TIGHT_MIN_TO_COMPRESS:
            return position + data_size - _RECT_HEADER_SIZE
        return self._tight_compressed_length(position)

    def _tight_compressed_length(self, position: int) -> int:
        """Payload length up to the end of a compact length (7+7+8 bits, little end first) and its data."""
        buffer = self._reader.buffer
        length = 0
        for shift in (0, 7):
            _need(buffer, position + 1)
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            _need(buffer, position + 1)
            length |= buffer[position] << 14
            position += 1
        if length > self._max_payload:
            raise LimitExceeded(f"Tight data of {length} bytes is over the limit of {self._max_payload} bytes")
        return position + length - _RECT_HEADER_SIZE


class _Incomplete(Exception):
    """The buffer ends before a field that a rectangle's length depends on (never escapes the framer)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size  # bytes the buffer must hold before the length is worked out again


def _need(buffer: bytearray, size: int) -> None:
    if len(buffer) < size:
        raise _Incomplete(size)
