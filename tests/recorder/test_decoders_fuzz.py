"""Fuzzing: whatever a server or a corrupt recording sends, decoding ends in success or DecodeError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.messages import Encoding, PixelFormat, Rectangle
from recorder.decoders import DecoderState, composite_cursor, decode_rectangle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, pixels_to_rgb
from tests.recorder.pixel_encoding import FORMATS, new_state

FUZZ = settings(max_examples=300, deadline=None)
PER_ENCODING = settings(max_examples=150, deadline=None)

ENCODINGS = [*Encoding, 6, -32]
PIXEL_FORMATS = sorted(FORMATS.values(), key=repr)

#: ZRLE subencodings worth hitting: raw, solid, packed of each index width, unused, RLE.
ZRLE_SUBENCODINGS = [0, 1, 2, 3, 4, 5, 16, 17, 127, 128, 129, 130, 131, 135, 143, 255]
#: Tight control bytes: basic on each stream with and without filter, fill, JPEG, invalid, resets.
TIGHT_CONTROLS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0x0F, 0x4F, 0x8F]
#: Mostly small values: palette indices near the palette size, short runs (with and without the top bit).
SMALL_BYTES = st.lists(st.integers(0, 7) | st.integers(128, 135) | st.integers(0, 255), max_size=120).map(bytes)


def compact_length(length: int) -> bytes:
    return bytes([length & 0x7F | 0x80, (length >> 7) & 0x7F | 0x80, length >> 14])


@st.composite
def zrle_tile_data(draw: st.DrawFn) -> bytes:
    """Tiles that start with a meaningful subencoding and continue with plausible bytes."""
    tiles = draw(st.lists(st.tuples(st.sampled_from(ZRLE_SUBENCODINGS), SMALL_BYTES), min_size=1, max_size=4))
    return b"".join(bytes([subencoding]) + body for subencoding, body in tiles)


@st.composite
def tight_payloads(draw: st.DrawFn) -> bytes:
    """A control byte, a filter (a palette of a few colours), then raw or zlib-wrapped data."""
    control = draw(st.sampled_from(TIGHT_CONTROLS) | st.integers(0, 255))
    header = bytes([control])
    if control & 0xC0 == 0x40:
        filter_id = draw(st.integers(0, 3))
        header += bytes([filter_id])
        if filter_id == 1:
            header += bytes([draw(st.integers(0, 4) | st.integers(0, 255))]) + draw(SMALL_BYTES)
    data = draw(SMALL_BYTES | st.binary(max_size=600))
    if draw(st.booleans()):
        compressed = zlib.compress(data)
        return header + compact_length(len(compressed)) + compressed
    return header + data


@st.composite
def hextile_payloads(draw: st.DrawFn) -> bytes:
    tiles = draw(st.lists(st.tuples(st.integers(0, 31) | st.integers(0, 255), SMALL_BYTES), max_size=4))
    return b"".join(bytes([flags]) + body for flags, body in tiles)


@st.composite
def payloads(draw: st.DrawFn, encoding: int) -> bytes:
    """Random bytes, or a plausible structure with random contents for the encodings that have one."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    if encoding == Encoding.ZRLE:
        compressed = zlib.compress(draw(zrle_tile_data()))
        return struct.pack(">I", len(compressed)) + compressed
    if encoding == Encoding.TIGHT:
        return draw(tight_payloads())
    if encoding == Encoding.HEXTILE:
        return draw(hextile_payloads())
    if encoding == Encoding.RRE:
        return struct.pack(">I", draw(st.integers(0, 20))) + draw(SMALL_BYTES)
    return draw(SMALL_BYTES)


@st.composite
def rectangles(draw: st.DrawFn, encodings: list[int]) -> tuple[Rectangle, bytes]:
    """Mostly inside the 32x32 framebuffer and often tiny (Tight data under 12 bytes), sometimes anywhere."""
    encoding = draw(st.sampled_from(encodings))
    if draw(st.integers(0, 4)):
        x, y = draw(st.integers(0, 32)), draw(st.integers(0, 32))
        width, height = draw(st.integers(0, 32 - x)), draw(st.integers(0, 32 - y))
        if draw(st.booleans()):
            width, height = min(width, 3), min(height, 3)
    else:
        x, y, width, height = (draw(st.integers(0, 70)) for _ in range(4))
    return Rectangle(x, y, width, height, encoding), draw(payloads(encoding))


