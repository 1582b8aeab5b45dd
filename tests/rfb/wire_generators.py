"""Seeded generators of RFB wire data, family by family, for the batch fuzz tests (``test_fuzz_families``).

Hypothesis draws a seed and the shape of a batch; these functions build the batch's hundreds
of messages with :class:`random.Random`, at microseconds a message where a strategy per
message would cost a hundred times more. Values lean to the edges: 0, 1, the largest value,
and each limit and one past it (the framers here get small limits, so that the edge of each
is a few hundred bytes away).

A family has a valid generator and a hostile one. A valid case is a message (or one
rectangle of an update, in any encoding) that must frame exactly as built. A hostile case is the wire bytes
of one message that may break the protocol, with the error the framer must end with at
that message, or None when the bytes may happen to be valid (a flipped byte).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from gateway.rfb.clipboard import (
    ExtendedClientCutText,
    ExtendedServerCutText,
)
from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.framing import FRAMEABLE_ENCODINGS, ClientMessageFramer, ServerMessageFramer
from gateway.rfb.messages import (
    RGBX8888,
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
    encode_update_header,
)
from tests.rfb.clipboard_generators import extended_clipboard_hostile, extended_cut_text
from tests.rfb.wire_values import (
    CLIPBOARD_LIMIT,
    CUT_TEXT_LIMIT,
    ENCODINGS_LIMIT,
    EXTENDED_CLIPBOARD,
    FRAMEBUFFER_LIMIT,
    NAME_LIMIT,
    PAYLOAD_LIMIT,
    SCREENS_LIMIT,
    START_SIZE,
    Hostile,
    flipped,
    u32,
    uint,
    upto,
)

# ---------------------------------------------------------------- pixel formats


def pixel_format(rng: Random) -> PixelFormat:
    """Any valid pixel format: true colour with channels that fit (overlapping or not), or a colour map."""
    bits = rng.choice((8, 16, 32))
    depth = rng.randint(1, bits)
    if rng.random() < 0.25:
        return PixelFormat(bits, depth, rng.random() < 0.5, False, uint(rng, 16), uint(rng, 16), uint(rng, 16),
                           uint(rng, 8), uint(rng, 8), uint(rng, 8))
    channels = []
    for _ in range(3):
        width = rng.randint(1, min(bits, 16))
        channels.append(((1 << width) - 1, rng.randint(0, bits - width)))
    (red, red_shift), (green, green_shift), (blue, blue_shift) = channels
    return PixelFormat(bits, depth, rng.random() < 0.5, True, red, green, blue, red_shift, green_shift, blue_shift)


def invalid_pixel_format(rng: Random) -> bytes:
    """The 16 wire bytes of a pixel format that breaks one rule."""
    bits, depth, true_colour, red = rng.choice(((8, 8, 1, 256), (16, 16, 1, 0), (24, 24, 1, 255), (0, 0, 1, 1),
                                                (32, 33, 0, 1), (16, 0, 0, 1), (8, 8, 1, 0x1FF), (16, 16, 1, 6)))
    return struct.pack(">BBBBHHHBBB3x", bits, depth, 0, true_colour, red, 1, 1, 0, 0, 0)


#: Pixel formats the target may use, with 3-byte Tight pixels (the first) and without.
TARGET_PIXEL_FORMATS = (
    RGBX8888,
    PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0),
    PixelFormat(32, 32, True, True, 255, 255, 255, 24, 16, 8),
)


# ---------------------------------------------------------------- browser → gateway


def client_framer() -> ClientMessageFramer:
    return ClientMessageFramer(max_cut_text=CUT_TEXT_LIMIT, max_clipboard=CLIPBOARD_LIMIT,
                               max_encodings=ENCODINGS_LIMIT, max_screens=SCREENS_LIMIT)


KNOWN_ENCODINGS: tuple[int, ...] = (*Encoding, *range(-32, -22), *range(-256, -246), EXTENDED_CLIPBOARD, -312, -313, 6, 21)


def encoding(rng: Random) -> int:
    if rng.random() < 0.6:
        return rng.choice(KNOWN_ENCODINGS)
    return uint(rng, 32) - (1 << 31)


def screen(rng: Random) -> Screen:
    return Screen(uint(rng, 32), uint(rng, 16), uint(rng, 16), uint(rng, 16), uint(rng, 16), uint(rng, 32))


@dataclass(frozen=True, slots=True)
class ClientFamily:
    """One client message type: a valid message, and hostile wire bytes."""

    name: str
    valid: Callable[[Random], ClientMessage | ExtendedClientCutText]
    hostile: Callable[[Random], Hostile]


_UNKNOWN_CLIENT_TYPES = [t for t in range(256) if t not in set(ClientMessageType)]


def _client_hostile(rng: Random, valid: Callable[[Random], ClientMessage | ExtendedClientCutText],
                    specific: Callable[[Random], Hostile] | None) -> Hostile:
    roll = rng.random()
    if specific is not None and roll < 0.5:
        return specific(rng)
    if roll < 0.6:
        unknown = rng.choice(_UNKNOWN_CLIENT_TYPES)
        return bytes((unknown,)) + rng.randbytes(rng.randint(0, 12)), UnsupportedEncoding
    return flipped(rng, valid(rng).encode()), None


def _client_family(name: str, valid: Callable[[Random], ClientMessage | ExtendedClientCutText],
                   specific: Callable[[Random], Hostile] | None = None) -> ClientFamily:
    return ClientFamily(name, valid, lambda rng: _client_hostile(rng, valid, specific))


def _cut_text_hostile(rng: Random) -> Hostile:
    if rng.random() < 0.3:
        return extended_clipboard_hostile(rng)
    length = rng.choice((CUT_TEXT_LIMIT + 1, 1 << 30, (1 << 31) - 1, rng.randint(CUT_TEXT_LIMIT + 1, 1 << 31)))
    return struct.pack(">B3xI", ClientMessageType.CLIENT_CUT_TEXT, length) + rng.randbytes(8), LimitExceeded


CLIENT_FAMILIES = (
    _client_family(
        "SetPixelFormat", lambda rng: SetPixelFormat(pixel_format(rng)),
        lambda rng: (bytes((ClientMessageType.SET_PIXEL_FORMAT, 0, 0, 0)) + invalid_pixel_format(rng),
                     ProtocolViolation)),
    _client_family(
        "SetEncodings",
        lambda rng: SetEncodings(tuple(encoding(rng) for _ in range(upto(rng, ENCODINGS_LIMIT)))),
        lambda rng: (struct.pack(">BxH", ClientMessageType.SET_ENCODINGS,
                                 rng.randint(ENCODINGS_LIMIT + 1, 0xFFFF)), LimitExceeded)),
    _client_family(
        "FramebufferUpdateRequest",
        lambda rng: FramebufferUpdateRequest(rng.random() < 0.5, uint(rng, 16), uint(rng, 16), uint(rng, 16),
                                             uint(rng, 16))),
    _client_family("KeyEvent", lambda rng: KeyEvent(rng.random() < 0.5, uint(rng, 32))),
    _client_family("PointerEvent", lambda rng: PointerEvent(uint(rng, 8), uint(rng, 16), uint(rng, 16))),
    _client_family("ClientCutText", lambda rng: ClientCutText(rng.randbytes(upto(rng, CUT_TEXT_LIMIT, 40))),
                   _cut_text_hostile),
    _client_family("ExtendedClientCutText", lambda rng: extended_cut_text(rng, ExtendedClientCutText),
                   extended_clipboard_hostile),
    _client_family(
        "SetDesktopSize",
        lambda rng: SetDesktopSize(uint(rng, 16), uint(rng, 16),
                                   tuple(screen(rng) for _ in range(upto(rng, SCREENS_LIMIT, 2)))),
        lambda rng: (struct.pack(">BxHHBx", ClientMessageType.SET_DESKTOP_SIZE, 1, 1,
                                 rng.randint(SCREENS_LIMIT + 1, 255)), LimitExceeded)),
    _client_family(
        "QEMUExtendedKeyEvent", lambda rng: QEMUExtendedKeyEvent(rng.random() < 0.5, uint(rng, 32), uint(rng, 32)),
        lambda rng: (struct.pack(">BBHII", ClientMessageType.QEMU, rng.randint(1, 255), 1, 2, 3),
                     UnsupportedEncoding)),
)


# ---------------------------------------------------------------- target → gateway


class Desktop:
    """The target's framebuffer as its framer sees it: size (changed by resizes) and pixel format."""

    def __init__(self, pixel_format: PixelFormat, width: int = START_SIZE[0], height: int = START_SIZE[1]) -> None:
        self.pixel_format = pixel_format
        self.width = width
        self.height = height
        self.pixel = pixel_format.bytes_per_pixel
        self.tight_pixel = pixel_format.tight_pixel_size

    def framer(self) -> ServerMessageFramer:
        return ServerMessageFramer(self.pixel_format, self.width, self.height, encodings=FRAMEABLE_ENCODINGS,
                                   max_framebuffer=FRAMEBUFFER_LIMIT, max_cut_text=CUT_TEXT_LIMIT,
                                   max_clipboard=CLIPBOARD_LIMIT,
                                   max_name=NAME_LIMIT, max_payload=PAYLOAD_LIMIT)

    def copy(self) -> Desktop:
        return Desktop(self.pixel_format, self.width, self.height)


