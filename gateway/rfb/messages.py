"""RFB vocabulary: constants, the pixel format, and every message the gateway frames.

Each message is a frozen, slotted dataclass with ``encode() -> bytes``, validated on
construction; parsing of streams lives in :mod:`gateway.rfb.framing`. Who is to blame
for a value that does not fit the wire depends on where it came from: building a
message with one is our bug (:class:`~gateway.rfb.errors.LocalProtocolError`), while
``parse()`` of a peer's bytes reports the same check as the peer's
:class:`~gateway.rfb.errors.ProtocolViolation`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self, TypeAlias

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation


class ClientMessageType(IntEnum):
    SET_PIXEL_FORMAT = 0
    SET_ENCODINGS = 2
    FRAMEBUFFER_UPDATE_REQUEST = 3
    KEY_EVENT = 4
    POINTER_EVENT = 5
    CLIENT_CUT_TEXT = 6
    SET_DESKTOP_SIZE = 251
    QEMU = 255


class ServerMessageType(IntEnum):
    FRAMEBUFFER_UPDATE = 0
    SET_COLOUR_MAP_ENTRIES = 1
    BELL = 2
    SERVER_CUT_TEXT = 3


class SecurityType(IntEnum):
    INVALID = 0
    NONE = 1
    VNC_AUTH = 2


class Encoding(IntEnum):
    """Rectangle encodings and pseudo-encodings (RFC 6143 §7.7 and the community registry)."""

    RAW = 0
    COPY_RECT = 1
    RRE = 2
    HEXTILE = 5
    TIGHT = 7
    ZRLE = 16
    CURSOR = -239
    DESKTOP_SIZE = -223
    LAST_RECT = -224
    DESKTOP_NAME = -307
    EXTENDED_DESKTOP_SIZE = -308
    QEMU_EXTENDED_KEY_EVENT = -258


# Pseudo-encodings that only tune the server's encoder: they change nothing in framing.
JPEG_QUALITY_LEVELS = range(-32, -22)  # -32 .. -23
COMPRESS_LEVELS = range(-256, -246)  # -256 .. -247


class _Wire:
    """A value with a wire form; ``parse`` blames the peer for values that construction refuses."""

    __slots__ = ()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse the whole wire form; :class:`ProtocolViolation` if it is not a valid one."""
        try:
            return cls._parse(data)
        except LocalProtocolError as exc:
            raise ProtocolViolation(str(exc)) from exc

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PixelFormat(_Wire):
    """How a pixel is laid out on the wire (RFC 6143 §7.4)."""

    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    _STRUCT = struct.Struct(">BBBBHHHBBB3x")

    def __post_init__(self) -> None:
        if self.bits_per_pixel not in (8, 16, 32):
            raise LocalProtocolError(f"bits-per-pixel must be 8, 16 or 32, not {self.bits_per_pixel}")
        if not 0 < self.depth <= self.bits_per_pixel:
            raise LocalProtocolError(f"depth {self.depth} does not fit {self.bits_per_pixel} bits per pixel")
        if self.true_colour:
            for name in ("red", "green", "blue"):
                maximum = getattr(self, f"{name}_max")
                shift = getattr(self, f"{name}_shift")
                if maximum == 0 or maximum & (maximum + 1) or shift + maximum.bit_length() > self.bits_per_pixel:
                    raise LocalProtocolError(f"{name}-max {maximum} << {shift} does not fit the pixel")

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    @property
    def tight_pixel_size(self) -> int:
        """Size of a TPIXEL: 3 bytes for 32-bit true colour of depth 24 with 8-bit channels."""
        if (
            self.true_colour
            and self.bits_per_pixel == 32
            and self.depth == 24
            and self.red_max == self.green_max == self.blue_max == 255
        ):
            return 3
        return self.bytes_per_pixel

    def encode(self) -> bytes:
        return self._STRUCT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            int(self.true_colour),
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        bpp, depth, big_endian, true_colour, rmax, gmax, bmax, rshift, gshift, bshift = _unpack(
            cls._STRUCT, data, "a pixel format"
        )
        return cls(bpp, depth, bool(big_endian), bool(true_colour), rmax, gmax, bmax, rshift, gshift, bshift)


#: 32-bit little-endian true colour, 8 bits per channel: what noVNC asks for.
RGBX8888 = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)


