"""JPEG images inside Tight rectangles, decoded with FFmpeg's MJPEG decoder through PyAV.

noVNC asks for a JPEG quality level, so TigerVNC sends photo-like areas as JPEG.
The image's own size is read from its SOF header and must be the rectangle's before
anything is decoded: a JPEG cannot make the decoder allocate more than the rectangle.
"""

from __future__ import annotations

import av
import numpy as np

from recorder.errors import CodecUnavailable, DecodeError
from recorder.framebuffer import RGBArray

_SOI = b"\xff\xd8"
# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7 (SOI/EOI never appear before SOF here).
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF header; DecodeError if there is none before the image data."""
    view = memoryview(data)
    if bytes(view[:2]) != _SOI:
        raise DecodeError("Tight JPEG: the data does not start with a JPEG SOI marker")
    position = 2
    while position + 4 <= len(view):
        if view[position] != 0xFF:
            raise DecodeError(f"Tight JPEG: expected a marker at offset {position}")
        marker = view[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        length = int.from_bytes(view[position + 2 : position + 4], "big")
        if length < 2:
            raise DecodeError(f"Tight JPEG: segment length {length} at offset {position}")
        if marker in _SOF_MARKERS:
            if position + 9 > len(view):
                break
            height = int.from_bytes(view[position + 5 : position + 7], "big")
            width = int.from_bytes(view[position + 7 : position + 9], "big")
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        position += 2 + length
    raise DecodeError("Tight JPEG: no frame header (SOF) before the image data")


class JpegDecoder:
    """A connection's MJPEG decoder, opened on first use and kept: opening one per rectangle costs more
    than decoding it. Single-threaded, so each image comes out as soon as it goes in."""

    __slots__ = ("_context",)

    def __init__(self) -> None:
        self._context: av.VideoCodecContext | None = None

    def decode(self, data: bytes | memoryview, width: int, height: int) -> RGBArray:
        """The (height, width, 3) RGB pixels of a JPEG that must be exactly ``width`` x ``height``."""
        declared = jpeg_size(data)
        if declared != (width, height):
            raise DecodeError(
                f"Tight JPEG: the image is {declared[0]}x{declared[1]}, the rectangle {width}x{height}"
            )
        context = self._open()
        try:
            frames = context.decode(av.Packet(bytes(data)))
        except (av.FFmpegError, ValueError) as exc:
            self._context = None  # start the next image on a fresh decoder
            raise DecodeError(f"Tight JPEG: the image cannot be decoded ({exc})") from exc
        if len(frames) != 1 or (frames[0].width, frames[0].height) != (width, height):
            self._context = None
            raise DecodeError(f"Tight JPEG: the decoder did not return one {width}x{height} image")
        rgb: RGBArray = np.ascontiguousarray(frames[0].to_ndarray(format="rgb24"), dtype=np.uint8)
        return rgb

    def _open(self) -> av.VideoCodecContext:
        if self._context is None:
            try:
                context = av.CodecContext.create("mjpeg", "r")
            except (av.FFmpegError, ValueError) as exc:
                raise CodecUnavailable(f"Tight JPEG: PyAV has no MJPEG decoder ({exc})") from exc
            assert isinstance(context, av.VideoCodecContext)
            context.thread_count = 1
            self._context = context
        return self._context
