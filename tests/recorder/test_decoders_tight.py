"""Tight rectangles: fill, JPEG, and basic compression with copy, palette and gradient filters."""

from __future__ import annotations

import tracemalloc
import zlib
from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, PixelFormat, Rectangle
from recorder.decoders import DecoderState, decode_rectangle
from recorder.decoders.jpeg import KEPT_CONTEXTS, JpegDecoder
from recorder.decoders.reader import PayloadReader
from recorder.decoders.tight import read_compact_length
from recorder.errors import CodecUnavailable, DecodeError
from recorder.framebuffer import Framebuffer
from tests.recorder.pixel_encoding import (
    FORMATS,
    expected_rgb,
    new_state,
    pack_pixels,
    pack_tpixels,
    random_pixels,
)

COPY, PALETTE, GRADIENT = 0, 1, 2
FILL, JPEG = 0x80, 0x90


def compact_length(length: int) -> bytes:
    out = bytes([length & 0x7F | (0x80 if length > 0x7F else 0)])
    if length > 0x7F:
        out += bytes([(length >> 7) & 0x7F | (0x80 if length > 0x3FFF else 0)])
    if length > 0x3FFF:
        out += bytes([length >> 14])
    return out


class TightEncoder:
    """The server side of the four zlib streams."""

    def __init__(self) -> None:
        self.streams = [zlib.compressobj() for _ in range(4)]

    def reset(self, stream: int) -> None:
        self.streams[stream] = zlib.compressobj()

    def basic(self, stream: int, data: bytes, filter_id: int | None = None, header: bytes = b"", resets: int = 0) -> bytes:
        explicit = 4 if filter_id is not None else 0
        out = bytes([(stream | explicit) << 4 | resets])
        if filter_id is not None:
            out += bytes([filter_id]) + header
        if len(data) < 12:
            return out + data
        compressed = self.streams[stream].compress(data) + self.streams[stream].flush(zlib.Z_SYNC_FLUSH)
        return out + compact_length(len(compressed)) + compressed


def palette_data(indices: np.ndarray, palette_size: int) -> bytes:
    if palette_size > 2:
        return indices.astype(np.uint8).tobytes()
    return np.packbits(indices.astype(np.uint8), axis=1).tobytes()  # rows padded to bytes


def gradient_data(pixel_format: PixelFormat, pixels: np.ndarray) -> bytes:
    """The gradient filter, pixel by pixel: each channel minus its clamped prediction, modulo max + 1."""
    channels = [
        (pixel_format.red_max, pixel_format.red_shift),
        (pixel_format.green_max, pixel_format.green_shift),
        (pixel_format.blue_max, pixel_format.blue_shift),
    ]
    height, width = pixels.shape
    values = [[[(int(pixels[y, x]) >> shift) & maximum for maximum, shift in channels] for x in range(width)]
              for y in range(height)]

    def at(y: int, x: int, c: int) -> int:
        return values[y][x][c] if y >= 0 and x >= 0 else 0

    differences = np.zeros((height, width), np.uint32)
    for y in range(height):
        for x in range(width):
            pixel = 0
            for c, (maximum, shift) in enumerate(channels):
                prediction = min(max(at(y, x - 1, c) + at(y - 1, x, c) - at(y - 1, x - 1, c), 0), maximum)
                pixel |= ((values[y][x][c] - prediction) % (maximum + 1)) << shift
            differences[y, x] = pixel
    return pack_tpixels(pixel_format, differences)


def tight_rect(x: int, y: int, width: int, height: int) -> Rectangle:
    return Rectangle(x, y, width, height, Encoding.TIGHT)


