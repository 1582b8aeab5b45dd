"""RRE rectangles."""

from __future__ import annotations

import struct

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

Subrect = tuple[int, int, int, int, int]  # pixel, x, y, width, height


def encode_rre(pixel_format: PixelFormat, background: int, subrects: list[Subrect]) -> bytes:
    payload = struct.pack(">I", len(subrects)) + pack_pixels(pixel_format, [background])
    for pixel, x, y, width, height in subrects:
        payload += pack_pixels(pixel_format, [pixel]) + struct.pack(">HHHH", x, y, width, height)
    return payload


def test_golden_bytes() -> None:
    payload = (
        b"\x00\x00\x00\x02"  # two sub-rectangles
        b"\x00\x00\xff\x00"  # background: red
        b"\xff\x00\x00\x00" b"\x00\x00\x00\x00\x00\x02\x00\x01"  # blue 2x1 at (0, 0)
        b"\x00\xff\x00\x00" b"\x00\x02\x00\x01\x00\x01\x00\x02"  # green 1x2 at (2, 1)
    )
    framebuffer = Framebuffer(5, 4)
    decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(1, 1, 3, 3, Encoding.RRE), payload)
    red, green, blue, black = [255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]
    assert framebuffer.pixels[1:4, 1:4].tolist() == [
        [blue, blue, red],
        [red, red, green],
        [red, red, green],
    ]
    assert framebuffer.pixels[0].tolist() == [black] * 5


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_random_subrects_in_every_format(name: str) -> None:
    pixel_format = FORMATS[name]
    rng = np.random.default_rng(7)
    colours = random_pixels(pixel_format, (9,), rng).tolist()
    image = np.full((12, 17), colours[0], np.uint32)
    subrects: list[Subrect] = []
    for colour in colours[1:] * 3:
        x, y = int(rng.integers(0, 17)), int(rng.integers(0, 12))
        width, height = int(rng.integers(0, 18 - x)), int(rng.integers(0, 13 - y))
        subrects.append((colour, x, y, width, height))
        image[y : y + height, x : x + width] = colour
    framebuffer = Framebuffer(20, 20)
    payload = encode_rre(pixel_format, colours[0], subrects)
    decode_rectangle(new_state(pixel_format), framebuffer, Rectangle(2, 3, 17, 12, Encoding.RRE), payload)
    assert (framebuffer.pixels[3:15, 2:19] == expected_rgb(pixel_format, image)).all()


@pytest.mark.parametrize("subrect", [(1, 2, 0, 2, 1), (1, 0, 3, 1, 1), (1, 0, 0, 4, 4), (1, 65535, 0, 2, 1)])
def test_subrect_outside_its_rectangle_is_a_decode_error(subrect: Subrect) -> None:
    payload = encode_rre(RGBX8888, 0, [(1, 0, 0, 1, 1), subrect])
    with pytest.raises(DecodeError, match="sub-rectangle 1 .* outside its 3x3 rectangle"):
        decode_rectangle(new_state(RGBX8888), Framebuffer(8, 8), Rectangle(0, 0, 3, 3, Encoding.RRE), payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x00\x00\x00\x00\x00",  # background cut short
        b"\xff\xff\xff\xff\x00\x00\x00\x00",  # four billion sub-rectangles, none sent
        encode_rre(RGBX8888, 0, [(1, 0, 0, 1, 1)])[:-1],
        encode_rre(RGBX8888, 0, [(1, 0, 0, 1, 1)]) + b"\x00",
    ],
)
def test_count_and_length_must_agree(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_rectangle(new_state(RGBX8888), Framebuffer(8, 8), Rectangle(0, 0, 3, 3, Encoding.RRE), payload)