@dataclass(frozen=True, slots=True)
class Rectangle(_Wire):
    """A rectangle header inside a FramebufferUpdate (RFC 6143 §7.6.1).

    For pseudo-encodings x, y, width and height carry encoding-specific values
    (cursor hotspot, new desktop size, ExtendedDesktopSize reason/status).
    """

    x: int
    y: int
    width: int
    height: int
    encoding: int

    LAYOUT = struct.Struct(">HHHHi")

    def encode(self) -> bytes:
        return self.LAYOUT.pack(self.x, self.y, self.width, self.height, self.encoding)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        return cls(*cls.LAYOUT.unpack(data))


_U8 = range(1 << 8)
_U16 = range(1 << 16)
_U32 = range(1 << 32)
_S32 = range(-(1 << 31), 1 << 31)


def _check(name: str, value: int, valid: range) -> None:
    # Compare bounds: ``in range`` is a linear scan for int subclasses such as IntEnum members.
    if not valid.start <= value < valid.stop:
        raise LocalProtocolError(f"{name} {value} is outside {valid.start}..{valid.stop - 1}")


def _unpack(layout: struct.Struct, data: bytes, what: str) -> tuple[Any, ...]:
    """Unpack a fixed-size wire form, checking its length first."""
    if len(data) != layout.size:
        raise ProtocolViolation(f"{what} is {layout.size} bytes, got {len(data)}")
    return layout.unpack(data)


def _split(layout: struct.Struct, data: bytes, item_size: int, what: str) -> tuple[tuple[Any, ...], bytes]:
    """Unpack the header of a variable-length message whose last field counts the items that follow."""
    if len(data) < layout.size:
        raise ProtocolViolation(f"{what} is at least {layout.size} bytes, got {len(data)}")
    header = layout.unpack_from(data)
    if len(data) != layout.size + header[-1] * item_size:
        raise ProtocolViolation(f"{what} announces {header[-1]} items but is {len(data)} bytes")
    return header, data[layout.size :]


# ---------------------------------------------------------------- client → server
#
# Each message class describes its wire layout for the framers: ``LAYOUT`` for a
# fixed-size message, or ``HEADER`` (whose last field counts the items that follow)
# and ``ITEM_SIZE`` for a variable-length one. ``parse`` takes the whole message.


@dataclass(frozen=True, slots=True)
class SetPixelFormat(_Wire):
    """The pixel format for later updates (RFC 6143 §7.5.1)."""

    pixel_format: PixelFormat

    LAYOUT = struct.Struct(">B3x16s")

    def encode(self) -> bytes:
        return self.LAYOUT.pack(ClientMessageType.SET_PIXEL_FORMAT, self.pixel_format.encode())

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        _, pixel_format = _unpack(cls.LAYOUT, data, "SetPixelFormat")
        return cls(PixelFormat.parse(pixel_format))


@dataclass(frozen=True, slots=True)
class SetEncodings(_Wire):
    """The encodings and pseudo-encodings the client accepts, most preferred first (§7.5.2)."""

    encodings: tuple[int, ...]

    HEADER = struct.Struct(">BxH")
    ITEM_SIZE = 4

    def __post_init__(self) -> None:
        _check("number of encodings", len(self.encodings), _U16)
        for encoding in self.encodings:
            _check("encoding", encoding, _S32)

    def encode(self) -> bytes:
        count = len(self.encodings)
        return self.HEADER.pack(ClientMessageType.SET_ENCODINGS, count) + struct.pack(f">{count}i", *self.encodings)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        (_, count), body = _split(cls.HEADER, data, cls.ITEM_SIZE, "SetEncodings")
        return cls(struct.unpack(f">{count}i", body))


@dataclass(frozen=True, slots=True)
class FramebufferUpdateRequest(_Wire):
    """Asks for an update of an area, whole or only what changed (§7.5.3)."""

    incremental: bool
    x: int
    y: int
    width: int
    height: int

    LAYOUT = struct.Struct(">BBHHHH")

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            _check(name, getattr(self, name), _U16)

    def encode(self) -> bytes:
        return self.LAYOUT.pack(
            ClientMessageType.FRAMEBUFFER_UPDATE_REQUEST, self.incremental, self.x, self.y, self.width, self.height
        )

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        _, incremental, x, y, width, height = _unpack(cls.LAYOUT, data, "FramebufferUpdateRequest")
        return cls(bool(incremental), x, y, width, height)