Rect = tuple[Rectangle, bytes]  # header and payload


def inside(rng: Random, desktop: Desktop, most: int = 12) -> tuple[int, int, int, int]:
    """x, y, width, height of a rectangle inside the framebuffer, often touching its edges."""
    width, height = rng.randint(0, min(most, desktop.width)), rng.randint(0, min(most, desktop.height))
    x = desktop.width - width if rng.random() < 0.2 else rng.randint(0, desktop.width - width)
    y = desktop.height - height if rng.random() < 0.2 else rng.randint(0, desktop.height - height)
    return x, y, width, height


def compact_length(length: int) -> bytes:
    """Tight's 1-3 byte length: 7 bits, 7 bits, then 8 bits, least significant first."""
    if length < 0x80:
        return bytes((length,))
    if length < 0x4000:
        return bytes((length & 0x7F | 0x80, length >> 7))
    return bytes((length & 0x7F | 0x80, (length >> 7) & 0x7F | 0x80, length >> 14))


def _raw(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop)
    return Rectangle(x, y, width, height, Encoding.RAW), rng.randbytes(width * height * desktop.pixel)


def _copy_rect(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop, 64)
    source = struct.pack(">HH", rng.randint(0, desktop.width - width), rng.randint(0, desktop.height - height))
    return Rectangle(x, y, width, height, Encoding.COPY_RECT), source


