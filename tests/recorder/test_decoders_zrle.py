"""ZRLE rectangles: 64x64 tiles (raw, solid, packed palette, plain RLE, palette RLE) over one zlib stream."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, Rectangle
from recorder.decoders import DecoderState, decode_rectangle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer
from tests.recorder.pixel_encoding import (
    FORMATS,
    expected_rgb,
    new_state,
    pack_cpixels,
    random_pixels,
)

TileEncoder = Callable[[str, np.ndarray, list[int]], bytes]


def run_length(length: int) -> bytes:
    return b"\xff" * ((length - 1) // 255) + bytes([(length - 1) % 255])


def runs(values: list[int]) -> list[tuple[int, int]]:
    """(value, length) runs of a tile in row order; runs continue across rows."""
    result: list[tuple[int, int]] = []
    for value in values:
        if result and result[-1][0] == value:
            result[-1] = (value, result[-1][1] + 1)
        else:
            result.append((value, 1))
    return result


def raw_tile(name: str, tile: np.ndarray, palette: list[int]) -> bytes:
    return b"\x00" + pack_cpixels(name, tile.reshape(-1))


def solid_tile(name: str, tile: np.ndarray, palette: list[int]) -> bytes:
    assert (tile == tile.flat[0]).all()
    return b"\x01" + pack_cpixels(name, [int(tile.flat[0])])


def packed_tile(name: str, tile: np.ndarray, palette: list[int]) -> bytes:
    bits = 1 if len(palette) == 2 else 2 if len(palette) <= 4 else 4
    out = bytes([len(palette)]) + pack_cpixels(name, palette)
    for row in tile:
        bit_string = "".join(format(palette.index(int(value)), f"0{bits}b") for value in row)
        bit_string += "0" * (-len(bit_string) % 8)
        out += int(bit_string, 2).to_bytes(len(bit_string) // 8, "big")
    return out


def plain_rle_tile(name: str, tile: np.ndarray, palette: list[int]) -> bytes:
    out = b"\x80"
    for value, length in runs(tile.reshape(-1).tolist()):
        out += pack_cpixels(name, [value]) + run_length(length)
    return out


def palette_rle_tile(name: str, tile: np.ndarray, palette: list[int]) -> bytes:
    out = bytes([128 + len(palette)]) + pack_cpixels(name, palette)
    for value, length in runs(tile.reshape(-1).tolist()):
        index = palette.index(value)
        out += bytes([index]) if length == 1 else bytes([index | 0x80]) + run_length(length)
    return out


TILE_ENCODERS: dict[str, TileEncoder] = {
    "raw": raw_tile,
    "packed": packed_tile,
    "plain_rle": plain_rle_tile,
    "palette_rle": palette_rle_tile,
}


def encode_tiles(name: str, image: np.ndarray, palette: list[int], choose: Callable[[int], TileEncoder]) -> bytes:
    height, width = image.shape
    tiles = [
        image[y : y + 64, x : x + 64] for y in range(0, height, 64) for x in range(0, width, 64)
    ]
    return b"".join(choose(number)(name, tile, palette) for number, tile in enumerate(tiles))


def zrle_payload(compressor: zlib._Compress, tile_data: bytes) -> bytes:
    compressed = compressor.compress(tile_data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return struct.pack(">I", len(compressed)) + compressed


def decode(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    decode_rectangle(state, framebuffer, rect, payload)


def zrle_rect(x: int, y: int, width: int, height: int) -> Rectangle:
    return Rectangle(x, y, width, height, Encoding.ZRLE)


@pytest.mark.parametrize(
    ("name", "cpixel", "rgb"),
    [
        ("rgbx8888_le", b"\x30\x20\x10", (0x10, 0x20, 0x30)),
        ("rgbx8888_be", b"\x10\x20\x30", (0x10, 0x20, 0x30)),
        ("bgrx8888_le", b"\x10\x20\x30", (0x10, 0x20, 0x30)),
        ("xrgb_high_le", b"\x30\x20\x10", (0x10, 0x20, 0x30)),
        ("xrgb_high_be", b"\x10\x20\x30", (0x10, 0x20, 0x30)),
        ("rgb565_mid_be", b"\x00\xf8\x00", (255, 0, 0)),
        ("rgb101010_le", (1023 << 20).to_bytes(4, "little"), (255, 0, 0)),
        ("rgb565_le", b"\x00\xf8", (255, 0, 0)),
        ("rgb565_be", b"\x07\xe0", (0, 255, 0)),
        ("bgr233", b"\xc0", (0, 0, 255)),
    ],
)
def test_golden_solid_tile_cpixels(name: str, cpixel: bytes, rgb: tuple[int, int, int]) -> None:
    framebuffer = Framebuffer(6, 4)
    payload = zrle_payload(zlib.compressobj(), b"\x01" + cpixel)
    decode(new_state(FORMATS[name]), framebuffer, zrle_rect(1, 1, 4, 2), payload)
    assert (framebuffer.pixels[1:3, 1:5] == rgb).all()
    assert framebuffer.pixels[0].sum() == framebuffer.pixels[3].sum() == 0


def test_golden_plain_rle_lengths() -> None:
    a, b = b"\x30\x20\x10", b"\xff\xff\xff"
    tile = b"\x80" + a + b"\xff\x2c" + b + b"\x13"  # 300 = 1 + 255 + 44, then 20 = 1 + 19
    framebuffer = Framebuffer(64, 5)
    decode(new_state(RGBX8888), framebuffer, zrle_rect(0, 0, 64, 5), zrle_payload(zlib.compressobj(), tile))
    flat = framebuffer.pixels.reshape(-1, 3)
    assert (flat[:300] == (0x10, 0x20, 0x30)).all()
    assert (flat[300:] == 255).all()


@pytest.mark.parametrize(
    ("width", "tile", "indices"),
    [
        (9, b"\x02" + b"\x00\x00\x00" + b"\xff\xff\xff" + b"\x55\x80", [0, 1, 0, 1, 0, 1, 0, 1, 1]),
        (5, b"\x03" + b"\x00\x00\x00" + b"\xff\xff\xff" + b"\x00\x00\xff" + b"\x92\x40", [2, 1, 0, 2, 1]),
        (3, b"\x05" + b"\x00\x00\x00" * 4 + b"\x00\x00\xff" + b"\x40\x30", [4, 0, 3]),
        (4, b"\x83" + b"\x00\x00\x00" + b"\xff\xff\xff" + b"\x00\x00\xff" + b"\x02\x81\x01\x00", [2, 1, 1, 0]),
    ],
)
def test_golden_palette_tiles(width: int, tile: bytes, indices: list[int]) -> None:
    palette = {0: [0, 0, 0], 1: [255, 255, 255], 2: [255, 0, 0], 3: [0, 0, 0], 4: [255, 0, 0]}
    framebuffer = Framebuffer(width, 1)
    decode(new_state(RGBX8888), framebuffer, zrle_rect(0, 0, width, 1), zrle_payload(zlib.compressobj(), tile))
    assert framebuffer.pixels[0].tolist() == [palette[index] for index in indices]


@pytest.mark.parametrize(
    ("kind", "palette_size"),
    [("raw", 40), ("solid", 1), ("packed", 2), ("packed", 3), ("packed", 16), ("plain_rle", 12), ("palette_rle", 7)],
)
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_subencoding_in_every_format(name: str, kind: str, palette_size: int) -> None:
    pixel_format = FORMATS[name]
    rng = np.random.default_rng(palette_size)
    palette = list(dict.fromkeys(random_pixels(pixel_format, (palette_size,), rng).tolist()))
    assert kind != "packed" or len(palette) >= 2
    # Runs of colour, so RLE has something to do.
    image = np.array(palette, np.uint32)[np.repeat(rng.integers(0, len(palette), 70 * 66 // 6), 6)].reshape(66, 70)
    encoder = solid_tile if kind == "solid" else TILE_ENCODERS[kind]
    framebuffer = Framebuffer(72, 70)
    payload = zrle_payload(zlib.compressobj(), encode_tiles(name, image, palette, lambda _: encoder))
    decode(new_state(pixel_format), framebuffer, zrle_rect(1, 2, 70, 66), payload)
    assert (framebuffer.pixels[2:68, 1:71] == expected_rgb(pixel_format, image)).all()
    assert framebuffer.pixels[:2].sum() == 0


def test_one_stream_carries_every_rectangle() -> None:
    rng = np.random.default_rng(9)
    compressor = zlib.compressobj()
    state, framebuffer = new_state(RGBX8888), Framebuffer(200, 150)
    payloads = []
    for number in range(4):
        palette = random_pixels(RGBX8888, (3,), rng).tolist()
        image = np.array(palette, np.uint32)[rng.integers(0, 3, (70, 130))]
        kinds = list(TILE_ENCODERS.values())
        tile_data = encode_tiles("rgbx8888_le", image, palette, lambda tile: kinds[(tile + number) % len(kinds)])
        payloads.append(zrle_payload(compressor, tile_data))
        decode(state, framebuffer, zrle_rect(number * 10, number * 20, 130, 70), payloads[-1])
        assert (framebuffer.pixels[number * 20 : number * 20 + 70, number * 10 : number * 10 + 130]
                == expected_rgb(RGBX8888, image)).all()
    with pytest.raises(DecodeError, match="ZRLE zlib stream"):
        decode(new_state(RGBX8888), framebuffer, zrle_rect(0, 0, 130, 70), payloads[-1])


@pytest.mark.parametrize(
    ("tile", "message"),
    [
        (b"\x11", "subencoding 17 is not used"),
        (b"\x7f", "subencoding 127 is not used"),
        (b"\x81", "subencoding 129 is not used"),
        (b"\x03" + b"\x00\x00\x00" * 3 + b"\xff\x00", "palette index 3 beyond a palette of 3"),
        (b"\x80" + b"\x00\x00\x00" + b"\x04", "a run of 5 pixels overflows the tile"),
        (b"\x80" + b"\x00\x00\x00" + b"\xff" * 3, "a run of .* overflows the tile"),
        (b"\x80" + b"\x00\x00\x00" + b"\x01" + b"\x00\x00", "ends inside a pixel"),
        (b"\x80" + b"\x00\x00\x00" + b"\x00", "ends inside the tile|ends inside a pixel"),
        (b"\x82" + b"\x00\x00\x00" * 2 + b"\x02", "palette index 2 beyond a palette of 2"),
        (b"\x82" + b"\x00\x00\x00" * 2 + b"\x81", "ends inside a run length"),
        (b"\x82" + b"\x00\x00\x00" * 2 + b"\x00", "ends inside the tile"),
        (b"\x00" + b"\x00" * 11, "needs 12 more bytes"),
        (b"\x01\x00\x00\x00\x00", "1 unexpected bytes"),
        (b"", "needs 1 more bytes"),
    ],
)
def test_malformed_tiles(tile: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(new_state(RGBX8888), Framebuffer(4, 4), zrle_rect(0, 0, 2, 2), zrle_payload(zlib.compressobj(), tile))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\x00\x00", b"\x00\x00\x00\x05abc", b"\x00\x00\x00\x01ab", b"\x00\x00\x00\x04junk"],
)
def test_malformed_length_or_zlib_data(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(new_state(RGBX8888), Framebuffer(4, 4), zrle_rect(0, 0, 2, 2), payload)


def test_end_of_the_zlib_stream_then_more_data_is_a_decode_error() -> None:
    compressed = zlib.compress(b"\x01\x00\x00\x00") + b"more"
    payload = struct.pack(">I", len(compressed)) + compressed
    with pytest.raises(DecodeError, match="after the end of the zlib stream"):
        decode(new_state(RGBX8888), Framebuffer(4, 4), zrle_rect(0, 0, 2, 2), payload)


def test_zlib_bomb_ends_quickly_with_bounded_memory() -> None:
    bomb = zlib.compress(bytes(1 << 20), 9)
    payload = struct.pack(">I", len(bomb)) + bomb
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="more than the 446 bytes"):
            decode(new_state(RGBX8888), Framebuffer(8, 8), zrle_rect(0, 0, 4, 4), payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"inflating the bomb used {peak} bytes"


def test_max_decompressed_limit() -> None:
    tile = b"\x00" + b"\x30\x20\x10" * 64
    state = new_state(RGBX8888, max_decompressed=100)
    with pytest.raises(DecodeError, match="more than the 100 bytes"):
        decode(state, Framebuffer(8, 8), zrle_rect(0, 0, 8, 8), zrle_payload(zlib.compressobj(), tile))


def test_rectangle_outside_the_framebuffer() -> None:
    payload = zrle_payload(zlib.compressobj(), b"\x01\x00\x00\x00")
    with pytest.raises(DecodeError, match="outside"):
        decode(new_state(RGBX8888), Framebuffer(4, 4), zrle_rect(3, 3, 2, 2), payload)
