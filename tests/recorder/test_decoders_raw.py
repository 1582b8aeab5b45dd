"""Raw and CopyRect rectangles."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, Rectangle
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


class TestRaw:
    def test_golden_bytes(self) -> None:
        framebuffer = Framebuffer(4, 3)
        payload = b"\x30\x20\x10\x00" b"\xff\x00\x00\x00"
        decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(1, 1, 2, 1, Encoding.RAW), payload)
        assert framebuffer.pixels[1, 1:3].tolist() == [[0x10, 0x20, 0x30], [0, 0, 0xFF]]
        assert framebuffer.pixels.sum() == 0x10 + 0x20 + 0x30 + 0xFF

    @pytest.mark.parametrize("name", sorted(FORMATS))
    def test_random_image_in_every_format(self, name: str) -> None:
        pixel_format = FORMATS[name]
        pixels = random_pixels(pixel_format, (9, 13), np.random.default_rng(1))
        framebuffer = Framebuffer(20, 12)
        rect = Rectangle(5, 2, 13, 9, Encoding.RAW)
        decode_rectangle(new_state(pixel_format), framebuffer, rect, pack_pixels(pixel_format, pixels))
        assert (framebuffer.pixels[2:11, 5:18] == expected_rgb(pixel_format, pixels)).all()
        assert framebuffer.pixels[:2].sum() == 0

    @pytest.mark.parametrize("size", [7, 9, 0])
    def test_wrong_length_is_a_decode_error(self, size: int) -> None:
        with pytest.raises(DecodeError, match="expected 8 bytes"):
            decode_rectangle(new_state(RGBX8888), Framebuffer(4, 4), Rectangle(0, 0, 2, 1, Encoding.RAW), bytes(size))

    def test_outside_the_framebuffer_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="outside"):
            decode_rectangle(new_state(RGBX8888), Framebuffer(4, 4), Rectangle(3, 0, 2, 1, Encoding.RAW), bytes(8))

    def test_empty_rectangle(self) -> None:
        framebuffer = Framebuffer(4, 4)
        decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(4, 4, 0, 0, Encoding.RAW), b"")
        assert not framebuffer.pixels.any()


class TestCopyRect:
    def test_overlapping_copy(self) -> None:
        framebuffer = Framebuffer(6, 6)
        framebuffer.pixels[...] = np.arange(108, dtype=np.uint8).reshape(6, 6, 3)
        expected = framebuffer.pixels.copy()
        expected[1:5, 2:6] = framebuffer.pixels[0:4, 1:5]
        rect = Rectangle(2, 1, 4, 4, Encoding.COPY_RECT)
        decode_rectangle(new_state(RGBX8888), framebuffer, rect, struct.pack(">HH", 1, 0))
        assert (framebuffer.pixels == expected).all()

    @pytest.mark.parametrize("payload", [b"", b"\x00\x01\x00", b"\x00\x00\x00\x00\x00"])
    def test_payload_is_four_bytes(self, payload: bytes) -> None:
        with pytest.raises(DecodeError):
            decode_rectangle(new_state(RGBX8888), Framebuffer(6, 6), Rectangle(0, 0, 1, 1, Encoding.COPY_RECT), payload)

    def test_source_outside_is_a_decode_error(self) -> None:
        rect = Rectangle(0, 0, 4, 4, Encoding.COPY_RECT)
        with pytest.raises(DecodeError, match="CopyRect source"):
            decode_rectangle(new_state(RGBX8888), Framebuffer(6, 6), rect, struct.pack(">HH", 3, 0))