def _rre(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop)
    count = rng.randint(0, min(6, width * height))
    payload = u32(count) + rng.randbytes(desktop.pixel)
    for _ in range(count):
        w, h = rng.randint(0, width), rng.randint(0, height)
        payload += rng.randbytes(desktop.pixel) + struct.pack(">HHHH", rng.randint(0, width - w),
                                                             rng.randint(0, height - h), w, h)
    return Rectangle(x, y, width, height, Encoding.RRE), payload


def _hextile(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop, 16 if rng.random() < 0.8 else 36)
    pixel = desktop.pixel
    payload = bytearray()
    for tile_y in range(0, height, 16):
        for tile_x in range(0, width, 16):
            tile_width, tile_height = min(16, width - tile_x), min(16, height - tile_y)
            mask = rng.randint(0, 31) if rng.random() < 0.7 else rng.choice((0, 2, 8, 14, 30))
            payload.append(mask)
            if mask & 1:
                payload += rng.randbytes(tile_width * tile_height * pixel)
                continue
            payload += rng.randbytes(pixel * (bool(mask & 2) + bool(mask & 4)))
            if mask & 8:
                count = upto(rng, 255, 4, 0.01)
                payload.append(count)
                for _ in range(count):
                    w, h = rng.randint(1, tile_width), rng.randint(1, tile_height)
                    sx, sy = rng.randint(0, tile_width - w), rng.randint(0, tile_height - h)
                    payload += rng.randbytes(pixel if mask & 16 else 0) + bytes((sx << 4 | sy, (w - 1) << 4 | (h - 1)))
    return Rectangle(x, y, width, height, Encoding.HEXTILE), bytes(payload)