def decode(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    decode_rectangle(state, framebuffer, rect, payload)


class TestGolden:
    def test_fill(self) -> None:
        framebuffer = Framebuffer(5, 5)
        decode(new_state(RGBX8888), framebuffer, tight_rect(1, 1, 3, 2), b"\x80\x10\x20\x30")
        assert (framebuffer.pixels[1:3, 1:4] == (0x10, 0x20, 0x30)).all()
        assert framebuffer.pixels.sum() == 6 * (0x10 + 0x20 + 0x30)

    def test_fill_with_a_16_bit_tpixel(self) -> None:
        framebuffer = Framebuffer(2, 2)
        decode(new_state(FORMATS["rgb565_le"]), framebuffer, tight_rect(0, 0, 2, 2), b"\x80\x00\xf8")
        assert (framebuffer.pixels == (255, 0, 0)).all()

    def test_copy_under_12_bytes_is_not_compressed(self) -> None:
        framebuffer = Framebuffer(3, 1)
        decode(new_state(RGBX8888), framebuffer, tight_rect(0, 0, 3, 1), b"\x00" + b"\x10\x20\x30" * 2 + b"\xff\x00\x00")
        assert framebuffer.pixels[0].tolist() == [[0x10, 0x20, 0x30], [0x10, 0x20, 0x30], [255, 0, 0]]

    def test_two_colour_palette_rows_are_padded_bits(self) -> None:
        payload = b"\x40\x01\x01" + b"\x00\x00\x00\xff\xff\xff" + b"\x80\x40" + b"\x7f\xc0"  # 10x2, 4 bytes
        framebuffer = Framebuffer(10, 2)
        decode(new_state(RGBX8888), framebuffer, tight_rect(0, 0, 10, 2), payload)
        assert (framebuffer.pixels[:, :, 0] // 255).tolist() == [[1, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0] + [1] * 9]

    def test_gradient_of_a_2x2_image(self) -> None:
        # Pixels (R only): 10 20 / 30 100. Predictions: 0, 10 / 10, clamp(30 + 20 - 10) = 40.
        differences = bytes([10, 0, 0, 10, 0, 0, 20, 0, 0, 60, 0, 0])
        framebuffer = Framebuffer(2, 2)
        state = new_state(RGBX8888)
        compressed = zlib.compressobj()
        data = compressed.compress(differences) + compressed.flush(zlib.Z_SYNC_FLUSH)
        decode(state, framebuffer, tight_rect(0, 0, 2, 2), b"\x40\x02" + compact_length(len(data)) + data)
        assert framebuffer.pixels[:, :, 0].tolist() == [[10, 20], [30, 100]]

    @pytest.mark.parametrize(
        ("wire", "length"),
        [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xff\x7f", 16383), (b"\x80\x80\x01", 16384),
         (b"\xff\xff\xff", 4194303)],
    )
    def test_compact_length(self, wire: bytes, length: int) -> None:
        assert read_compact_length(PayloadReader(wire, "test")) == length
        assert compact_length(length) == wire


TRUE_COLOUR_16_32 = [name for name, pf in FORMATS.items() if pf.true_colour and pf.bits_per_pixel > 8]


class TestFilters:
    @pytest.mark.parametrize("explicit", [False, True])
    @pytest.mark.parametrize("name", sorted(FORMATS))
    def test_copy(self, name: str, explicit: bool) -> None:
        pixel_format = FORMATS[name]
        pixels = random_pixels(pixel_format, (21, 37), np.random.default_rng(2))
        payload = TightEncoder().basic(1, pack_tpixels(pixel_format, pixels), COPY if explicit else None)
        framebuffer = Framebuffer(40, 25)
        decode(new_state(pixel_format), framebuffer, tight_rect(2, 3, 37, 21), payload)
        assert (framebuffer.pixels[3:24, 2:39] == expected_rgb(pixel_format, pixels)).all()

    @pytest.mark.parametrize(("palette_size", "width", "height"), [(2, 13, 7), (2, 3, 1), (3, 11, 5), (256, 40, 30), (5, 3, 3)])
    @pytest.mark.parametrize("name", sorted(FORMATS))
    def test_palette(self, name: str, palette_size: int, width: int, height: int) -> None:
        pixel_format = FORMATS[name]
        rng = np.random.default_rng(palette_size)
        palette = random_pixels(pixel_format, (palette_size,), rng)
        indices = rng.integers(0, palette_size, (height, width))
        header = bytes([palette_size - 1]) + pack_tpixels(pixel_format, palette)
        payload = TightEncoder().basic(2, palette_data(indices, palette_size), PALETTE, header)
        framebuffer = Framebuffer(width, height)
        decode(new_state(pixel_format), framebuffer, tight_rect(0, 0, width, height), payload)
        assert (framebuffer.pixels == expected_rgb(pixel_format, palette[indices])).all()

    @pytest.mark.parametrize(("width", "height"), [(23, 17), (1, 9), (9, 1), (2, 2)])
    @pytest.mark.parametrize("name", TRUE_COLOUR_16_32)
    def test_gradient(self, name: str, width: int, height: int) -> None:
        pixel_format = FORMATS[name]
        rng = np.random.default_rng(width)
        # Random pixels push predictions out of 0..max (clamping); a flat quarter predicts exactly.
        pixels = random_pixels(pixel_format, (height, width), rng)
        pixels[: height // 2, : width // 2] = pixels[0, 0]
        payload = TightEncoder().basic(3, gradient_data(pixel_format, pixels), GRADIENT)
        framebuffer = Framebuffer(width, height)
        decode(new_state(pixel_format), framebuffer, tight_rect(0, 0, width, height), payload)
        assert (framebuffer.pixels == expected_rgb(pixel_format, pixels)).all()

    @pytest.mark.parametrize("name", ["bgr233", "colour_map8"])
    def test_gradient_needs_16_or_32_bit_true_colour(self, name: str) -> None:
        with pytest.raises(DecodeError, match="gradient filter needs"):
            decode(new_state(FORMATS[name]), Framebuffer(4, 4), tight_rect(0, 0, 2, 2), b"\x40\x02" + bytes(4))


class TestStreams:
    def test_four_streams_persist_across_rectangles(self) -> None:
        encoder, state, framebuffer = TightEncoder(), new_state(RGBX8888), Framebuffer(64, 64)
        rng = np.random.default_rng(4)
        for number in range(12):
            stream = number * 3 % 4
            pixels = random_pixels(RGBX8888, (8, 9), rng)
            decode(state, framebuffer, tight_rect(number, number, 9, 8), encoder.basic(stream, pack_tpixels(RGBX8888, pixels)))
            assert (framebuffer.pixels[number : number + 8, number : number + 9] == expected_rgb(RGBX8888, pixels)).all()

    @pytest.mark.parametrize("stream", range(4))
    def test_reset_bits(self, stream: int) -> None:
        encoder, state, framebuffer = TightEncoder(), new_state(RGBX8888), Framebuffer(8, 8)
        data = bytes(range(48))
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(stream, data))
        encoder.reset(stream)
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(stream, data, resets=1 << stream))
        assert framebuffer.pixels[0, 1].tolist() == [3, 4, 5]
        encoder.reset(stream)
        with pytest.raises(DecodeError, match=f"Tight zlib stream {stream}"):
            decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(stream, data))

    def test_fill_and_jpeg_rectangles_also_reset_streams(self) -> None:
        encoder, state, framebuffer = TightEncoder(), new_state(RGBX8888), Framebuffer(8, 8)
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(0, bytes(48)))
        encoder.reset(0)
        encoder.reset(3)
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), bytes([FILL | 0b0001]) + b"\x01\x02\x03")
        with pytest.raises(DecodeError, match="no frame header"):
            decode(state, framebuffer, tight_rect(0, 0, 4, 4), bytes([JPEG | 0b1000]) + b"\x02\xff\xd8")
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(0, bytes(range(48))))
        decode(state, framebuffer, tight_rect(0, 0, 4, 4), encoder.basic(3, bytes(range(48))))
        assert framebuffer.pixels[0, 1].tolist() == [3, 4, 5]


