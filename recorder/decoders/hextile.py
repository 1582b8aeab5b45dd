"""Hextile encoding (RFC 6143 §7.7.4): 16x16 tiles, raw or background plus sub-rectangles.

The background and foreground colours carry over from tile to tile within one
rectangle; a coloured sub-rectangle also becomes the foreground, as in TigerVNC.
"""

from __future__ import annotations

import numpy as np

from gateway.rfb.constants import (
    HEXTILE_DEFINED_BITS,
    HEXTILE_TILE_SIZE,
    HextileSubencoding,
)
from gateway.rfb.messages import Rectangle
from recorder.decoders.reader import PayloadReader
from recorder.decoders.state import DecoderState
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, RGBArray


def decode_hextile(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Paint a Hextile rectangle tile by tile."""
    framebuffer.check_rect(rect.x, rect.y, rect.width, rect.height)
    pixel_size = state.pixel_format.bytes_per_pixel
    reader = PayloadReader(payload, "Hextile")
    target = framebuffer.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    background: RGBArray | None = None
    foreground: RGBArray | None = None
    for tile_y in range(0, rect.height, HEXTILE_TILE_SIZE):
        tile_height = min(HEXTILE_TILE_SIZE, rect.height - tile_y)
        for tile_x in range(0, rect.width, HEXTILE_TILE_SIZE):
            tile_width = min(HEXTILE_TILE_SIZE, rect.width - tile_x)
            tile = target[tile_y : tile_y + tile_height, tile_x : tile_x + tile_width]
            where = f"Hextile tile at ({tile_x}, {tile_y})"
            flags = reader.u8()
            if flags & ~HEXTILE_DEFINED_BITS:
                raise DecodeError(f"{where}: unknown subencoding bits in {flags:#04x}")
            if flags & HextileSubencoding.RAW:
                count = tile_width * tile_height
                tile[...] = state.to_rgb(reader.take(count * pixel_size), count).reshape(tile_height, tile_width, 3)
                continue
            if flags & HextileSubencoding.BACKGROUND_SPECIFIED:
                background = state.to_rgb(reader.take(pixel_size), 1)[0]
            if background is None:
                raise DecodeError(f"{where}: no background colour specified yet in this rectangle")
            tile[...] = background
            if flags & HextileSubencoding.FOREGROUND_SPECIFIED:
                foreground = state.to_rgb(reader.take(pixel_size), 1)[0]
            if not flags & HextileSubencoding.ANY_SUBRECTS:
                continue
            count = reader.u8()
            if flags & HextileSubencoding.SUBRECTS_COLOURED:
                records = np.frombuffer(
                    reader.take(count * (pixel_size + 2)),
                    np.dtype([("pixel", f"V{pixel_size}"), ("xy", "u1"), ("wh", "u1")]),
                )
                colours = state.to_rgb(records["pixel"].tobytes(), count)
                if count:
                    foreground = colours[-1]
            else:
                if foreground is None:
                    raise DecodeError(f"{where}: no foreground colour specified yet in this rectangle")
                records = np.frombuffer(reader.take(count * 2), np.dtype([("xy", "u1"), ("wh", "u1")]))
                colours = np.broadcast_to(foreground, (count, 3))
            _paint_subrects(tile, records["xy"].tolist(), records["wh"].tolist(), colours, where)
    reader.expect_end()


def _paint_subrects(tile: RGBArray, positions: list[int], sizes: list[int], colours: RGBArray, where: str) -> None:
    tile_height, tile_width = tile.shape[0], tile.shape[1]
    for colour, position, size in zip(colours, positions, sizes):
        x, y = position >> 4, position & 0x0F
        width, height = (size >> 4) + 1, (size & 0x0F) + 1
        if x + width > tile_width or y + height > tile_height:
            raise DecodeError(
                f"{where}: sub-rectangle {width}x{height} at ({x}, {y}) "
                f"is outside the {tile_width}x{tile_height} tile"
            )
        tile[y : y + height, x : x + width] = colour