def _tight_data(rng: Random) -> bytes:
    """A compact length (its 1, 2 and 3-byte forms and their edges) and that much data."""
    length = rng.choice((0, 1, 0x7F, 0x80, 0x3FFF, 0x4000)) if rng.random() < 0.05 else rng.randint(0, 200)
    return compact_length(length) + rng.randbytes(length)


def _tight(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop)
    rect = Rectangle(x, y, width, height, Encoding.TIGHT)
    streams = rng.randint(0, 15)
    kind = rng.choice(("fill", "jpeg", "copy", "palette", "gradient"))
    if kind == "fill":
        return rect, bytes((0x80 | streams,)) + rng.randbytes(desktop.tight_pixel)
    if kind == "jpeg":
        return rect, bytes((0x90 | streams,)) + _tight_data(rng)
    control = rng.randint(0, 3) << 4 | rng.randint(0, 15)
    if kind == "copy":
        header = bytes((control,)) if rng.random() < 0.5 else bytes((control | 0x40, 0))
        size = width * height * desktop.tight_pixel
    elif kind == "gradient":
        header, size = bytes((control | 0x40, 2)), width * height * desktop.tight_pixel
    else:
        colours = rng.choice((2, 3, 16, 256)) if rng.random() < 0.5 else rng.randint(2, 256)
        header = bytes((control | 0x40, 1, colours - 1)) + rng.randbytes(colours * desktop.tight_pixel)
        size = ((width + 7) // 8 if colours == 2 else width) * height
    if size < 12:
        return rect, header + rng.randbytes(size)
    return rect, header + _tight_data(rng)


def _prefixed(rng: Random, limit: int) -> bytes:
    length = rng.choice((0, limit)) if rng.random() < 0.02 else rng.randint(0, min(limit, 200))
    return u32(length) + rng.randbytes(length)


def _zrle(rng: Random, desktop: Desktop) -> Rect:
    x, y, width, height = inside(rng, desktop, 64)
    return Rectangle(x, y, width, height, Encoding.ZRLE), _prefixed(rng, PAYLOAD_LIMIT - 4)


def _cursor(rng: Random, desktop: Desktop) -> Rect:
    width, height = rng.randint(0, 8), rng.randint(0, 8)
    size = width * height * desktop.pixel + (width + 7) // 8 * height
    return Rectangle(uint(rng, 16), uint(rng, 16), width, height, Encoding.CURSOR), rng.randbytes(size)


def _new_size(rng: Random) -> tuple[int, int]:
    if rng.random() < 0.2:
        return rng.choice(((1, 1), FRAMEBUFFER_LIMIT, (FRAMEBUFFER_LIMIT[0], 1), START_SIZE))
    return rng.randint(START_SIZE[0], FRAMEBUFFER_LIMIT[0]), rng.randint(START_SIZE[1], FRAMEBUFFER_LIMIT[1])


def _desktop_size(rng: Random, desktop: Desktop) -> Rect:
    desktop.width, desktop.height = _new_size(rng)
    return Rectangle(0, 0, desktop.width, desktop.height, Encoding.DESKTOP_SIZE), b""


def _extended_desktop_size(rng: Random, desktop: Desktop) -> Rect:
    reason, status = rng.randint(0, 2), rng.choice((0, 0, 1, 2, 3, 4))
    width, height = _new_size(rng)
    if not (reason == 1 and status != 0):  # an error answer to our request leaves the size
        desktop.width, desktop.height = width, height
    screens = [screen(rng) for _ in range(rng.randint(0, 3))]
    payload = bytes((len(screens), 0, 0, 0)) + b"".join(s.encode() for s in screens)
    return Rectangle(reason, status, width, height, Encoding.EXTENDED_DESKTOP_SIZE), payload


def _no_payload(encoding: Encoding) -> Callable[[Random, Desktop], Rect]:
    return lambda rng, desktop: (Rectangle(uint(rng, 16), uint(rng, 16), uint(rng, 16), uint(rng, 16), encoding), b"")


def _desktop_name(rng: Random, desktop: Desktop) -> Rect:
    return Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), _prefixed(rng, NAME_LIMIT)