def jpeg_image(rgb: np.ndarray, pix_fmt: str = "yuvj444p") -> bytes:
    """A baseline JPEG of ``rgb`` at high quality, as a VNC server's encoder makes one."""
    height, width = rgb.shape[:2]
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 25)
    context.options = {"qmin": "1", "qmax": "2"}
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    packets = [*context.encode(frame), *context.encode(None)]
    return bytes(packets[0])


def libjpeg_style(rgb: np.ndarray, huffman: str) -> bytes:
    """A JPEG of ``rgb`` with FFmpeg's ``huffman`` tables (``default``: the standard ones), one DHT segment
    per table as libjpeg (and so TigerVNC) writes them; FFmpeg writes all tables in one segment."""
    height, width = rgb.shape[:2]
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuvj444p"
    context.time_base = Fraction(1, 25)
    context.options = {"qmin": "2", "qmax": "2", "huffman": huffman}
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
    data = bytes([*context.encode(frame), *context.encode(None)][0])
    start = data.index(b"\xff\xc4")
    end = start + 2 + int.from_bytes(data[start + 2 : start + 4], "big")
    tables, position = [], start + 4
    while position < end:
        size = 17 + sum(data[position + 1 : position + 17])
        tables.append(b"\xff\xc4" + (size + 2).to_bytes(2, "big") + data[position : position + size])
        position += size
    return data[:start] + b"".join(tables) + data[end:]


