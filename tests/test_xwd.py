"""The XWD reader used to compare a VNC server's screenshot with a decoded framebuffer."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, Rectangle
from recorder.decoders import DecoderState, decode_rectangle
from recorder.framebuffer import Framebuffer
from tests.xwd import read_xwd

NAME = b"xwdump\x00"


def build_xwd(
    values: np.ndarray,
    *,
    bits_per_pixel: int = 32,
    depth: int = 24,
    byte_order: int = 0,
    visual_class: int = 4,
    masks: tuple[int, int, int] = (0xFF0000, 0x00FF00, 0x0000FF),
    bytes_per_line: int | None = None,
    colours: list[tuple[int, int, int, int]] | None = None,
    version: int = 7,
    pixmap_format: int = 2,
) -> bytes:
    """An XWD file as xwd writes it: header and colours big-endian, pixels in ``byte_order``."""
    height, width = values.shape
    bytes_per_pixel = bits_per_pixel // 8
    bytes_per_line = bytes_per_line or (width * bits_per_pixel + 31) // 32 * 4
    colours = colours or []
    header = struct.pack(
        ">25I",
        100 + len(NAME), version, pixmap_format, depth, width, height, 0, byte_order, 32, byte_order, 32,
        bits_per_pixel, bytes_per_line, visual_class, *masks, 8, 256, len(colours), width, height, 0, 0, 0,
    )
    colour_data = b"".join(struct.pack(">IHHHBB", pixel, r, g, b, 7, 0) for pixel, r, g, b in colours)
    order: Literal["little", "big"] = "little" if byte_order == 0 else "big"
    rows = b""
    for row in values:
        line = b"".join(int(value).to_bytes(bytes_per_pixel, order) for value in row)
        rows += line + b"\xee" * (bytes_per_line - len(line))  # padding must be ignored
    return header + NAME + colour_data + rows


@pytest.mark.parametrize("byte_order", [0, 1])
def test_true_colour_32_bits(byte_order: int) -> None:
    values = np.array([[0x102030, 0xFF0000], [0x00FF00, 0x0000FF]], np.uint32)
    rgb = read_xwd(build_xwd(values, byte_order=byte_order))
    assert rgb.dtype == np.uint8
    assert rgb.tolist() == [[[0x10, 0x20, 0x30], [255, 0, 0]], [[0, 255, 0], [0, 0, 255]]]


def test_ignores_the_unused_byte_and_row_padding() -> None:
    values = np.array([[0xFF102030, 0x00000001, 0x00010000]], np.uint32)
    rgb = read_xwd(build_xwd(values, bytes_per_line=16))
    assert rgb.tolist() == [[[0x10, 0x20, 0x30], [0, 0, 1], [1, 0, 0]]]


@pytest.mark.parametrize("byte_order", [0, 1])
def test_true_colour_16_bits_with_padded_rows(byte_order: int) -> None:
    values = np.array([[0xF800, 0x07E0, 0x001F], [0x8410, 0x0000, 0xFFFF]], np.uint32)
    rgb = read_xwd(build_xwd(values, bits_per_pixel=16, depth=16, byte_order=byte_order, masks=(0xF800, 0x07E0, 0x001F)))
    assert rgb.tolist() == [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
        [[16 * 255 // 31, 32 * 255 // 63, 16 * 255 // 31], [0, 0, 0], [255, 255, 255]],
    ]


def test_pseudo_colour_uses_the_colour_entries() -> None:
    values = np.array([[0, 5, 5, 200]], np.uint32)
    colours = [(0, 0, 0, 0), (5, 0xFFFF, 0x8000, 0x0100), (200, 0x1234, 0x5678, 0x9ABC)]
    rgb = read_xwd(build_xwd(values, bits_per_pixel=8, depth=8, visual_class=3, masks=(0, 0, 0), colours=colours))
    assert rgb.tolist() == [[[0, 0, 0], [255, 128, 1], [255, 128, 1], [0x12, 0x56, 0x9A]]]


def test_reads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "screen.xwd"
    path.write_bytes(build_xwd(np.array([[0x010203]], np.uint32)))
    assert read_xwd(path).tolist() == [[[1, 2, 3]]]
    assert read_xwd(str(path)).tolist() == [[[1, 2, 3]]]


def test_matches_the_same_pixels_decoded_from_rfb() -> None:
    values = np.random.default_rng(0).integers(0, 1 << 24, (23, 31), dtype=np.uint32)
    framebuffer = Framebuffer(31, 23)
    payload = values.astype("<u4").tobytes()
    decode_rectangle(DecoderState(RGBX8888), framebuffer, Rectangle(0, 0, 31, 23, Encoding.RAW), payload)
    assert (read_xwd(build_xwd(values)) == framebuffer.pixels).all()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 99, "header is 100 bytes"),
        (build_xwd(np.zeros((1, 1), np.uint32), version=6), "version 6"),
        (build_xwd(np.zeros((1, 1), np.uint32), pixmap_format=1), "only ZPixmap"),
        (build_xwd(np.zeros((2, 2), np.uint32))[:-1], "cut short"),
        (build_xwd(np.zeros((1, 2), np.uint32), bytes_per_line=4), "too short"),
        (build_xwd(np.zeros((1, 1), np.uint32), bits_per_pixel=8, depth=8, visual_class=3), "no colour map entry"),
    ],
)
def test_unsupported_or_broken_files(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_xwd(data)
