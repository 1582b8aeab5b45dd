"""RFB vocabulary: constants, the pixel format, and every message the gateway frames.

Each message is a frozen, slotted dataclass with ``encode() -> bytes``; parsing of
streams lives in :mod:`gateway.rfb.framing`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from gateway.errors import ProtocolViolation


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


@dataclass(frozen=True, slots=True)
class PixelFormat:
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
            raise ProtocolViolation(f"bits-per-pixel must be 8, 16 or 32, not {self.bits_per_pixel}")
        if not 0 < self.depth <= self.bits_per_pixel:
            raise ProtocolViolation(f"depth {self.depth} does not fit {self.bits_per_pixel} bits per pixel")
        if self.true_colour:
            for name in ("red", "green", "blue"):
                maximum = getattr(self, f"{name}_max")
                shift = getattr(self, f"{name}_shift")
                if maximum == 0 or maximum & (maximum + 1) or shift + maximum.bit_length() > self.bits_per_pixel:
                    raise ProtocolViolation(f"{name}-max {maximum} << {shift} does not fit the pixel")

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
    def parse(cls, data: bytes) -> PixelFormat:
        """Parse the 16-byte wire form; raises ProtocolViolation if it is not a usable format."""
        if len(data) != 16:
            raise ProtocolViolation(f"a pixel format is 16 bytes, got {len(data)}")
        bpp, depth, big_endian, true_colour, rmax, gmax, bmax, rshift, gshift, bshift = cls._STRUCT.unpack(data)
        return cls(bpp, depth, bool(big_endian), bool(true_colour), rmax, gmax, bmax, rshift, gshift, bshift)


#: 32-bit little-endian true colour, 8 bits per channel: what noVNC asks for.
RGBX8888 = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)


@dataclass(frozen=True, slots=True)
class Rectangle:
    """A rectangle header inside a FramebufferUpdate (RFC 6143 §7.6.1).

    For pseudo-encodings x, y, width and height carry encoding-specific values
    (cursor hotspot, new desktop size, ExtendedDesktopSize reason/status).
    """

    x: int
    y: int
    width: int
    height: int
    encoding: int

    _STRUCT = struct.Struct(">HHHHi")

    def encode(self) -> bytes:
        return self._STRUCT.pack(self.x, self.y, self.width, self.height, self.encoding)

    @classmethod
    def parse(cls, data: bytes) -> Rectangle:
        return cls(*cls._STRUCT.unpack(data))
