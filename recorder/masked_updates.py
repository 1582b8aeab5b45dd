"""The masked live view's picture: decode the target's updates, hide the masked regions, encode them anew.

A live viewer of a masked desktop must never receive the masked pixels, and the target's
own encodings cannot be edited in place (ZRLE and Tight carry one zlib stream across
rectangles, CopyRect may copy masked pixels elsewhere). So the gateway keeps the desktop's
picture itself: :class:`MaskedUpdates` decodes every rectangle of an update into a
:class:`~recorder.framebuffer.Framebuffer` (the recorder's decoders), then sends the viewer,
for each area the update painted, the framebuffer's pixels with the masks painted over —
encoded by the gateway in the viewer's pixel format as ZRLE (raw tiles in one zlib stream,
level 1) when the viewer takes it, else Raw. The Cursor, DesktopSize, ExtendedDesktopSize and
DesktopName rectangles carry no picture and pass as they came.

Cost (paid only for masked desktops, in a worker thread): one decode and one encode of the
changed area per update — about what recording it costs — and ZRLE without the target's
palette/RLE tiles is larger on the wire than the target's own encoding (zlib recovers most of
it for flat screens). Unmasked desktops keep the zero-copy relay.

Pure: no I/O. A target's malformed rectangle raises :class:`~recorder.errors.DecodeError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from gateway.rfb.framing import RectangleReceived
from gateway.rfb.messages import Encoding, PixelFormat, Rectangle, ServerInit
from recorder.decoders import DecoderState, decode_rectangle
from recorder.decoders.zrle import compact_pixel_padding
from recorder.framebuffer import Framebuffer, RGBArray
from recorder.masking import MaskRegion, MaskSet, paint_region

_PASS_THROUGH = {int(Encoding.CURSOR), int(Encoding.DESKTOP_SIZE), int(Encoding.EXTENDED_DESKTOP_SIZE),
                 int(Encoding.DESKTOP_NAME)}
_NO_PICTURE = {int(Encoding.LAST_RECT), int(Encoding.QEMU_EXTENDED_KEY_EVENT)}
_UPDATE_HEADER = struct.Struct(">BxH")
_U32 = struct.Struct(">I")
_TILE = 64
#: More painted areas than this in one update are sent as their bounding box (fewer, larger rectangles).
MAX_AREAS = 32


class MaskedUpdates:
    """The picture of one masked live view; see the module docstring."""

    def __init__(self, server_init: ServerInit, masks: Sequence[MaskSet]) -> None:
        self._framebuffer = Framebuffer(server_init.width, server_init.height)
        self._state = DecoderState(server_init.pixel_format)
        self._masks = tuple(masks)
        self._regions: tuple[tuple[MaskRegion, MaskSet], ...] = ()
        self._size = (-1, -1)
        self._zlib = zlib.compressobj(1)

    def update(self, rectangles: Sequence[RectangleReceived], pixel_format: PixelFormat, zrle: bool) -> bytes:
        """The FramebufferUpdate to send the viewer for the target's ``rectangles`` (in ``pixel_format``)."""
        self._state.pixel_format = pixel_format
        areas: list[tuple[int, int, int, int]] = []
        out: list[bytes] = []
        for received in rectangles:
            rect = received.rect
            if rect.encoding != Encoding.DESKTOP_NAME:
                decode_rectangle(self._state, self._framebuffer, rect, received.payload)
            if rect.encoding in _PASS_THROUGH:
                out.append(received.raw)
            elif rect.encoding not in _NO_PICTURE and rect.width and rect.height:
                areas.append((rect.x, rect.y, rect.width, rect.height))
        if len(areas) > MAX_AREAS:
            areas = [_bounding_box(areas)]
        encoding = Encoding.ZRLE if zrle else Encoding.RAW
        for x, y, width, height in areas:
            x, y, width, height = _clip(x, y, width, height, self._framebuffer)
            if width and height:
                pixels = self._masked(x, y, width, height)
                data = self._zrle(pixels, pixel_format) if zrle else encode_pixels(pixels, pixel_format)
                out.append(Rectangle(x, y, width, height, encoding).encode() + data)
        return _UPDATE_HEADER.pack(0, len(out)) + b"".join(out)

    def _masked(self, x: int, y: int, width: int, height: int) -> RGBArray:
        """The framebuffer's pixels of the area with every mask over it painted (a copy)."""
        fb = self._framebuffer
        if self._size != (fb.width, fb.height):
            self._size = (fb.width, fb.height)
            self._regions = tuple((region, mask_set) for mask_set in self._masks
                                  for region in mask_set.regions_for(fb.width, fb.height))
        area = fb.pixels[y:y + height, x:x + width].copy()
        for region, mask_set in self._regions:
            left, top = max(region.x, x), max(region.y, y)
            right, bottom = min(region.x + region.width, x + width), min(region.y + region.height, y + height)
            if left < right and top < bottom:
                # Paint the whole region on a copy, then take the overlap: a blur looks the same in every update.
                whole = fb.pixels[region.y:region.y + region.height, region.x:region.x + region.width].copy()
                paint_region(whole, MaskRegion(0, 0, region.width, region.height), mask_set.style)
                area[top - y:bottom - y, left - x:right - x] = \
                    whole[top - region.y:bottom - region.y, left - region.x:right - region.x]
        return area

    def _zrle(self, pixels: RGBArray, pixel_format: PixelFormat) -> bytes:
        """ZRLE data of ``pixels``: every 64x64 tile raw (subencoding 0), in the connection's zlib stream."""
        padding = compact_pixel_padding(pixel_format)
        size = pixel_format.bytes_per_pixel
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        tiles: list[bytes] = []
        for top in range(0, height, _TILE):
            for left in range(0, width, _TILE):
                wire = encode_pixels(pixels[top:top + _TILE, left:left + _TILE], pixel_format)
                if padding is not None:  # CPIXEL: 3 of the 4 wire bytes
                    columns = slice(0, 3) if padding == 3 else slice(1, 4)
                    wire = np.frombuffer(wire, np.uint8).reshape(-1, size)[:, columns].tobytes()
                tiles.append(b"\x00" + wire)
        compressed = self._zlib.compress(b"".join(tiles)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        return _U32.pack(len(compressed)) + compressed


def encode_pixels(pixels: RGBArray, pixel_format: PixelFormat) -> bytes:
    """(h, w, 3) RGB as wire pixels of a true-colour ``pixel_format``, left to right, top to bottom."""
    rgb = pixels.reshape(-1, 3).astype(np.uint32)
    value = np.zeros(len(rgb), np.uint32)
    for column, (maximum, shift) in enumerate(((pixel_format.red_max, pixel_format.red_shift),
                                               (pixel_format.green_max, pixel_format.green_shift),
                                               (pixel_format.blue_max, pixel_format.blue_shift))):
        value |= ((rgb[:, column] * maximum * 2 + 255) // 510) << shift  # rounded: decoding this gives rgb back
    order = ">" if pixel_format.big_endian else "<"
    return value.astype(f"{order}u{pixel_format.bytes_per_pixel}").tobytes()


def _bounding_box(areas: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    left = min(x for x, _, _, _ in areas)
    top = min(y for _, y, _, _ in areas)
    right = max(x + w for x, _, w, _ in areas)
    bottom = max(y + h for _, y, _, h in areas)
    return left, top, right - left, bottom - top


def _clip(x: int, y: int, width: int, height: int, fb: Framebuffer) -> tuple[int, int, int, int]:
    """The part of an area inside the framebuffer (after a resize in the same update)."""
    right, bottom = min(x + width, fb.width), min(y + height, fb.height)
    return x, y, max(0, right - x), max(0, bottom - y)