@dataclass(frozen=True, slots=True)
class KeyEvent(_Wire):
    """A key press or release, as an X keysym (§7.5.4)."""

    down: bool
    key: int

    LAYOUT = struct.Struct(">BB2xI")

    def __post_init__(self) -> None:
        _check("keysym", self.key, _U32)

    def encode(self) -> bytes:
        return self.LAYOUT.pack(ClientMessageType.KEY_EVENT, self.down, self.key)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        _, down, key = _unpack(cls.LAYOUT, data, "KeyEvent")
        return cls(bool(down), key)


@dataclass(frozen=True, slots=True)
class PointerEvent(_Wire):
    """Pointer position and buttons 1–8 as bits 0–7 (§7.5.5)."""

    button_mask: int
    x: int
    y: int

    LAYOUT = struct.Struct(">BBHH")

    def __post_init__(self) -> None:
        _check("button mask", self.button_mask, _U8)
        _check("x", self.x, _U16)
        _check("y", self.y, _U16)

    def encode(self) -> bytes:
        return self.LAYOUT.pack(ClientMessageType.POINTER_EVENT, self.button_mask, self.x, self.y)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        _, button_mask, x, y = _unpack(cls.LAYOUT, data, "PointerEvent")
        return cls(button_mask, x, y)


# Cut-text lengths with the top bit set mean the Extended Clipboard format instead.
_CUT_TEXT_LENGTH = range(1 << 31)
_CUT_TEXT_HEADER = struct.Struct(">B3xI")


@dataclass(frozen=True, slots=True)
class ClientCutText(_Wire):
    """The client's clipboard, Latin-1 (§7.5.6)."""

    text: bytes

    HEADER = _CUT_TEXT_HEADER
    ITEM_SIZE = 1

    def __post_init__(self) -> None:
        _check("cut text length", len(self.text), _CUT_TEXT_LENGTH)

    def encode(self) -> bytes:
        return self.HEADER.pack(ClientMessageType.CLIENT_CUT_TEXT, len(self.text)) + self.text

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        return cls(_split(cls.HEADER, data, cls.ITEM_SIZE, "ClientCutText")[1])


@dataclass(frozen=True, slots=True)
class Screen:
    """One screen of a multi-head layout (ExtendedDesktopSize and SetDesktopSize)."""

    id: int
    x: int
    y: int
    width: int
    height: int
    flags: int

    LAYOUT = struct.Struct(">IHHHHI")

    def __post_init__(self) -> None:
        _check("screen id", self.id, _U32)
        for name in ("x", "y", "width", "height"):
            _check(f"screen {name}", getattr(self, name), _U16)
        _check("screen flags", self.flags, _U32)

    def encode(self) -> bytes:
        return self.LAYOUT.pack(self.id, self.x, self.y, self.width, self.height, self.flags)


@dataclass(frozen=True, slots=True)
class SetDesktopSize(_Wire):
    """Asks the server for a new framebuffer size and screen layout (rfbproto, ExtendedDesktopSize)."""

    width: int
    height: int
    screens: tuple[Screen, ...]

    HEADER = struct.Struct(">BxHHBx")
    ITEM_SIZE = Screen.LAYOUT.size

    def __post_init__(self) -> None:
        _check("width", self.width, _U16)
        _check("height", self.height, _U16)
        _check("number of screens", len(self.screens), _U8)

    def encode(self) -> bytes:
        header = self.HEADER.pack(ClientMessageType.SET_DESKTOP_SIZE, self.width, self.height, len(self.screens))
        return header + b"".join(screen.encode() for screen in self.screens)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        (_, width, height, _), body = _split(cls.HEADER, data, cls.ITEM_SIZE, "SetDesktopSize")
        return cls(width, height, tuple(Screen(*fields) for fields in Screen.LAYOUT.iter_unpack(body)))


#: Sub-type of QEMU client message 255 that carries a key event with its scancode.
QEMU_EXTENDED_KEY_EVENT_SUBTYPE = 0