def _outside(rng: Random, desktop: Desktop, encoding: Encoding) -> Hostile:
    """A rectangle of ``encoding`` that reaches past the framebuffer's right or bottom edge."""
    width, height = rng.randint(1, 0xFFFF), rng.randint(1, 0xFFFF)
    x, y = uint(rng, 16), uint(rng, 16)
    if rng.random() < 0.5:
        x = rng.randint(max(0, desktop.width - width + 1), 0xFFFF)
    else:
        y = rng.randint(max(0, desktop.height - height + 1), 0xFFFF)
    return Rectangle(x, y, width, height, encoding).encode(), ProtocolViolation


def _rre_hostile(rng: Random, desktop: Desktop) -> Hostile:
    x, y, width, height = inside(rng, desktop)
    width, height = max(width, 1), max(height, 1)
    header = Rectangle(min(x, desktop.width - width), min(y, desktop.height - height), width, height, Encoding.RRE)
    if rng.random() < 0.5:  # more sub-rectangles than pixels
        count = rng.randint(width * height + 1, 0xFFFF_FFFF)
        return header.encode() + u32(count) + rng.randbytes(desktop.pixel), ProtocolViolation
    w, h = rng.randint(1, 0xFFFF), rng.randint(1, 0xFFFF)
    sx = rng.randint(max(0, width - w + 1), 0xFFFF)
    subrect = rng.randbytes(desktop.pixel) + struct.pack(">HHHH", sx, 0, w, min(h, height))
    return header.encode() + u32(1) + rng.randbytes(desktop.pixel) + subrect, ProtocolViolation


def _hextile_hostile(rng: Random, desktop: Desktop) -> Hostile:
    """A first tile with undefined mask bits, or with a sub-rectangle past its right or bottom edge
    after some that fit (plain or coloured)."""
    x, y, width, height = inside(rng, desktop, 36)
    width, height = max(width, 1), max(height, 1)
    header = Rectangle(min(x, desktop.width - width), min(y, desktop.height - height), width, height,
                       Encoding.HEXTILE).encode()
    if rng.random() < 0.5:
        return header + bytes((rng.randint(32, 255),)), ProtocolViolation
    tile_width, tile_height = min(16, width), min(16, height)
    start = rng.randint(1, 15)
    size = rng.randint(max(1, tile_width - start + 1), 16)  # start + size > the tile's width (or height)
    bad = (start << 4, (size - 1) << 4) if rng.random() < 0.5 else (start, size - 1)
    if bad[0] == start and start + size <= tile_height:  # the tile is taller than wide: past its bottom anyway
        bad = (tile_height - 1, 1)
    fitting = upto(rng, 40, 4, 0.1)
    colour = rng.randbytes(desktop.pixel) if rng.random() < 0.5 else b""
    subrects = (colour + bytes((0, 0))) * fitting + colour + bytes(bad)
    return header + bytes((24 if colour else 8, fitting + 1)) + subrects, ProtocolViolation


def _tight_hostile(rng: Random, desktop: Desktop) -> Hostile:
    header = Rectangle(0, 0, 16, 16, Encoding.TIGHT).encode()
    roll = rng.random()
    if roll < 0.25:
        return header + bytes((rng.randint(0xA, 0xF) << 4 | rng.randint(0, 15),)), UnsupportedEncoding
    if roll < 0.5:
        return header + bytes((0x40 | rng.randint(0, 3) << 4, rng.randint(3, 255))), ProtocolViolation
    if roll < 0.75:
        return header + bytes((0x40, 1, 0)), ProtocolViolation  # a palette of one colour
    length = rng.randint(PAYLOAD_LIMIT + 1, 0x3FFFFF)
    return header + bytes((0x90,)) + compact_length(length), LimitExceeded


