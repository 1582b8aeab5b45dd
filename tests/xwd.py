"""Read X Window Dump files (what ``xwd -root -silent`` writes) into RGB arrays.

Layout (X11 ``XWDFile.h``): a big-endian header of 25 CARD32 fields, the
window name (the rest of ``header_size``), ``ncolors`` 12-byte XWDColor
entries (also big-endian), then ``height`` rows of ``bytes_per_line`` bytes of
ZPixmap data in the header's ``byte_order``. True- and direct-colour visuals
give channels through the red, green and blue masks; the others look pixels
up in the colour entries.
"""

from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.demo import XvncDesktop

XWD_FILE_VERSION = 7
Z_PIXMAP = 2
LSB_FIRST, MSB_FIRST = 0, 1
TRUE_COLOR, DIRECT_COLOR = 4, 5

HEADER = struct.Struct(">25I")
COLOUR = struct.Struct(">IHHHBB")


@dataclass(frozen=True, slots=True)
class XWDHeader:
    header_size: int
    file_version: int
    pixmap_format: int
    pixmap_depth: int
    pixmap_width: int
    pixmap_height: int
    xoffset: int
    byte_order: int
    bitmap_unit: int
    bitmap_bit_order: int
    bitmap_pad: int
    bits_per_pixel: int
    bytes_per_line: int
    visual_class: int
    red_mask: int
    green_mask: int
    blue_mask: int
    bits_per_rgb: int
    colormap_entries: int
    ncolors: int
    window_width: int
    window_height: int
    window_x: int
    window_y: int
    window_bdrwidth: int


def read_xwd(path_or_bytes: str | Path | bytes) -> npt.NDArray[np.uint8]:
    """Decode an XWD image to an (height, width, 3) uint8 RGB array; ValueError if unsupported or cut short."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    if len(data) < HEADER.size:
        raise ValueError(f"an XWD header is {HEADER.size} bytes, the file has {len(data)}")
    header = XWDHeader(*HEADER.unpack_from(data))
    if header.file_version != XWD_FILE_VERSION:
        raise ValueError(f"XWD file version {header.file_version}, expected {XWD_FILE_VERSION}")
    if header.pixmap_format != Z_PIXMAP or header.bits_per_pixel not in (8, 16, 24, 32):
        raise ValueError(
            f"only ZPixmap images of 8, 16, 24 or 32 bits per pixel are supported "
            f"(format {header.pixmap_format}, {header.bits_per_pixel} bits per pixel)"
        )
    colours_start = header.header_size
    pixels_start = colours_start + header.ncolors * COLOUR.size
    width, height = header.pixmap_width, header.pixmap_height
    bytes_per_pixel = header.bits_per_pixel // 8
    row_start = header.xoffset * bytes_per_pixel
    if header.bytes_per_line < row_start + width * bytes_per_pixel:
        raise ValueError(f"bytes_per_line {header.bytes_per_line} is too short for {width} pixels")
    if len(data) < pixels_start + header.bytes_per_line * height:
        raise ValueError("the XWD file is cut short")

    rows = np.frombuffer(data, np.uint8, header.bytes_per_line * height, pixels_start)
    pixel_bytes = rows.reshape(height, header.bytes_per_line)[:, row_start : row_start + width * bytes_per_pixel]
    pixel_bytes = pixel_bytes.reshape(height, width, bytes_per_pixel).astype(np.uint32)
    if header.byte_order == LSB_FIRST:
        pixel_bytes = pixel_bytes[:, :, ::-1]
    values = np.zeros((height, width), np.uint32)
    for index in range(bytes_per_pixel):  # most significant byte first
        values = (values << np.uint32(8)) | pixel_bytes[:, :, index]

    if header.visual_class in (TRUE_COLOR, DIRECT_COLOR):
        return np.stack(
            [_channel(values, mask) for mask in (header.red_mask, header.green_mask, header.blue_mask)], axis=-1
        )
    return _colour_mapped(data[colours_start:pixels_start], header.ncolors, values)


def _channel(values: npt.NDArray[np.uint32], mask: int) -> npt.NDArray[np.uint8]:
    if mask == 0:
        raise ValueError("a true-colour XWD needs non-zero red, green and blue masks")
    shift = (mask & -mask).bit_length() - 1
    maximum = mask >> shift
    scaled = ((values & np.uint32(mask)) >> np.uint32(shift)).astype(np.uint64) * 255 // maximum
    return scaled.astype(np.uint8)


def _colour_mapped(colour_data: bytes, ncolors: int, values: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint8]:
    lookup: dict[int, tuple[int, int, int]] = {}
    for offset in range(0, ncolors * COLOUR.size, COLOUR.size):
        pixel, red, green, blue, _, _ = COLOUR.unpack_from(colour_data, offset)
        lookup[pixel] = (red >> 8, green >> 8, blue >> 8)
    unique, inverse = np.unique(values, return_inverse=True)
    missing = [int(value) for value in unique if int(value) not in lookup]
    if missing:
        raise ValueError(f"pixel values {missing[:5]} have no colour map entry")
    palette = np.array([lookup[int(value)] for value in unique], np.uint8).reshape(-1, 3)
    return palette[inverse.reshape(values.shape)]


def take_screenshot(desktop: XvncDesktop) -> bytes:
    """The desktop's whole screen as an XWD image (``xwd -root``)."""
    return subprocess.run(["xwd", "-root", "-silent", "-display", desktop.display], env={**os.environ, **desktop.env},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=True).stdout
