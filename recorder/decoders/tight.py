"""Tight encoding: a solid fill, a JPEG image, or "basic" zlib data through a filter.

The control byte's low four bits reset zlib streams 0-3 before anything else;
its high four bits choose fill (8), JPEG (9) or basic (0-7: bits 0-1 pick the
stream, bit 2 says a filter id follows: copy, palette or gradient). Basic data
shorter than 12 bytes is sent as is; longer data is a compact length and that
many bytes of the chosen stream, which persists across rectangles.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.rfb.constants import (
    TIGHT_MIN_TO_COMPRESS,
    TightBasic,
    TightCompression,
    TightFilter,
)
from gateway.rfb.messages import PixelFormat, Rectangle
from recorder.decoders.reader import PayloadReader
from recorder.decoders.state import DecoderState, InflateStream
from recorder.errors import DecodeError
from recorder.framebuffer import (
    Framebuffer,
    RGBArray,
    paint,
    scale_channels,
    tpixels_to_rgb,
    wire_dtype,
)

# TightBasic's bits as plain ints: an IntFlag's ``&`` goes through the enum machinery, per rectangle.
_EXPLICIT_FILTER = int(TightBasic.EXPLICIT_FILTER)
_STREAM = int(TightBasic.STREAM)


def decode_tight(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Paint a Tight rectangle (fill, JPEG, or basic with a filter)."""
    framebuffer.check_rect(rect.x, rect.y, rect.width, rect.height)
    pixel_format = state.pixel_format
    if len(payload) == 4 and payload[0] == TightCompression.FILL << 4 and pixel_format.tight_pixel_size == 3:
        # The most common rectangle, a fill in R, G, B bytes: no reader, no array for one pixel.
        paint(framebuffer.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width],
              (payload[1], payload[2], payload[3]))
        return
    reader = PayloadReader(payload, "Tight")
    control = reader.u8()
    if control & 0x0F:
        for index, stream in enumerate(state.tight_streams):
            if control & (1 << index):
                stream.reset()
    compression = control >> 4
    if compression == TightCompression.FILL:
        colour = tpixels_to_rgb(reader.take(pixel_format.tight_pixel_size), pixel_format, 1, state.colour_map)
        reader.expect_end()
        framebuffer.fill(rect.x, rect.y, rect.width, rect.height, colour[0])
        return
    if compression == TightCompression.JPEG:
        image = reader.take(read_compact_length(reader))
        reader.expect_end()
        framebuffer.blit(rect.x, rect.y, state.jpeg.decode(image, rect.width, rect.height))
        return
    if compression > TightCompression.JPEG:
        raise DecodeError(f"Tight: unknown compression type {compression} in control byte {control:#04x}")
    filter_id = reader.u8() if compression & _EXPLICIT_FILTER else TightFilter.COPY
    stream = state.tight_streams[compression & _STREAM]
    rgb = _decode_basic(state, reader, stream, filter_id, rect.width, rect.height)
    reader.expect_end()
    framebuffer.blit(rect.x, rect.y, rgb.reshape(rect.height, rect.width, 3))


def read_compact_length(reader: PayloadReader) -> int:
    """A Tight compact length: 1 to 3 bytes, 7 bits each (8 in the third), least significant first."""
    first = reader.u8()
    length = first & 0x7F
    if first & 0x80:
        second = reader.u8()
        length |= (second & 0x7F) << 7
        if second & 0x80:
            length |= reader.u8() << 14
    return length