def _length_over(rng: Random, encoding: Encoding, limit: int) -> Hostile:
    rect = Rectangle(0, 0, 8, 8, encoding) if encoding >= 0 else Rectangle(0, 0, 0, 0, encoding)
    return rect.encode() + u32(rng.randint(limit + 1, 0xFFFF_FFFF)), LimitExceeded


def _size_hostile(rng: Random, encoding: Encoding) -> Hostile:
    width, height = rng.choice(((0, 1), (1, 0), (0, 0), (FRAMEBUFFER_LIMIT[0] + 1, 1), (1, 0xFFFF), (0xFFFF, 0xFFFF)))
    payload = b"" if encoding == Encoding.DESKTOP_SIZE else bytes(4)
    reason = 0 if encoding == Encoding.DESKTOP_SIZE else rng.choice((0, 2))
    return Rectangle(reason, 0, width, height, encoding).encode() + payload, LimitExceeded


def _copy_rect_hostile(rng: Random, desktop: Desktop) -> Hostile:
    x, y, width, height = inside(rng, desktop)
    width = max(width, 1)
    source = struct.pack(">HH", rng.randint(desktop.width - width + 1, 0xFFFF), 0)
    return Rectangle(min(x, desktop.width - width), y, width, height, Encoding.COPY_RECT).encode() + source, \
        ProtocolViolation


def _cursor_hostile(rng: Random, desktop: Desktop) -> Hostile:
    width, height = rng.randint(200, 0xFFFF), rng.randint(200, 0xFFFF)
    return Rectangle(0, 0, width, height, Encoding.CURSOR).encode(), LimitExceeded


@dataclass(frozen=True, slots=True)
class EncodingFamily:
    """Rectangles of one encoding: a valid one (which may resize ``desktop``), and hostile ones."""

    encoding: Encoding
    valid: Callable[[Random, Desktop], Rect]
    specific: Callable[[Random, Desktop], Hostile] | None = None

    @property
    def name(self) -> str:
        return self.encoding.name

    def hostile(self, rng: Random, desktop: Desktop) -> Hostile:
        """An update whose one rectangle may break the protocol."""
        roll = rng.random()
        if self.specific is not None and roll < 0.4:
            rect, error = self.specific(rng, desktop)
        elif self.encoding >= 0 and roll < 0.55:
            rect, error = _outside(rng, desktop, self.encoding)
        elif roll < 0.65:
            unknown = rng.choice((-1, 3, 4, 8, 15, 17, -260, -309, -312, EXTENDED_CLIPBOARD, uint(rng, 31)))
            rect = Rectangle(0, 0, 1, 1, unknown).encode() + bytes(8)
            error = None if unknown in FRAMEABLE_ENCODINGS else ProtocolViolation
        else:
            header, payload = self.valid(rng, desktop.copy())
            return flipped(rng, encode_update_header(1) + header.encode() + payload), None
        return encode_update_header(rng.choice((1, 2, 0xFFFF))) + rect, error


ENCODING_FAMILIES = (
    EncodingFamily(Encoding.RAW, _raw),
    EncodingFamily(Encoding.COPY_RECT, _copy_rect, _copy_rect_hostile),
    EncodingFamily(Encoding.RRE, _rre, _rre_hostile),
    EncodingFamily(Encoding.HEXTILE, _hextile, _hextile_hostile),
    EncodingFamily(Encoding.TIGHT, _tight, _tight_hostile),
    EncodingFamily(Encoding.ZRLE, _zrle, lambda rng, _: _length_over(rng, Encoding.ZRLE, PAYLOAD_LIMIT - 4)),
    EncodingFamily(Encoding.CURSOR, _cursor, _cursor_hostile),
    EncodingFamily(Encoding.DESKTOP_SIZE, _desktop_size, lambda rng, _: _size_hostile(rng, Encoding.DESKTOP_SIZE)),
    EncodingFamily(Encoding.EXTENDED_DESKTOP_SIZE, _extended_desktop_size,
                   lambda rng, _: _size_hostile(rng, Encoding.EXTENDED_DESKTOP_SIZE)),
    EncodingFamily(Encoding.LAST_RECT, _no_payload(Encoding.LAST_RECT)),
    EncodingFamily(Encoding.DESKTOP_NAME, _desktop_name,
                   lambda rng, _: _length_over(rng, Encoding.DESKTOP_NAME, NAME_LIMIT)),
    EncodingFamily(Encoding.QEMU_EXTENDED_KEY_EVENT, _no_payload(Encoding.QEMU_EXTENDED_KEY_EVENT)),
)
assert {family.encoding for family in ENCODING_FAMILIES} == set(Encoding), "every encoding has its family"
VALID_RECTS = {family.encoding: family.valid for family in ENCODING_FAMILIES}


