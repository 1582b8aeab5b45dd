"""Where each message of the target's stream ends: the framing rules of RFB, without an object per rectangle.

:class:`ServerBoundaries` is the one definition of how the target's stream is cut: the
size of every header, the payload length of every encoding the gateway frames, and every
limit, each checked before the bytes it announces are waited for. It finds boundaries in
place, in the chunk it is fed (or in what is left of an unfinished message plus that
chunk), and hands back the whole messages found as one ``bytes`` — the chunk itself when it
ends on a boundary, else one slice of it — with a flat list of *marks*: ``kind, start, end`` triples, offsets into
that ``bytes``. The proxy (:mod:`gateway.rfb.proxy`) forwards from it, and only marks what it
must look at (server messages other than updates, DesktopName rectangles, size changes);
with ``every_piece`` every update header, rectangle and update end is marked as well, and
the event framer (:class:`gateway.rfb.framing.ServerMessageFramer`) builds its events on
those marks.

The pieces are the units of the old event framer: an update's 4-byte header, each
rectangle, and each other server message; the bytes of a piece are handed back once the
whole piece has arrived, never before. A violation ends the framing: ``error`` holds it,
what was framed before it in the same chunk is still handed back, and later data is
ignored.

This module is compiled with mypyc when the build can (``setup.py``); the same file is the
pure-Python fallback, and :mod:`gateway.rfb.boundary_impl` chooses. Hence plain ``int``
constants and typed attributes, and no generators: a parse resumes by running the
unfinished piece again once enough bytes are there (a Hextile walk resumes at its tile).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from gateway.rfb.clipboard import (
    MAX_CLIPBOARD_INFLATED,
    ExtendedServerCutText,
    cut_text_size,
    parse_cut_text,
)
from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.messages import Bell, PixelFormat, ServerCutText, ServerMessage, SetColourMapEntries

# What a mark says the piece from ``start`` to ``end`` is.
UPDATE: Final = 0  # a FramebufferUpdate header (every_piece only)
RECTANGLE: Final = 1  # one rectangle, header and payload (every_piece only)
UPDATE_END: Final = 2  # the update is complete; no bytes (every_piece only)
RESIZED: Final = 3  # the framebuffer now has the size of this DesktopSize/ExtendedDesktopSize rectangle
MESSAGE: Final = 4  # a server message other than an update, parsed in ``messages``
DESKTOP_NAME: Final = 5  # a DesktopName rectangle (instead of RECTANGLE)

#: The largest desktop the gateway frames (and the recorder replays), unless told otherwise.
MAX_FRAMEBUFFER: Final = (16384, 16384)

_RECT_HEADER: Final = struct.Struct(">HHHHi")  # x, y, width, height: U16; encoding: S32
_RECT_HEADER_SIZE: Final = 12
_UPDATE_HEADER_SIZE: Final = 4
_U32: Final = struct.Struct(">I")
_S32: Final = struct.Struct(">i")
_COPY_RECT_SOURCE: Final = struct.Struct(">HH")
_SCREEN_SIZE: Final = 16

# RFC 6143 and the community registry, as plain ints (gateway.rfb.messages.Encoding and
# gateway.rfb.constants name them; tests/rfb/test_boundaries.py checks they agree).
_RAW: Final = 0
_COPY_RECT: Final = 1
_RRE: Final = 2
_HEXTILE: Final = 5
_TIGHT: Final = 7
_ZRLE: Final = 16
_CURSOR: Final = -239
_DESKTOP_SIZE: Final = -223
_LAST_RECT: Final = -224
_DESKTOP_NAME: Final = -307
_EXTENDED_DESKTOP_SIZE: Final = -308
_QEMU_EXTENDED_KEY_EVENT: Final = -258
_SET_COLOUR_MAP_ENTRIES: Final = 1
_BELL: Final = 2
_SERVER_CUT_TEXT: Final = 3
_REASON_CLIENT: Final = 1  # ExtendedDesktopSize x: the answer to this client's SetDesktopSize
_STATUS_OK: Final = 0  # ExtendedDesktopSize y
_HEXTILE_TILE: Final = 16
_HEXTILE_DEFINED_BITS: Final = 31
_HEXTILE_RAW: Final = 1
_HEXTILE_BACKGROUND: Final = 2
_HEXTILE_FOREGROUND: Final = 4
_HEXTILE_ANY_SUBRECTS: Final = 8
_HEXTILE_SUBRECTS_COLOURED: Final = 16
_TIGHT_FILL: Final = 8
_TIGHT_JPEG: Final = 9
_TIGHT_EXPLICIT_FILTER: Final = 4
_TIGHT_COPY: Final = 0
_TIGHT_PALETTE: Final = 1
_TIGHT_GRADIENT: Final = 2
_TIGHT_MIN_TO_COMPRESS: Final = 12


def check_framebuffer_size(width: int, height: int, limit: tuple[int, int]) -> None:
    """Raise :class:`LimitExceeded` unless the desktop is at least 1x1 and at most ``limit``."""
    max_width, max_height = limit
    if not (0 < width <= max_width and 0 < height <= max_height):
        raise LimitExceeded(f"a desktop of {width}x{height} is outside the limits 1x1 to {max_width}x{max_height}")


class ServerBoundaries:
    """Finds the whole messages in the target's stream (after the handshake); see the module docstring.

    After each :meth:`receive_data`: ``marks`` and ``messages`` describe the bytes it returned,
    ``error`` is the violation that ended the framing, if any.
    """

    marks: list[int]
    messages: list[ServerMessage | ExtendedServerCutText]
    error: ProtocolViolation | None

    def __init__(
        self,
        pixel_format: PixelFormat,
        width: int,
        height: int,
        *,
        encodings: Iterable[int] = (_RAW,),
        max_framebuffer: tuple[int, int] = MAX_FRAMEBUFFER,
        max_cut_text: int = 1 << 20,
        max_clipboard: int = MAX_CLIPBOARD_INFLATED,
        max_name: int = 1024,
        max_payload: int = 64 << 20,
        every_piece: bool = False,
    ) -> None:
        self._width = width
        self._height = height
        self._max_framebuffer = max_framebuffer
        self._max_cut_text = max_cut_text
        self._max_clipboard = max_clipboard
        self._max_name = max_name
        self._max_payload = max_payload
        self._every_piece = every_piece
        self._encodings: frozenset[int] = frozenset()
        self._pixel_format = pixel_format
        self._bytes_per_pixel = 0
        self._tight_pixel_size = 0
        self._rre_subrect = _RECT_HEADER
        self.set_pixel_format(pixel_format)
        self.set_encodings(encodings)
        self._pending: list[bytes] = []  # chunks holding the start of an unfinished piece
        self._pending_size = 0
        self._need = 0  # bytes _pending must hold before the piece is worth looking at again
        self._rects_left = -1  # rectangles still to come in the current update; -1 between messages
        # Where a Hextile walk resumes: tile row, tile column, offset from the rectangle's start.
        self._hextile_y = 0
        self._hextile_x = 0
        self._hextile_offset = _RECT_HEADER_SIZE
        self.marks = []
        self.messages = []
        self.error = None
        self._failed = False

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
        self._bytes_per_pixel = pixel_format.bytes_per_pixel
        self._tight_pixel_size = pixel_format.tight_pixel_size
        self._rre_subrect = struct.Struct(f">{self._bytes_per_pixel}xHHHH")

    def set_encodings(self, encodings: Iterable[int]) -> None:
        """Accept rectangles only in ``encodings`` (the client's forwarded SetEncodings) and Raw."""
        self._encodings = frozenset(encodings) | {_RAW}

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the target; return the whole pieces they complete, in stream order."""
        if self.marks:
            self.marks = []
        if self.messages:
            self.messages = []
        if self._failed:  # (not ``self.error``: mypyc would take it to stay None below)
            return b""
        if self._pending:  # the start of an unfinished piece: joined once it can be finished
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._need:
                return b""
            buffer = b"".join(self._pending)
            self._pending = []
        elif len(data) < self._need:
            self._pending = [data]
            self._pending_size = len(data)
            return b""
        else:
            buffer = data
        available = len(buffer)
        end = self._frame(buffer, available)
        if self.error is not None:
            self._failed = True
            self._need = 0
        elif end < available:
            rest = buffer[end:]
            self._pending = [rest]
            self._pending_size = len(rest)
        return buffer if end == available else buffer[:end]

    def _frame(self, buffer: bytes, available: int) -> int:
        """Find the pieces in ``buffer[:available]``; return where the last whole one ends."""
        marks = self.marks
        every_piece = self._every_piece
        rects_left = self._rects_left
        position = 0
        need = 0
        try:
            while True:
                if rects_left < 0:  # between messages
                    if position >= available:
                        break
                    if buffer[position] != 0:
                        end = self._message_end(buffer, position, available)
                        if end < 0:
                            need = -end
                            break
                        marks.append(MESSAGE)
                        marks.append(position)
                        marks.append(end)
                        position = end
                        continue
                    end = position + _UPDATE_HEADER_SIZE
                    if end > available:
                        need = end
                        break
                    rects_left = buffer[position + 2] << 8 | buffer[position + 3]
                    if every_piece:
                        marks.append(UPDATE)
                        marks.append(position)
                        marks.append(end)
                    position = end
                    if rects_left == 0:
                        rects_left = -1
                        if every_piece:
                            marks.append(UPDATE_END)
                            marks.append(end)
                            marks.append(end)
                    continue
                # The next rectangle of the update starts at position.
                if available - position < _RECT_HEADER_SIZE:
                    need = position + _RECT_HEADER_SIZE
                    break
                x, y, width, height, encoding = _RECT_HEADER.unpack_from(buffer, position)
                resizes = False
                if encoding == _DESKTOP_SIZE or encoding == _EXTENDED_DESKTOP_SIZE:
                    resizes = self._resizes(x, y, width, height, encoding)
                length = self._payload_length(buffer, position, available, x, y, width, height, encoding)
                if length < 0:
                    need = -length
                    break
                if length > self._max_payload:
                    raise LimitExceeded(
                        f"a rectangle of {length} bytes is over the limit of {self._max_payload} bytes"
                    )
                end = position + _RECT_HEADER_SIZE + length
                if end > available:
                    need = end
                    break
                if encoding == _DESKTOP_NAME:
                    marks.append(DESKTOP_NAME)
                    marks.append(position)
                    marks.append(end)
                elif every_piece:
                    marks.append(RECTANGLE)
                    marks.append(position)
                    marks.append(end)
                self._hextile_y = self._hextile_x = 0
                self._hextile_offset = _RECT_HEADER_SIZE
                rects_left -= 1
                if resizes:
                    self._width = width
                    self._height = height
                    marks.append(RESIZED)
                    marks.append(position)
                    marks.append(end)
                elif encoding == _LAST_RECT:
                    rects_left = 0
                position = end
                if rects_left == 0:
                    rects_left = -1
                    if every_piece:
                        marks.append(UPDATE_END)
                        marks.append(end)
                        marks.append(end)
        except ProtocolViolation as exc:
            self.error = exc
        self._rects_left = rects_left
        self._need = need - position if need else 0
        return position

    def _resizes(self, x: int, y: int, width: int, height: int, encoding: int) -> bool:
        """Whether a DesktopSize/ExtendedDesktopSize rectangle sets a new size, checked against the limits."""
        # x = 1 with a non-zero y answers our SetDesktopSize with an error: the size stays.
        if encoding == _EXTENDED_DESKTOP_SIZE and x == _REASON_CLIENT and y != _STATUS_OK:
            return False
        check_framebuffer_size(width, height, self._max_framebuffer)
        return True

    def _message_end(self, buffer: bytes, at: int, available: int) -> int:
        """Where the server message at ``at`` ends, once parsed into ``messages``; ``-size`` while
        the buffer must hold ``size`` bytes before that is known."""
        message_type = buffer[at]
        message: ServerMessage | ExtendedServerCutText
        if message_type == _SET_COLOUR_MAP_ENTRIES:
            # 65535 colours are at most 393 KB; parse() checks they fit the 65536-entry map.
            if available < at + 6:
                return -(at + 6)
            end = at + 6 + 6 * (buffer[at + 4] << 8 | buffer[at + 5])
            if end > available:
                return -end
            message = SetColourMapEntries.parse(bytes(buffer[at:end]))
        elif message_type == _BELL:
            end = at + 1
            message = Bell()
        elif message_type == _SERVER_CUT_TEXT:
            if available < at + 8:
                return -(at + 8)
            length: int = _S32.unpack_from(buffer, at + 4)[0]
            end = at + 8 + cut_text_size(length, ServerCutText, self._max_cut_text)
            if end > available:
                return -end
            message = parse_cut_text(bytes(buffer[at:end]), ServerCutText, ExtendedServerCutText, self._max_clipboard)
        else:
            raise UnsupportedEncoding(f"server message type {message_type} is not supported")
        self.messages.append(message)
        return end

    # The payload-length methods look at the fields they need in place, after the rectangle's
    # header at ``at``. They return ``-size`` when the buffer ends before a field they need
    # (then they run again once it holds ``size`` bytes): they check things in the order the bytes come.

    def _payload_length(
        self, buffer: bytes, at: int, available: int, x: int, y: int, width: int, height: int, encoding: int
    ) -> int:
        """How many bytes follow the rectangle's header (RFC 6143 §7.7 and the community registry)."""
        if encoding not in self._encodings:
            raise ProtocolViolation(
                f"the target sent a rectangle in encoding {encoding}, which the client did not request"
            )
        if encoding >= 0:
            self._check_inside(x, y, width, height, "rectangle")
        body = at + _RECT_HEADER_SIZE
        # The encodings are disjoint: the busiest come first.
        if encoding == _TIGHT:
            return self._tight_length(buffer, body, available, width, height)
        if encoding == _ZRLE:
            return self._prefixed_length(buffer, body, available, self._max_payload, "ZRLE data")
        if encoding == _HEXTILE:
            return self._hextile_length(buffer, at, available, width, height)
        if encoding == _RAW:
            return width * height * self._bytes_per_pixel
        if encoding == _COPY_RECT:
            if available < body + 4:
                return -(body + 4)
            source_x, source_y = _COPY_RECT_SOURCE.unpack_from(buffer, body)
            self._check_inside(source_x, source_y, width, height, "CopyRect source")
            return 4
        if encoding == _RRE:
            return self._rre_length(buffer, body, available, width, height)
        if encoding == _CURSOR:
            return width * height * self._bytes_per_pixel + (width + 7) // 8 * height
        if encoding == _DESKTOP_SIZE or encoding == _LAST_RECT or encoding == _QEMU_EXTENDED_KEY_EVENT:
            return 0
        if encoding == _EXTENDED_DESKTOP_SIZE:
            if available < body + 1:
                return -(body + 1)
            return 4 + _SCREEN_SIZE * buffer[body]
        if encoding == _DESKTOP_NAME:
            return self._prefixed_length(buffer, body, available, self._max_name, "desktop name")
        raise UnsupportedEncoding(f"encoding {encoding} is not supported")

    def _check_inside(self, x: int, y: int, width: int, height: int, what: str) -> None:
        if x + width > self._width or y + height > self._height:
            raise ProtocolViolation(
                f"{what} {width}x{height} at ({x}, {y}) lies outside the {self._width}x{self._height} framebuffer"
            )

    def _prefixed_length(self, buffer: bytes, body: int, available: int, limit: int, what: str) -> int:
        """A U32 length followed by that many bytes."""
        if available < body + 4:
            return -(body + 4)
        length: int = _U32.unpack_from(buffer, body)[0]
        if length > limit:
            raise LimitExceeded(f"{what} of {length} bytes is over the limit of {limit} bytes")
        return 4 + length

    def _rre_length(self, buffer: bytes, body: int, available: int, width: int, height: int) -> int:
        """U32 count, background pixel, then count × (pixel, x, y, w, h), each inside the rectangle."""
        bytes_per_pixel = self._bytes_per_pixel
        subrects_at = body + 4 + bytes_per_pixel
        if available < subrects_at:
            return -subrects_at
        count: int = _U32.unpack_from(buffer, body)[0]
        if count > width * height:
            raise ProtocolViolation(f"RRE announces {count} sub-rectangles in a {width}x{height} rectangle")
        length = subrects_at - body + count * (bytes_per_pixel + 8)
        if length > self._max_payload:
            raise LimitExceeded(f"an RRE rectangle of {length} bytes is over the limit of {self._max_payload} bytes")
        if available < body + length:
            return -(body + length)
        for sub_x, sub_y, sub_width, sub_height in self._rre_subrect.iter_unpack(buffer[subrects_at : body + length]):
            if sub_x + sub_width > width or sub_y + sub_height > height:
                raise ProtocolViolation(
                    f"RRE sub-rectangle {sub_width}x{sub_height} at ({sub_x}, {sub_y}) lies outside its rectangle"
                )
        return length

    def _hextile_length(self, buffer: bytes, at: int, available: int, width: int, height: int) -> int:
        """Walk the 16x16 tiles in place; only sub-rectangle bounds are looked at, never pixels.

        When the buffer ends inside a tile, the next run resumes at that tile: a rectangle
        arriving in many pieces is still walked about once.
        """
        bytes_per_pixel = self._bytes_per_pixel
        end_limit = at + _RECT_HEADER_SIZE + self._max_payload
        first_x = self._hextile_x
        position = at + self._hextile_offset
        # Tiles run left to right then top to bottom; the last column and row may be smaller.
        for tile_y in range(self._hextile_y, height, _HEXTILE_TILE):
            tile_height = _HEXTILE_TILE if tile_y + _HEXTILE_TILE <= height else height - tile_y
            for tile_x in range(first_x, width, _HEXTILE_TILE):
                tile_width = _HEXTILE_TILE if tile_x + _HEXTILE_TILE <= width else width - tile_x
                if position >= available:
                    return self._hextile_paused(tile_y, tile_x, position - at, position + 1)
                mask = buffer[position]
                if mask > _HEXTILE_DEFINED_BITS:
                    raise ProtocolViolation(f"Hextile sub-encoding mask {mask:#x} has undefined bits set")
                tile_at = position
                position += 1
                if mask & _HEXTILE_RAW:
                    position += tile_width * tile_height * bytes_per_pixel
                    continue
                if mask & _HEXTILE_BACKGROUND:
                    position += bytes_per_pixel
                if mask & _HEXTILE_FOREGROUND:
                    position += bytes_per_pixel
                if mask & _HEXTILE_ANY_SUBRECTS:
                    if position >= available:
                        return self._hextile_paused(tile_y, tile_x, tile_at - at, position + 1)
                    stride = 2 + bytes_per_pixel if mask & _HEXTILE_SUBRECTS_COLOURED else 2
                    end = position + 1 + buffer[position] * stride
                    if end > available:
                        return self._hextile_paused(tile_y, tile_x, tile_at - at, end)
                    _check_hextile_subrects(buffer, position + 1, end, stride, tile_width, tile_height)
                    position = end
                if position > end_limit:
                    raise LimitExceeded(f"a Hextile rectangle is over the limit of {self._max_payload} bytes")
            first_x = 0
        return position - at - _RECT_HEADER_SIZE

    def _hextile_paused(self, tile_y: int, tile_x: int, offset: int, size: int) -> int:
        """Remember the tile to resume at; ``-size``, the bytes the buffer must hold first."""
        self._hextile_y = tile_y
        self._hextile_x = tile_x
        self._hextile_offset = offset
        return -size

    def _tight_length(self, buffer: bytes, body: int, available: int, width: int, height: int) -> int:
        """Compression control, then fill pixel, JPEG data, or (filtered) basic data (TightVNC's rfbproto.h)."""
        pixel_size = self._tight_pixel_size
        position = body + 1
        if available < position:
            return -position
        compression = buffer[body] >> 4
        if compression == _TIGHT_FILL:
            return 1 + pixel_size
        if compression == _TIGHT_JPEG:
            return self._tight_compressed_length(buffer, body, position, available)
        if compression > _TIGHT_JPEG:
            raise UnsupportedEncoding(f"Tight compression {compression:#x} is not supported (PNG is for TightPNG)")
        filter_id = _TIGHT_COPY
        if compression & _TIGHT_EXPLICIT_FILTER:
            if available < position + 1:
                return -(position + 1)
            filter_id = buffer[position]
            position += 1
        if filter_id == _TIGHT_PALETTE:
            if available < position + 1:
                return -(position + 1)
            colours = buffer[position] + 1
            if colours < 2:
                raise ProtocolViolation("a Tight palette needs at least 2 colours")
            position += 1 + colours * pixel_size
            row_size = (width + 7) // 8 if colours == 2 else width
            data_size = row_size * height
        elif filter_id == _TIGHT_COPY or filter_id == _TIGHT_GRADIENT:
            data_size = width * height * pixel_size
        else:
            raise ProtocolViolation(f"Tight filter {filter_id} does not exist")
        if data_size < _TIGHT_MIN_TO_COMPRESS:
            return position + data_size - body
        return self._tight_compressed_length(buffer, body, position, available)

    def _tight_compressed_length(self, buffer: bytes, body: int, position: int, available: int) -> int:
        """Payload length up to the end of a compact length (7+7+8 bits, little end first) and its data."""
        if available <= position:
            return -(position + 1)
        byte = buffer[position]
        position += 1
        length = byte & 0x7F
        if byte & 0x80:
            if available <= position:
                return -(position + 1)
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << 7
            if byte & 0x80:
                if available <= position:
                    return -(position + 1)
                length |= buffer[position] << 14
                position += 1
        if length > self._max_payload:
            raise LimitExceeded(f"Tight data of {length} bytes is over the limit of {self._max_payload} bytes")
        return position + length - body


#: Whether this module runs compiled by mypyc (its file is then the extension module) or interpreted. Each
#: checks Hextile sub-rectangles the way that is fast for it: compiled, a plain loop over the bytes; interpreted,
#: all of a tile's at once on big integers (a loop costs about 2.5x the CPU per GB of a Hextile stream there).
_COMPILED: Final = not __file__.endswith(".py")
# For n sub-rectangles (a tile has at most 255): n byte lanes of 0x01, of 0x0F and of 0x80.
_LANES: Final = [tuple(int.from_bytes(bytes((lane,)) * count, "big") for lane in (0x01, 0x0F, 0x80))
                 for count in range(256)]


def _check_hextile_subrects(buffer: bytes, start: int, end: int, stride: int, width: int, height: int) -> None:
    """Each sub-rectangle in ``buffer[start:end]`` ends with x<<4|y and (w-1)<<4|(h-1); it must fit its tile.

    Interpreted, all are tested at once, on big integers with one byte lane per sub-rectangle. A
    lane's x + (w-1) is at most 30, and adding 128 - width sets its top bit exactly when
    x + (w-1) >= width, without carrying into the next lane; the same goes for y and height.
    Only a tile that fails is walked, to name its first culprit.
    """
    if not _COMPILED:
        positions = int.from_bytes(buffer[start + stride - 2 : end : stride], "big")
        sizes = int.from_bytes(buffer[start + stride - 1 : end : stride], "big")
        ones, nibbles, top_bits = _LANES[(end - start) // stride]
        right = ((positions >> 4) & nibbles) + ((sizes >> 4) & nibbles) + ones * (128 - width)
        bottom = (positions & nibbles) + (sizes & nibbles) + ones * (128 - height)
        if not (right | bottom) & top_bits:
            return
    for at in range(start + stride - 2, end, stride):
        xy = buffer[at]
        wh = buffer[at + 1]
        if (xy >> 4) + (wh >> 4) >= width or (xy & 15) + (wh & 15) >= height:
            raise ProtocolViolation(
                f"Hextile sub-rectangle {(wh >> 4) + 1}x{(wh & 15) + 1} at ({xy >> 4}, {xy & 15}) "
                f"lies outside its {width}x{height} tile"
            )
