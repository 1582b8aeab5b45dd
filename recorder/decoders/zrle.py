"""ZRLE encoding (RFC 6143 §7.7.6): zlib over 64x64 tiles, each raw, solid, packed palette or RLE.

One zlib stream per connection carries every ZRLE rectangle, so rectangles
must be decoded in order. Pixels travel as CPIXELs: a PIXEL, or only three
of its four bytes when a 32-bit true-colour format uses 24 bits or fewer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from gateway.rfb.messages import PixelFormat, Rectangle
from recorder.decoders.reader import PayloadReader
from recorder.decoders.state import DecoderState
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, RGBArray, paint

TILE_SIZE = 64
MAX_PALETTE_SIZE = 127

_SOLID = 1
_MAX_PACKED_PALETTE = 16
_PLAIN_RLE = 128
_MIN_PALETTE_RLE = 130

CPixelReader = Callable[[memoryview, int], RGBArray]


def compact_pixel_padding(pixel_format: PixelFormat) -> int | None:
    """Where a 3-byte CPIXEL's missing wire byte goes back: 0 (first), 3 (last), or None (CPIXEL = PIXEL)."""
    if not (pixel_format.true_colour and pixel_format.bits_per_pixel == 32 and pixel_format.depth <= 24):
        return None
    max_pixel = (
        (pixel_format.red_max << pixel_format.red_shift)
        | (pixel_format.green_max << pixel_format.green_shift)
        | (pixel_format.blue_max << pixel_format.blue_shift)
    )
    fits_low = max_pixel < 1 << 24
    fits_high = max_pixel & 0xFF == 0
    # The precedence of TigerVNC and libvncserver (encoders and decoders alike). It
    # differs from the spec's "least significant bytes when both fit" only for
    # big-endian formats whose channels all lie in the middle two bytes.
    if (fits_low and not pixel_format.big_endian) or (fits_high and pixel_format.big_endian):
        return 3  # the first three wire bytes are sent
    if fits_low or fits_high:
        return 0  # the last three wire bytes are sent
    return None