_WITHIN_UPDATES = tuple(family for family in ENCODING_FAMILIES if family.encoding != Encoding.LAST_RECT)


def update(rng: Random, desktop: Desktop) -> tuple[bytes, list[Rect]]:
    """An update of up to four rectangles in any encodings: counted, or ended by a LastRect."""
    rects = [rng.choice(_WITHIN_UPDATES).valid(rng, desktop) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.2:
        rects.append(VALID_RECTS[Encoding.LAST_RECT](rng, desktop))
        header = encode_update_header(0xFFFF)
    else:
        header = encode_update_header(len(rects))
    return header + b"".join(rect.encode() + payload for rect, payload in rects), rects


def hostile_update(rng: Random, desktop: Desktop) -> Hostile:
    """An update whose one rectangle, in any encoding, may break the protocol."""
    return rng.choice(ENCODING_FAMILIES).hostile(rng, desktop)


@dataclass(frozen=True, slots=True)
class ServerFamily:
    """One server message type other than FramebufferUpdate."""

    name: str
    valid: Callable[[Random], ServerMessage | ExtendedServerCutText]
    hostile: Callable[[Random], Hostile]


def _server_hostile(rng: Random, valid: Callable[[Random], ServerMessage | ExtendedServerCutText],
                    specific: Callable[[Random], Hostile]) -> Hostile:
    roll = rng.random()
    if roll < 0.5:
        return specific(rng)
    if roll < 0.6:
        return bytes((rng.randint(4, 255),)) + rng.randbytes(rng.randint(0, 12)), UnsupportedEncoding
    return flipped(rng, valid(rng).encode()), None


def _colour_map(rng: Random) -> SetColourMapEntries:
    count = upto(rng, 40, 4)
    first = rng.choice((0, 0xFFFF - count + 1, 1 << 15)) if rng.random() < 0.2 else rng.randint(0, 0x10000 - count)
    return SetColourMapEntries(min(first, 0xFFFF), tuple((uint(rng, 16), uint(rng, 16), uint(rng, 16))
                                                         for _ in range(count)))


def _colour_map_hostile(rng: Random) -> Hostile:
    count = rng.randint(2, 40)
    first = rng.randint(0x10000 - count + 1, 0xFFFF)
    header = struct.pack(">BxHH", ServerMessageType.SET_COLOUR_MAP_ENTRIES, first, count)
    return header + rng.randbytes(6 * count), ProtocolViolation


def _server_cut_text_hostile(rng: Random) -> Hostile:
    wire, error = _cut_text_hostile(rng)
    return bytes((ServerMessageType.SERVER_CUT_TEXT,)) + wire[1:], error


def _server_family(name: str, valid: Callable[[Random], ServerMessage | ExtendedServerCutText],
                   specific: Callable[[Random], Hostile]) -> ServerFamily:
    return ServerFamily(name, valid, lambda rng: _server_hostile(rng, valid, specific))


SERVER_FAMILIES = (
    _server_family("SetColourMapEntries", _colour_map, _colour_map_hostile),
    _server_family("Bell", lambda rng: Bell(),
                   lambda rng: (bytes((rng.randint(4, 255),)), UnsupportedEncoding)),
    _server_family("ServerCutText", lambda rng: ServerCutText(rng.randbytes(upto(rng, CUT_TEXT_LIMIT, 40))),
                   _server_cut_text_hostile),
    _server_family("ExtendedServerCutText", lambda rng: extended_cut_text(rng, ExtendedServerCutText),
                   lambda rng: extended_clipboard_hostile(rng, ServerMessageType.SERVER_CUT_TEXT)),
)
