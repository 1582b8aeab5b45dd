"""Hextile rectangles: 16x16 tiles, with background and foreground carried from tile to tile."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, PixelFormat, Rectangle
from recorder.decoders import decode_rectangle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer
from tests.recorder.pixel_encoding import (
    FORMATS,
    expected_rgb,
    new_state,
    pack_pixels,
    random_pixels,
)

RAW, BACKGROUND, FOREGROUND, ANY_SUBRECTS, COLOURED = 1, 2, 4, 8, 16

RED, GREEN, BLUE, WHITE = b"\x00\x00\xff\x00", b"\x00\xff\x00\x00", b"\xff\x00\x00\x00", b"\xff\xff\xff\x00"


def decode(payload: bytes, width: int, height: int, pixel_format: PixelFormat = RGBX8888) -> Framebuffer:
    framebuffer = Framebuffer(width, height)
    decode_rectangle(new_state(pixel_format), framebuffer, Rectangle(0, 0, width, height, Encoding.HEXTILE), payload)
    return framebuffer


def encode_hextile(pixel_format: PixelFormat, image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A Hextile encoder choosing raw, solid, one-colour or coloured sub-rectangles per tile at random."""
    height, width = image.shape
    out = bytearray()
    background: int | None = None
    foreground: int | None = None
    for tile_y in range(0, height, 16):
        for tile_x in range(0, width, 16):
            tile = image[tile_y : tile_y + 16, tile_x : tile_x + 16]
            if rng.random() < 0.25:
                out += bytes([RAW]) + pack_pixels(pixel_format, tile)
                continue
            values, counts = np.unique(tile, return_counts=True)
            tile_background = int(values[np.argmax(counts)])
            flags, body = 0, b""
            if tile_background != background or rng.random() < 0.3:
                flags |= BACKGROUND
                body += pack_pixels(pixel_format, [tile_background])
                background = tile_background
            runs = [  # horizontal runs of one colour that differ from the background
                (int(tile[y, x]), x, y, length)
                for y in range(tile.shape[0])
                for x, length in _runs(tile[y])
                if tile[y, x] != tile_background
            ]
            colours = {run[0] for run in runs}
            if len(colours) == 1 and rng.random() < 0.8:
                (colour,) = colours
                if colour != foreground:
                    flags |= FOREGROUND
                    body += pack_pixels(pixel_format, [colour])
                    foreground = colour
                flags |= ANY_SUBRECTS
                body += bytes([len(runs)])
                body += b"".join(bytes([x << 4 | y, (length - 1) << 4]) for _, x, y, length in runs)
            elif runs:
                flags |= ANY_SUBRECTS | COLOURED
                body += bytes([len(runs)])
                for colour, x, y, length in runs:
                    body += pack_pixels(pixel_format, [colour]) + bytes([x << 4 | y, (length - 1) << 4])
                foreground = runs[-1][0]  # a coloured sub-rectangle becomes the foreground
            out += bytes([flags]) + body
    return bytes(out)


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], 0
    for x in range(1, len(row) + 1):
        if x == len(row) or row[x] != row[start]:
            runs.append((start, x - start))
            start = x
    return runs


def test_golden_bytes_with_colours_carried_over() -> None:
    payload = (
        bytes([BACKGROUND | FOREGROUND | ANY_SUBRECTS]) + RED + BLUE + b"\x01" + b"\x12\x21"  # 16x16
        + b"\x00"  # 4x16: background carries over
        + bytes([RAW]) + GREEN * 32  # 16x2
        + bytes([ANY_SUBRECTS | COLOURED]) + b"\x01" + WHITE + b"\x31\x00"  # 4x2: background from tile 1
    )
    expected = np.zeros((18, 20, 3), np.uint8)
    expected[:16, :] = (255, 0, 0)
    expected[2:4, 1:4] = (0, 0, 255)
    expected[16:, :16] = (0, 255, 0)
    expected[16:, 16:] = (255, 0, 0)
    expected[17, 19] = (255, 255, 255)
    assert (decode(payload, 20, 18).pixels == expected).all()


def test_a_coloured_sub_rectangle_becomes_the_foreground() -> None:
    payload = (
        bytes([BACKGROUND | ANY_SUBRECTS | COLOURED]) + RED + b"\x01" + GREEN + b"\x00\x00"
        + bytes([ANY_SUBRECTS]) + b"\x01" + b"\x11\x00"
    )
    pixels = decode(payload, 32, 16).pixels
    assert pixels[0, 0].tolist() == [0, 255, 0]
    assert pixels[1, 17].tolist() == [0, 255, 0]
    assert pixels[0, 16].tolist() == [255, 0, 0]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_random_images_in_every_format(name: str) -> None:
    pixel_format = FORMATS[name]
    rng = np.random.default_rng(11)
    palette = random_pixels(pixel_format, (4,), rng)
    image = palette[rng.choice(4, size=(37, 45), p=[0.7, 0.2, 0.05, 0.05])]
    image[16:32, 16:32] = palette[0]  # a solid tile
    payload = encode_hextile(pixel_format, image, rng)
    assert (decode(payload, 45, 37, pixel_format).pixels == expected_rgb(pixel_format, image)).all()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00", "no background colour"),
        (bytes([BACKGROUND | ANY_SUBRECTS]) + RED + b"\x01\x00\x00", "no foreground colour"),
        (bytes([BACKGROUND | FOREGROUND | ANY_SUBRECTS]) + RED + BLUE + b"\x01\x30\x00", "outside the 3x3 tile"),
        (bytes([BACKGROUND | FOREGROUND | ANY_SUBRECTS]) + RED + BLUE + b"\x01\x00\x03", "outside the 3x3 tile"),
        (b"\x20", "unknown subencoding bits"),
        (bytes([RAW]) + RED * 8, "needs 36 more bytes"),
        (bytes([BACKGROUND]) + RED + b"\x00", "unexpected bytes"),
        (bytes([BACKGROUND | ANY_SUBRECTS | COLOURED]) + RED + b"\x02" + BLUE + b"\x00\x00", "needs 12 more bytes"),
    ],
)
def test_malformed_tiles(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(payload, 3, 3)


def test_a_raw_tile_does_not_provide_a_background() -> None:
    payload = bytes([RAW]) + RED * 16 * 3 + b"\x00"  # 16x3 raw tile, then a 3x3 tile without background
    with pytest.raises(DecodeError, match=r"tile at \(16, 0\): no background colour"):
        decode(payload, 19, 3)
