"""RFC constants inside rectangle payloads (RFC 6143 §7.7, rfbproto's Tight and ExtendedDesktopSize).

One definition for the framer, which measures payloads, and the recorder's decoders,
which paint them. Hot loops compare plain ints: bind ``int(member)`` to a module
constant there, since looking up an enum member costs more than the comparison.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class HextileSubencoding(IntFlag):
    """The mask byte that starts every Hextile tile (§7.7.4); the three high bits are undefined."""

    RAW = 1
    BACKGROUND_SPECIFIED = 2
    FOREGROUND_SPECIFIED = 4
    ANY_SUBRECTS = 8
    SUBRECTS_COLOURED = 16


#: Every bit a Hextile mask may set.
HEXTILE_DEFINED_BITS = sum(HextileSubencoding)

#: Hextile tiles are 16x16 pixels; those in the last column and row may be smaller.
HEXTILE_TILE_SIZE = 16


class TightCompression(IntEnum):
    """The high nibble of Tight's compression-control byte, when it is not basic compression (0-7)."""

    FILL = 0x8
    JPEG = 0x9


class TightBasic(IntFlag):
    """A basic-compression nibble: which of the four zlib streams, and whether a filter id follows."""

    STREAM = 0x3
    EXPLICIT_FILTER = 0x4


class TightFilter(IntEnum):
    """What basic compression did to the pixels before zlib."""

    COPY = 0
    PALETTE = 1
    GRADIENT = 2


#: Basic-compression data shorter than this is sent as is, without zlib or a length.
TIGHT_MIN_TO_COMPRESS = 12


class ExtendedDesktopSizeReason(IntEnum):
    """Why the size changed, carried in the rectangle's x."""

    SERVER = 0
    CLIENT = 1  # the answer to this client's SetDesktopSize
    OTHER_CLIENT = 2


class ExtendedDesktopSizeStatus(IntEnum):
    """The outcome of a SetDesktopSize, carried in the rectangle's y."""

    OK = 0
    PROHIBITED = 1
    OUT_OF_RESOURCES = 2
    INVALID_SCREEN_LAYOUT = 3