def _decode_basic(
    state: DecoderState, reader: PayloadReader, stream: InflateStream, filter_id: int, width: int, height: int
) -> RGBArray:
    pixel_format = state.pixel_format
    count = width * height
    if filter_id == TightFilter.COPY:
        data = _read_data(state, reader, stream, count * pixel_format.tight_pixel_size)
        return tpixels_to_rgb(data, pixel_format, count, state.colour_map)
    if filter_id == TightFilter.PALETTE:
        palette_size = reader.u8() + 1
        palette_data = reader.take(palette_size * pixel_format.tight_pixel_size)
        palette = tpixels_to_rgb(palette_data, pixel_format, palette_size, state.colour_map)
        indices: npt.NDArray[np.uint8]
        if palette_size <= 2:
            # One bit a pixel, most significant first, each row padded to a byte.
            row_bytes = (width + 7) // 8
            packed = np.frombuffer(_read_data(state, reader, stream, row_bytes * height), np.uint8)
            indices = np.unpackbits(packed.reshape(height, row_bytes), axis=1)[:, :width]
        else:
            indices = np.frombuffer(_read_data(state, reader, stream, count), np.uint8)
        try:
            return palette.take(indices, axis=0).reshape(count, 3)  # checks every index; 3x faster than palette[...]
        except IndexError:
            raise DecodeError(
                f"Tight: palette index {int(indices.max())} beyond a palette of {palette_size}"
            ) from None
    if filter_id == TightFilter.GRADIENT:
        if not pixel_format.true_colour or pixel_format.bits_per_pixel == 8:
            raise DecodeError("Tight: the gradient filter needs a true-colour format of 16 or 32 bits per pixel")
        data = _read_data(state, reader, stream, count * pixel_format.tight_pixel_size)
        return _undo_gradient(data, pixel_format, width, height).reshape(count, 3)
    raise DecodeError(f"Tight: unknown filter {filter_id}")


def _read_data(state: DecoderState, reader: PayloadReader, stream: InflateStream, size: int) -> bytes | memoryview:
    """The filter's input: raw when under 12 bytes, else inflated from the stream to exactly ``size`` bytes."""
    if size < TIGHT_MIN_TO_COMPRESS:
        return reader.take(size)
    if size > state.max_decompressed:
        raise DecodeError(
            f"Tight: a rectangle of {size} bytes is over the limit of {state.max_decompressed} (max_decompressed)"
        )
    compressed = reader.take(read_compact_length(reader))
    data = stream.inflate(compressed, size)
    if len(data) != size:
        raise DecodeError(f"{stream.name}: inflated to {len(data)} bytes, the rectangle needs {size}")
    return data


def _undo_gradient(data: bytes | memoryview, pixel_format: PixelFormat, width: int, height: int) -> RGBArray:
    """Reverse the gradient filter: each channel was sent as its difference from the
    prediction left + above - above-left, clamped to 0..max, modulo max + 1."""
    maxima = (pixel_format.red_max, pixel_format.green_max, pixel_format.blue_max)
    if pixel_format.tight_pixel_size == 3:
        differences = np.frombuffer(data, np.uint8, width * height * 3).reshape(height, width, 3).astype(np.int32)
    else:
        values = np.frombuffer(data, wire_dtype(pixel_format), width * height).reshape(height, width)
        shifts = (pixel_format.red_shift, pixel_format.green_shift, pixel_format.blue_shift)
        differences = np.stack(
            [(values.astype(np.int64) >> shift) & maximum for shift, maximum in zip(shifts, maxima)], axis=-1
        ).astype(np.int32)
    return scale_channels(_predict(differences, np.array(maxima, np.int32)), maxima)


def _predict(differences: npt.NDArray[np.int32], maxima: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Channel values from gradient differences, one anti-diagonal at a time.

    A pixel depends on its left, upper and upper-left neighbours, which all lie
    on earlier anti-diagonals, so each diagonal is one vectorised step.
    """
    height, width = differences.shape[:2]
    # One row and column of zeros above and to the left: the edge predictions.
    values = np.zeros((height + 1, width + 1, 3), np.int32)
    for diagonal in range(height + width - 1):
        rows = np.arange(max(0, diagonal - width + 1), min(height, diagonal + 1))
        columns = diagonal - rows
        left = values[rows + 1, columns]
        above = values[rows, columns + 1]
        above_left = values[rows, columns]
        prediction = np.clip(left + above - above_left, 0, maxima)
        values[rows + 1, columns + 1] = (differences[rows, columns] + prediction) & maxima
    return values[1:, 1:]
