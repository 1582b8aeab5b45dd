"""What a connection's decoders remember between rectangles.

ZRLE uses one zlib stream per connection and Tight four; the colour map and
the cursor shape also outlive a rectangle. Decoding is strictly in order.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.rfb.messages import PixelFormat
from recorder.decoders.jpeg import JpegDecoder
from recorder.errors import DecodeError
from recorder.framebuffer import RGBArray, pixels_to_rgb

#: Largest inflated size of one rectangle: a 4K screen of raw 32-bit pixels is 33 MB.
DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024


class InflateStream:
    """One persistent zlib stream, inflated chunk by chunk with a bound on the output."""

    __slots__ = ("_inflater", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._inflater = zlib.decompressobj()

    def reset(self) -> None:
        """Start a fresh stream, as the server does when it resets its compressor."""
        self._inflater = zlib.decompressobj()

    def inflate(self, data: bytes | memoryview, limit: int) -> bytes:
        """Inflate the next chunk of the stream; more than ``limit`` bytes out is a DecodeError.

        The output is bounded while inflating, so a zlib bomb costs ``limit`` bytes, not its size.
        """
        try:
            inflated = self._inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            raise DecodeError(f"{self.name}: corrupt zlib data ({exc})") from exc
        if len(inflated) > limit:
            raise DecodeError(f"{self.name}: inflates to more than the {limit} bytes this rectangle can hold")
        if self._inflater.unused_data:
            raise DecodeError(f"{self.name}: data after the end of the zlib stream")
        return inflated


@dataclass(frozen=True, slots=True, eq=False)
class CursorShape:
    """The cursor the server last sent: RGB image, validity mask, hotspot."""

    image: RGBArray  # (h, w, 3)
    mask: npt.NDArray[np.bool_]  # (h, w), True where the cursor is drawn
    hotspot_x: int
    hotspot_y: int


class DecoderState:
    """Per-connection decoding state: pixel format, colour map, zlib streams, cursor, limits."""

    __slots__ = ("colour_map", "cursor", "jpeg", "max_decompressed", "pixel_format", "tight_streams", "zrle_stream")

    def __init__(self, pixel_format: PixelFormat, *, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> None:
        self.pixel_format = pixel_format
        self.max_decompressed = max_decompressed
        self.colour_map: RGBArray = np.zeros((256, 3), np.uint8)
        self.zrle_stream = InflateStream("ZRLE zlib stream")
        self.tight_streams = tuple(InflateStream(f"Tight zlib stream {index}") for index in range(4))
        self.cursor: CursorShape | None = None
        self.jpeg = JpegDecoder()

    def set_colour_map_entries(self, first_colour: int, colours: Sequence[tuple[int, int, int]]) -> None:
        """Apply a SetColourMapEntries message (16-bit channels, kept as their high bytes)."""
        if first_colour < 0 or first_colour + len(colours) > len(self.colour_map):
            raise DecodeError(
                f"colour map entries {first_colour}..{first_colour + len(colours) - 1} "
                f"are outside the {len(self.colour_map)}-entry colour map"
            )
        if any(len(colour) != 3 or not all(0 <= channel <= 0xFFFF for channel in colour) for colour in colours):
            raise DecodeError("colour map entries are (red, green, blue) triples of 16-bit values")
        for index, (red, green, blue) in enumerate(colours, first_colour):
            self.colour_map[index] = (red >> 8, green >> 8, blue >> 8)

    def to_rgb(self, data: bytes | memoryview, count: int) -> RGBArray:
        """Convert ``count`` wire pixels in the current pixel format to a (count, 3) RGB array."""
        return pixels_to_rgb(data, self.pixel_format, count, self.colour_map)

    def inflate_limit(self, worst_case: int) -> int:
        """The output bound for a rectangle whose data can inflate to at most ``worst_case`` bytes."""
        return min(worst_case, self.max_decompressed)