def decode_zrle(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Inflate the rectangle's share of the connection's ZRLE stream and paint its tiles."""
    framebuffer.check_rect(rect.x, rect.y, rect.width, rect.height)
    reader = PayloadReader(payload, "ZRLE")
    compressed = reader.take(reader.u32())
    reader.expect_end()

    padding = compact_pixel_padding(state.pixel_format)
    cpixel_size = state.pixel_format.bytes_per_pixel if padding is None else 3
    tiles = -(-rect.width // TILE_SIZE) * -(-rect.height // TILE_SIZE)
    # No tile encoding spends more than a palette header plus (CPIXEL + run length) per pixel.
    worst_case = tiles * (1 + MAX_PALETTE_SIZE * cpixel_size) + rect.width * rect.height * (cpixel_size + 1)
    tile_data = PayloadReader(
        state.zrle_stream.inflate(compressed, state.inflate_limit(worst_case)), "ZRLE tile data"
    )

    def read_cpixels(data: memoryview, count: int) -> RGBArray:
        if padding is None:
            return state.to_rgb(data, count)
        pixels = np.zeros((count, 4), np.uint8)
        columns = slice(0, 3) if padding == 3 else slice(1, 4)
        pixels[:, columns] = np.frombuffer(data, np.uint8, count * 3).reshape(count, 3)
        return state.to_rgb(pixels.tobytes(), count)

    target = framebuffer.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    for tile_y in range(0, rect.height, TILE_SIZE):
        for tile_x in range(0, rect.width, TILE_SIZE):
            tile = target[tile_y : tile_y + TILE_SIZE, tile_x : tile_x + TILE_SIZE]
            _decode_tile(tile_data, tile, read_cpixels, cpixel_size, f"ZRLE tile at ({tile_x}, {tile_y})")
    tile_data.expect_end()


def _decode_tile(
    reader: PayloadReader, tile: RGBArray, read_cpixels: CPixelReader, cpixel_size: int, where: str
) -> None:
    height, width = int(tile.shape[0]), int(tile.shape[1])
    count = width * height
    subencoding = reader.u8()
    if subencoding == 0:
        tile[...] = read_cpixels(reader.take(count * cpixel_size), count).reshape(height, width, 3)
    elif subencoding == _SOLID:
        paint(tile, read_cpixels(reader.take(cpixel_size), 1)[0])
    elif subencoding <= _MAX_PACKED_PALETTE:
        palette = read_cpixels(reader.take(subencoding * cpixel_size), subencoding)
        tile[...] = palette[_packed_indices(reader, subencoding, width, height, where)]
    elif subencoding == _PLAIN_RLE:
        offsets, lengths = _plain_runs(reader, count, cpixel_size, where)
        all_bytes = np.frombuffer(reader.data, np.uint8)
        run_pixels = all_bytes[np.array(offsets, np.int64)[:, None] + np.arange(cpixel_size)]
        colours = read_cpixels(memoryview(run_pixels.tobytes()), len(offsets))
        tile[...] = np.repeat(colours, lengths, axis=0).reshape(height, width, 3)
    elif subencoding >= _MIN_PALETTE_RLE:
        palette_size = subencoding - 128
        palette = read_cpixels(reader.take(palette_size * cpixel_size), palette_size)
        indices, lengths = _palette_runs(reader, count, palette_size, where)
        tile[...] = np.repeat(palette[indices], lengths, axis=0).reshape(height, width, 3)
    else:
        raise DecodeError(f"{where}: subencoding {subencoding} is not used by ZRLE")


def _packed_indices(
    reader: PayloadReader, palette_size: int, width: int, height: int, where: str
) -> npt.NDArray[np.uint8]:
    """Palette indices packed 1, 2 or 4 bits a pixel, most significant first, rows padded to bytes."""
    bits = 1 if palette_size == 2 else 2 if palette_size <= 4 else 4
    row_bytes = (width * bits + 7) // 8
    packed = np.frombuffer(reader.take(row_bytes * height), np.uint8).reshape(height, row_bytes)
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
    unpacked = (packed[:, :, None] >> shifts) & ((1 << bits) - 1)
    indices = unpacked.reshape(height, -1)[:, :width].astype(np.uint8, copy=False)
    if int(indices.max()) >= palette_size:
        raise DecodeError(f"{where}: palette index {int(indices.max())} beyond a palette of {palette_size}")
    return indices


def _run_length(data: memoryview, position: int, remaining: int, where: str) -> tuple[int, int]:
    """Read one run length (1 + sum of bytes, 255 meaning "more follows"); returns it and the next position."""
    length = 1
    end = len(data)
    while True:
        if position >= end:
            raise DecodeError(f"{where}: RLE data ends inside a run length")
        byte = data[position]
        position += 1
        length += byte
        if length > remaining:
            raise DecodeError(f"{where}: a run of {length} pixels overflows the tile")
        if byte != 255:
            return length, position


def _plain_runs(reader: PayloadReader, count: int, cpixel_size: int, where: str) -> tuple[list[int], list[int]]:
    """Offsets of each run's CPIXEL in ``reader.data``, and the run lengths."""
    data, position, end = reader.data, reader.position, len(reader.data)
    offsets: list[int] = []
    lengths: list[int] = []
    remaining = count
    while remaining:
        if position + cpixel_size > end:
            raise DecodeError(f"{where}: RLE data ends inside a pixel")
        offsets.append(position)
        length, position = _run_length(data, position + cpixel_size, remaining, where)
        lengths.append(length)
        remaining -= length
    reader.seek(position)
    return offsets, lengths


def _palette_runs(reader: PayloadReader, count: int, palette_size: int, where: str) -> tuple[list[int], list[int]]:
    """Palette indices and run lengths; an index with the top bit set is followed by a run length."""
    data, position, end = reader.data, reader.position, len(reader.data)
    indices: list[int] = []
    lengths: list[int] = []
    remaining = count
    while remaining:
        if position >= end:
            raise DecodeError(f"{where}: RLE data ends inside the tile")
        index = data[position]
        position += 1
        length = 1
        if index & 0x80:
            index &= 0x7F
            length, position = _run_length(data, position, remaining, where)
        if index >= palette_size:
            raise DecodeError(f"{where}: palette index {index} beyond a palette of {palette_size}")
        indices.append(index)
        lengths.append(length)
        remaining -= length
    reader.seek(position)
    return indices, lengths