def decode_or_refuse(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Decode; a DecodeError is fine, any other exception fails the test."""
    try:
        decode_rectangle(state, framebuffer, rect, payload)
    except DecodeError:
        pass
    assert framebuffer.pixels.dtype == np.uint8
    assert framebuffer.pixels.shape == (framebuffer.height, framebuffer.width, 3)


@FUZZ
@given(pixel_format=st.sampled_from(PIXEL_FORMATS), updates=st.lists(rectangles(ENCODINGS), min_size=1, max_size=6))
def test_mixed_rectangles_only_raise_decode_error(
    pixel_format: PixelFormat, updates: list[tuple[Rectangle, bytes]]
) -> None:
    state, framebuffer = new_state(pixel_format, max_decompressed=1 << 20), Framebuffer(32, 32)
    for rect, payload in updates:
        decode_or_refuse(state, framebuffer, rect, payload)
    assert composite_cursor(framebuffer.pixels, state, 3, 3).shape == framebuffer.pixels.shape


@pytest.mark.parametrize(
    "encoding",
    [Encoding.RAW, Encoding.COPY_RECT, Encoding.RRE, Encoding.HEXTILE, Encoding.ZRLE, Encoding.TIGHT, Encoding.CURSOR],
    ids=lambda encoding: encoding.name,
)
@PER_ENCODING
@given(pixel_format=st.sampled_from(PIXEL_FORMATS), data=st.data())
def test_each_encoding_only_raises_decode_error(encoding: int, pixel_format: PixelFormat, data: st.DataObject) -> None:
    state, framebuffer = new_state(pixel_format), Framebuffer(32, 32)
    for _ in range(3):
        decode_or_refuse(state, framebuffer, *data.draw(rectangles([encoding])))


@FUZZ
@given(
    encoding=st.sampled_from([Encoding.ZRLE, Encoding.TIGHT]),
    chunks=st.lists(zrle_tile_data() | st.binary(min_size=1, max_size=300), min_size=1, max_size=4),
    width=st.integers(1, 6) | st.integers(1, 70),
    height=st.integers(1, 6) | st.integers(1, 70),
)
def test_random_data_through_one_zlib_stream(encoding: int, chunks: list[bytes], width: int, height: int) -> None:
    """Consecutive rectangles share a stream, as on a real connection."""
    state, framebuffer = new_state(FORMATS["rgbx8888_le"]), Framebuffer(80, 80)
    compressor = zlib.compressobj()
    for data in chunks:
        compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if encoding == Encoding.ZRLE:
            payload = struct.pack(">I", len(compressed)) + compressed
        else:
            payload = b"\x00" + compact_length(len(compressed)) + compressed
        try:
            decode_rectangle(state, framebuffer, Rectangle(0, 0, width, height, encoding), payload)
        except DecodeError:
            pass


@st.composite
def true_colour_formats(draw: st.DrawFn) -> PixelFormat:
    """Any valid true-colour format: each channel 1-16 bits wide, anywhere inside the pixel."""
    bits_per_pixel = draw(st.sampled_from([8, 16, 32]))
    maxima, shifts = [], []
    for _ in range(3):
        bits = draw(st.integers(1, min(16, bits_per_pixel)))
        maxima.append((1 << bits) - 1)
        shifts.append(draw(st.integers(0, bits_per_pixel - bits)))
    depth = draw(st.integers(1, bits_per_pixel))
    return PixelFormat(bits_per_pixel, depth, draw(st.booleans()), True, *maxima, *shifts)


@FUZZ
@given(pixel_format=true_colour_formats(), data=st.binary(max_size=64))
def test_any_true_colour_format_converts(pixel_format: PixelFormat, data: bytes) -> None:
    size = pixel_format.bytes_per_pixel
    count = len(data) // size
    rgb = pixels_to_rgb(data, pixel_format, count)
    values = [int.from_bytes(data[i * size : (i + 1) * size], "big" if pixel_format.big_endian else "little")
              for i in range(count)]
    channels = [
        (pixel_format.red_max, pixel_format.red_shift),
        (pixel_format.green_max, pixel_format.green_shift),
        (pixel_format.blue_max, pixel_format.blue_shift),
    ]
    for column, (maximum, shift) in enumerate(channels):
        assert rgb[:, column].tolist() == [((value >> shift) & maximum) * 255 // maximum for value in values]
    state, framebuffer = DecoderState(pixel_format), Framebuffer(8, 8)
    for encoding in (Encoding.RAW, Encoding.ZRLE, Encoding.TIGHT, Encoding.HEXTILE, Encoding.CURSOR):
        try:
            decode_rectangle(state, framebuffer, Rectangle(0, 0, 2, 2, encoding), data)
        except DecodeError:
            pass