@dataclass(frozen=True, slots=True)
class QEMUExtendedKeyEvent(_Wire):
    """A key event with its XT scancode (QEMU client message 255, sub-type 0)."""

    down: bool
    keysym: int
    keycode: int

    LAYOUT = struct.Struct(">BBHII")

    def __post_init__(self) -> None:
        _check("keysym", self.keysym, _U32)
        _check("keycode", self.keycode, _U32)

    def encode(self) -> bytes:
        return self.LAYOUT.pack(
            ClientMessageType.QEMU, QEMU_EXTENDED_KEY_EVENT_SUBTYPE, self.down, self.keysym, self.keycode
        )

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        _, subtype, down, keysym, keycode = _unpack(cls.LAYOUT, data, "QEMUExtendedKeyEvent")
        if subtype != QEMU_EXTENDED_KEY_EVENT_SUBTYPE:
            raise ProtocolViolation(f"QEMU client message sub-type {subtype} is not an extended key event")
        return cls(bool(down), keysym, keycode)


ClientMessage: TypeAlias = (
    SetPixelFormat
    | SetEncodings
    | FramebufferUpdateRequest
    | KeyEvent
    | PointerEvent
    | ClientCutText
    | SetDesktopSize
    | QEMUExtendedKeyEvent
)


# ---------------------------------------------------------------- server → client


@dataclass(frozen=True, slots=True)
class ServerInit(_Wire):
    """The last handshake message: framebuffer size, pixel format and desktop name (§7.3.2)."""

    width: int
    height: int
    pixel_format: PixelFormat
    name: bytes

    HEADER = struct.Struct(">HH16sI")
    ITEM_SIZE = 1

    def __post_init__(self) -> None:
        _check("framebuffer width", self.width, _U16)
        _check("framebuffer height", self.height, _U16)
        _check("name length", len(self.name), _U32)

    def encode(self) -> bytes:
        return self.HEADER.pack(self.width, self.height, self.pixel_format.encode(), len(self.name)) + self.name

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        (width, height, pixel_format, _), name = _split(cls.HEADER, data, cls.ITEM_SIZE, "ServerInit")
        return cls(width, height, PixelFormat.parse(pixel_format), name)


@dataclass(frozen=True, slots=True)
class SetColourMapEntries(_Wire):
    """Colour-map entries from ``first_colour`` on, 16 bits per channel (§7.6.2)."""

    first_colour: int
    colours: tuple[tuple[int, int, int], ...]

    HEADER = struct.Struct(">BxHH")
    _COLOUR = struct.Struct(">HHH")
    ITEM_SIZE = _COLOUR.size

    def __post_init__(self) -> None:
        _check("first colour", self.first_colour, _U16)
        _check("last colour", self.first_colour + len(self.colours), range((1 << 16) + 1))
        for colour in self.colours:
            for channel in colour:
                _check("colour intensity", channel, _U16)

    def encode(self) -> bytes:
        header = self.HEADER.pack(ServerMessageType.SET_COLOUR_MAP_ENTRIES, self.first_colour, len(self.colours))
        return header + b"".join(self._COLOUR.pack(*colour) for colour in self.colours)

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        (_, first_colour, _), body = _split(cls.HEADER, data, cls.ITEM_SIZE, "SetColourMapEntries")
        return cls(first_colour, tuple(cls._COLOUR.iter_unpack(body)))


@dataclass(frozen=True, slots=True)
class Bell:
    """Ring the bell (§7.6.3)."""

    LAYOUT = struct.Struct(">B")

    def encode(self) -> bytes:
        return self.LAYOUT.pack(ServerMessageType.BELL)


@dataclass(frozen=True, slots=True)
class ServerCutText(_Wire):
    """The server's clipboard, Latin-1 (§7.6.4)."""

    text: bytes

    HEADER = _CUT_TEXT_HEADER
    ITEM_SIZE = 1

    def __post_init__(self) -> None:
        _check("cut text length", len(self.text), _CUT_TEXT_LENGTH)

    def encode(self) -> bytes:
        return self.HEADER.pack(ServerMessageType.SERVER_CUT_TEXT, len(self.text)) + self.text

    @classmethod
    def _parse(cls, data: bytes) -> Self:
        return cls(_split(cls.HEADER, data, cls.ITEM_SIZE, "ServerCutText")[1])


ServerMessage: TypeAlias = SetColourMapEntries | Bell | ServerCutText

#: A FramebufferUpdate starts with this header; its rectangles follow it.
UPDATE_HEADER = struct.Struct(">BxH")


def encode_update_header(rect_count: int) -> bytes:
    """The 4-byte FramebufferUpdate header announcing ``rect_count`` rectangles (0xFFFF with LastRect)."""
    _check("rectangle count", rect_count, _U16)
    return UPDATE_HEADER.pack(ServerMessageType.FRAMEBUFFER_UPDATE, rect_count)
