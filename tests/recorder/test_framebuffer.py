"""Framebuffer operations and RFB pixel-format conversion."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, PixelFormat
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, paint, pixels_to_rgb, tpixels_to_rgb
from tests.recorder.pixel_encoding import (
    COLOUR_MAP_8,
    FORMATS,
    expected_rgb,
    pack_pixels,
    random_pixels,
)

COLOUR_MAP = COLOUR_MAP_8.astype(np.uint8)


def numbered(width: int, height: int) -> Framebuffer:
    """A framebuffer whose every pixel is distinct."""
    framebuffer = Framebuffer(width, height)
    values = np.arange(width * height * 3, dtype=np.uint32).reshape(height, width, 3)
    framebuffer.pixels[...] = (values % 251).astype(np.uint8)
    return framebuffer


class TestFramebuffer:
    def test_starts_black_with_shape_height_width_3(self) -> None:
        framebuffer = Framebuffer(7, 5)
        assert framebuffer.pixels.shape == (5, 7, 3)
        assert framebuffer.pixels.dtype == np.uint8
        assert (framebuffer.width, framebuffer.height) == (7, 5)
        assert not framebuffer.pixels.any()

    def test_size_over_the_pixel_limit_is_refused(self) -> None:
        with pytest.raises(DecodeError, match="max_pixels"):
            Framebuffer(101, 100, max_pixels=10_000)
        with pytest.raises(DecodeError):
            Framebuffer(-1, 10)

    def test_fill_and_blit(self) -> None:
        framebuffer = Framebuffer(6, 4)
        framebuffer.fill(1, 1, 3, 2, (10, 20, 30))
        image = np.full((2, 2, 3), 7, np.uint8)
        framebuffer.blit(4, 2, image)
        assert framebuffer.pixels[1, 1].tolist() == [10, 20, 30]
        assert framebuffer.pixels[2, 3].tolist() == [10, 20, 30]
        assert framebuffer.pixels[3, 3].tolist() == [0, 0, 0]
        assert framebuffer.pixels[2:4, 4:6].tolist() == image.tolist()
        assert framebuffer.pixels[0].sum() == 0

    @pytest.mark.parametrize(("x", "y", "width", "height"), [(0, 0, 6, 4), (2, 1, 3, 1), (1, 3, 1, 1), (4, 2, 0, 2)])
    def test_paint_fills_exactly_its_region(self, x: int, y: int, width: int, height: int) -> None:
        framebuffer = numbered(6, 4)
        expected = framebuffer.pixels.copy()
        expected[y : y + height, x : x + width] = (9, 8, 7)
        paint(framebuffer.pixels[y : y + height, x : x + width], (9, 8, 7))
        assert np.array_equal(framebuffer.pixels, expected)

    @pytest.mark.parametrize(
        ("x", "y", "width", "height"),
        [(5, 0, 2, 1), (0, 3, 1, 2), (-1, 0, 1, 1), (0, 0, 7, 1), (6, 0, 1, 1), (0, 0, -1, 1)],
    )
    def test_rectangles_outside_are_refused(self, x: int, y: int, width: int, height: int) -> None:
        framebuffer = Framebuffer(6, 4)
        with pytest.raises(DecodeError, match="outside the 6x4 framebuffer"):
            framebuffer.fill(x, y, width, height, (1, 2, 3))
        with pytest.raises(DecodeError):
            framebuffer.copy_rect(0, 0, x, y, width, height)
        with pytest.raises(DecodeError):
            framebuffer.copy_rect(x, y, 0, 0, width, height)

    def test_blit_outside_is_refused(self) -> None:
        with pytest.raises(DecodeError):
            Framebuffer(4, 4).blit(3, 0, np.zeros((1, 2, 3), np.uint8))
        with pytest.raises(DecodeError, match="shape"):
            Framebuffer(4, 4).blit(0, 0, np.zeros((2, 2), np.uint8))

    def test_empty_rectangles_at_the_edge_are_fine(self) -> None:
        framebuffer = Framebuffer(4, 4)
        framebuffer.fill(4, 4, 0, 0, (1, 1, 1))
        assert not framebuffer.pixels.any()

    @pytest.mark.parametrize(("new_width", "new_height"), [(10, 8), (3, 2), (10, 2), (3, 8), (0, 0)])
    def test_resize_keeps_the_overlap_and_blackens_the_rest(self, new_width: int, new_height: int) -> None:
        framebuffer = numbered(6, 4)
        before = framebuffer.pixels.copy()
        framebuffer.resize(new_width, new_height)
        assert framebuffer.pixels.shape == (new_height, new_width, 3)
        keep_h, keep_w = min(4, new_height), min(6, new_width)
        assert (framebuffer.pixels[:keep_h, :keep_w] == before[:keep_h, :keep_w]).all()
        assert not framebuffer.pixels[keep_h:].any()
        assert not framebuffer.pixels[:, keep_w:].any()

    def test_resize_over_the_limit_keeps_the_framebuffer(self) -> None:
        framebuffer = Framebuffer(4, 4, max_pixels=100)
        with pytest.raises(DecodeError):
            framebuffer.resize(11, 10)
        assert framebuffer.pixels.shape == (4, 4, 3)

    @pytest.mark.parametrize(
        ("src_x", "src_y", "x", "y"),
        [(0, 0, 2, 1), (2, 1, 0, 0), (1, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0), (0, 0, 0, 1), (3, 3, 3, 3)],
    )
    def test_copy_rect_is_overlap_safe(self, src_x: int, src_y: int, x: int, y: int) -> None:
        framebuffer = numbered(8, 7)
        expected = framebuffer.pixels.copy()
        expected[y : y + 4, x : x + 5] = framebuffer.pixels[src_y : src_y + 4, src_x : src_x + 5].copy()
        framebuffer.copy_rect(src_x, src_y, x, y, 5, 4)
        assert (framebuffer.pixels == expected).all()


class TestPixelsToRGB:
    @pytest.mark.parametrize(
        ("name", "wire", "rgb"),
        [
            ("rgbx8888_le", b"\x30\x20\x10\x00", (0x10, 0x20, 0x30)),
            ("rgbx8888_be", b"\x00\x10\x20\x30", (0x10, 0x20, 0x30)),
            ("bgrx8888_le", b"\x10\x20\x30\x00", (0x10, 0x20, 0x30)),
            ("xrgb_high_le", b"\x00\x30\x20\x10", (0x10, 0x20, 0x30)),
            ("xrgb_high_be", b"\x10\x20\x30\x00", (0x10, 0x20, 0x30)),
            ("rgb565_le", b"\x00\xf8", (255, 0, 0)),
            ("rgb565_be", b"\xf8\x00", (255, 0, 0)),
            ("rgb565_be", b"\x84\x10", (16 * 255 // 31, 32 * 255 // 63, 16 * 255 // 31)),
            ("rgb565_le", b"\xe0\x07", (0, 255, 0)),
            ("rgb555_be", b"\x7c\x1f", (255, 0, 255)),
            ("bgr233", b"\xc7", (255, 0, 255)),
            ("bgr233", b"\x38", (0, 255, 0)),
            ("rgb101010_le", (512 << 20 | 1023 << 10 | 1).to_bytes(4, "little"), (127, 255, 0)),
            ("rgb565_mid_be", (31 << 19).to_bytes(4, "big"), (255, 0, 0)),
        ],
    )
    def test_golden_pixels(self, name: str, wire: bytes, rgb: tuple[int, int, int]) -> None:
        assert pixels_to_rgb(wire, FORMATS[name], 1).tolist() == [list(rgb)]

    def test_every_value_of_a_channel_scales_as_v_times_255_over_max(self) -> None:
        red = np.arange(32, dtype=np.uint32) << 11
        decoded = pixels_to_rgb(pack_pixels(FORMATS["rgb565_le"], red), FORMATS["rgb565_le"], 32)
        assert decoded[:, 0].tolist() == [v * 255 // 31 for v in range(32)]
        assert not decoded[:, 1:].any()

    @pytest.mark.parametrize("name", sorted(FORMATS))
    def test_random_images_in_every_format(self, name: str) -> None:
        pixel_format = FORMATS[name]
        pixels = random_pixels(pixel_format, (300,), np.random.default_rng(len(name)))
        decoded = pixels_to_rgb(pack_pixels(pixel_format, pixels), pixel_format, 300, COLOUR_MAP)
        assert decoded.shape == (300, 3)
        assert decoded.dtype == np.uint8
        assert (decoded == expected_rgb(pixel_format, pixels)).all()

    def test_unused_bits_are_ignored(self) -> None:
        assert pixels_to_rgb(b"\x30\x20\x10\xff", RGBX8888, 1).tolist() == [[0x10, 0x20, 0x30]]
        assert pixels_to_rgb(b"\x00\x00\x00\xc0", FORMATS["rgb101010_le"], 1).tolist() == [[0, 0, 0]]

    def test_colour_map(self) -> None:
        decoded = pixels_to_rgb(bytes([0, 1, 255]), FORMATS["colour_map8"], 3, COLOUR_MAP)
        assert decoded.tolist() == COLOUR_MAP[[0, 1, 255]].tolist()

    def test_colour_map_is_required_and_only_for_8_bits(self) -> None:
        with pytest.raises(DecodeError, match="colour map"):
            pixels_to_rgb(b"\x00", FORMATS["colour_map8"], 1)
        sixteen_bit_map = PixelFormat(16, 16, False, False, 0, 0, 0, 0, 0, 0)
        with pytest.raises(DecodeError, match="8 bits per pixel"):
            pixels_to_rgb(b"\x00\x00", sixteen_bit_map, 1, COLOUR_MAP)

    def test_short_data_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="need 8 bytes"):
            pixels_to_rgb(b"\x00" * 7, RGBX8888, 2)
        with pytest.raises(DecodeError):
            tpixels_to_rgb(b"\x00" * 5, RGBX8888, 2)

    def test_zero_pixels(self) -> None:
        assert pixels_to_rgb(b"", FORMATS["rgb565_be"], 0).shape == (0, 3)


class TestTightPixels:
    @pytest.mark.parametrize("name", ["rgbx8888_le", "rgbx8888_be", "bgrx8888_le", "xrgb_high_be"])
    def test_depth_24_tpixels_are_red_green_blue_bytes(self, name: str) -> None:
        decoded = tpixels_to_rgb(b"\x10\x20\x30\xff\x00\x80", FORMATS[name], 2)
        assert decoded.tolist() == [[0x10, 0x20, 0x30], [0xFF, 0x00, 0x80]]
        decoded[0, 0] = 0  # a writable copy

    @pytest.mark.parametrize("name", ["rgb565_le", "rgb101010_le", "bgr233"])
    def test_other_formats_use_whole_pixels(self, name: str) -> None:
        pixel_format = FORMATS[name]
        pixels = random_pixels(pixel_format, (50,), np.random.default_rng(3))
        wire = pack_pixels(pixel_format, pixels)
        assert (tpixels_to_rgb(wire, pixel_format, 50) == expected_rgb(pixel_format, pixels)).all()