def desktop_like_image(width: int, height: int) -> np.ndarray:
    """Flat colours, sharp edges and a gradient: what a desktop's JPEG rectangles hold."""
    image = smooth_image(width, height)
    image[4:12, 3:30] = (250, 250, 250)
    image[6:9, 5:28:3] = (20, 30, 200)
    image[20:, 35:] = (200, 40, 40)
    return image


def smooth_image(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 96)], axis=2).astype(np.uint8)


class TestJpeg:
    @pytest.mark.parametrize("pix_fmt", ["yuvj444p", "yuvj422p", "yuvj420p"])
    def test_the_colour_conversion_matches_swscale(self, pix_fmt: str) -> None:
        image = desktop_like_image(47, 31)  # odd sizes: the last chroma column and row cover one pixel
        data = jpeg_image(image, pix_fmt)
        decoded = JpegDecoder().decode(data, 47, 31).astype(int)
        context = av.CodecContext.create("mjpeg", "r")
        reference = context.decode(av.Packet(data))[0].to_ndarray(format="rgb24").astype(int)
        if pix_fmt == "yuvj444p":
            assert np.abs(decoded - reference).max() <= 1  # rounding only
        else:  # chroma repeated where swscale interpolates it: as close to the picture as swscale is
            assert abs(np.abs(decoded - image).mean() - np.abs(reference - image).mean()) < 1.5

    def test_images_of_more_sizes_than_the_kept_converters_all_decode(self) -> None:
        decoder = JpegDecoder()
        sizes = [(8 + index, 8 + index % 5) for index in range(KEPT_CONTEXTS + 4)] + [(8, 8), (9, 9)]
        for width, height in sizes:
            image = desktop_like_image(width, height)
            decoded = decoder.decode(jpeg_image(image), width, height)
            reference = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg_image(image)))[0]
            assert np.array_equal(decoded, reference.to_ndarray(format="rgb24"))

    def test_standard_huffman_tables_are_left_out_only_while_the_decoder_holds_them(self) -> None:
        decoder = JpegDecoder()
        images = [desktop_like_image(40, 24) // divisor for divisor in (1, 2, 3, 4, 5)]
        sequence = [libjpeg_style(images[0], "default"), libjpeg_style(images[1], "default"),
                    libjpeg_style(images[2], "optimal"), libjpeg_style(images[3], "default"),
                    libjpeg_style(images[4], "default")]
        for data in sequence:
            reference = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))[0]
            assert np.array_equal(decoder.decode(data, 40, 24), reference.to_ndarray(format="rgb24"))
        # The standard tables were left out of the last image (the one before put them back in force).
        assert len(decoder._without_repeated_tables(sequence[-1])) == len(sequence[-1]) - 2 * (33 + 183)

    def test_a_jpeg_rectangle_is_painted_where_it_belongs(self) -> None:
        image = smooth_image(48, 32)
        data = jpeg_image(image)
        framebuffer = Framebuffer(64, 64)
        decode(new_state(RGBX8888), framebuffer, tight_rect(8, 16, 48, 32),
               bytes([JPEG]) + compact_length(len(data)) + data)
        painted = framebuffer.pixels[16:48, 8:56].astype(int)
        assert np.abs(painted - image).mean() < 3
        assert not framebuffer.pixels[:16].any() and not framebuffer.pixels[48:].any()

    def test_a_jpeg_of_another_size_is_refused_before_decoding(self) -> None:
        data = jpeg_image(smooth_image(48, 32))
        with pytest.raises(DecodeError, match="the image is 48x32, the rectangle 16x16"):
            decode(new_state(RGBX8888), Framebuffer(64, 64), tight_rect(0, 0, 16, 16),
                   bytes([JPEG]) + compact_length(len(data)) + data)

    def test_a_corrupt_jpeg_is_a_decode_error(self) -> None:
        data = bytearray(jpeg_image(smooth_image(48, 32)))
        cut = bytes(data[: len(data) // 3])  # the header survives, the entropy-coded data does not
        with pytest.raises(DecodeError) as caught:
            decode(new_state(RGBX8888), Framebuffer(64, 64), tight_rect(0, 0, 48, 32),
                   bytes([JPEG]) + compact_length(len(cut)) + cut)
        assert not isinstance(caught.value, CodecUnavailable)


class TestMalformed:
    @pytest.mark.parametrize("payload", [b"\x90\x05\xff\xd8", b"\x90\x01\xff\xd8", b"\x90", b"\x90\x80",
                                         b"\x90\x03\xff\xd8\xff", b"\x90\x02\x00\x00"])
    def test_broken_jpeg_framing_is_a_plain_decode_error(self, payload: bytes) -> None:
        with pytest.raises(DecodeError) as caught:
            decode(new_state(RGBX8888), Framebuffer(8, 8), tight_rect(0, 0, 4, 4), payload)
        assert not isinstance(caught.value, CodecUnavailable)

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            (b"", "needs 1 more bytes"),
            (b"\xa0", "unknown compression type 10"),
            (b"\xf0", "unknown compression type 15"),
            (b"\x40\x03", "unknown filter 3"),
            (b"\x80\x01\x02", "needs 3 more bytes"),
            (b"\x80\x01\x02\x03\x04", "unexpected bytes"),
            (b"\x40\x01\x00\x01\x02\x03" + b"\x80\x00", "palette index 1 beyond a palette of 1"),
            (b"\x40\x01\x02" + bytes(9) + bytes([0, 1, 2, 3]), "palette index 3 beyond a palette of 3"),
            (b"\x40\x01\x02" + bytes(9) + bytes([0, 1, 2]), "needs 4 more bytes"),
            (b"\x00\x05abc", "needs 5 more bytes"),
            (b"\x00\x00", "inflated to 0 bytes, the rectangle needs 12"),
            (b"\x00\x04junk", "corrupt zlib data"),
            (b"\x00\x80", "needs 1 more bytes"),
        ],
    )
    def test_malformed(self, payload: bytes, message: str) -> None:
        """Rectangle 2x2 (data sizes: copy 12 bytes, compressed; 2-colour palette 2 bytes)."""
        with pytest.raises(DecodeError, match=message):
            decode(new_state(RGBX8888), Framebuffer(4, 4), tight_rect(0, 0, 2, 2), payload)

    def test_palette_index_beyond_the_palette(self) -> None:
        indices = bytes([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5])  # palette of 5, a 4x4 rectangle
        payload = TightEncoder().basic(0, indices, PALETTE, b"\x04" + bytes(15))
        with pytest.raises(DecodeError, match="palette index 5 beyond a palette of 5"):
            decode(new_state(RGBX8888), Framebuffer(4, 4), tight_rect(0, 0, 4, 4), payload)

    def test_data_that_inflates_short_is_a_decode_error(self) -> None:
        data = zlib.compress(bytes(47))
        payload = b"\x00" + compact_length(len(data)) + data
        with pytest.raises(DecodeError, match="inflated to 47 bytes, the rectangle needs 48"):
            decode(new_state(RGBX8888), Framebuffer(4, 4), tight_rect(0, 0, 4, 4), payload)

    def test_zlib_bomb_ends_quickly_with_bounded_memory(self) -> None:
        bomb = zlib.compress(bytes(1 << 20), 9)
        payload = b"\x00" + compact_length(len(bomb)) + bomb
        tracemalloc.start()
        try:
            with pytest.raises(DecodeError, match="more than the 48 bytes"):
                decode(new_state(RGBX8888), Framebuffer(4, 4), tight_rect(0, 0, 4, 4), payload)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 256 * 1024, f"inflating the bomb used {peak} bytes"

    def test_max_decompressed_limit(self) -> None:
        payload = TightEncoder().basic(0, bytes(300))
        with pytest.raises(DecodeError, match="over the limit of 299"):
            decode(new_state(RGBX8888, max_decompressed=299), Framebuffer(10, 10), tight_rect(0, 0, 10, 10), payload)

    def test_outside_the_framebuffer(self) -> None:
        with pytest.raises(DecodeError, match="outside"):
            decode(new_state(RGBX8888), Framebuffer(4, 4), tight_rect(2, 2, 3, 1), b"\x80\x00\x00\x00")


def test_sixteen_bit_palette_uses_whole_pixels() -> None:
    pixel_format = FORMATS["rgb565_be"]
    header = b"\x01" + pack_pixels(pixel_format, [0xF800, 0x001F])
    payload = b"\x40\x01" + header + b"\x40"  # 2x1: indices 0, 1
    framebuffer = Framebuffer(2, 1)
    decode(new_state(pixel_format), framebuffer, tight_rect(0, 0, 2, 1), payload)
    assert framebuffer.pixels[0].tolist() == [[255, 0, 0], [0, 0, 255]]
