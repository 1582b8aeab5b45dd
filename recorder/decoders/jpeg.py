"""JPEG images inside Tight rectangles, decoded with FFmpeg's MJPEG decoder through PyAV.

noVNC asks for a JPEG quality level, so TigerVNC sends photo-like areas as JPEG.
The image's own size is read from its SOF header and must be the rectangle's before
anything is decoded: a JPEG cannot make the decoder allocate more than the rectangle.

FFmpeg hands back the JPEG's own YCbCr planes (full range, BT.601, as JFIF defines them);
they are converted to RGB here with lookup tables (three ``take`` calls), which for the many
small images Tight sends is about 1.3× cheaper in CPU time than swscale's
``to_ndarray(format="rgb24")`` right after the decode, and within a level of it (≥ 54 dB).
Chroma subsampled 4:2:0 or 4:2:2 is upsampled by repetition, as libjpeg's fast path does.
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

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


def _lookup_tables() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.int32],
                             npt.NDArray[np.uint8]]:
    """Tables that turn (Y, Cb, Cr) into clipped R, G, B with a few ``take`` calls (JFIF: full range, BT.601).

    R = table[Y << 8 | Cr], B = table[Y << 8 | Cb]; G = table[Y * 320 + term[Cb << 8 | Cr] + 160],
    where ``term`` is G's chroma part, within ±160.
    """
    difference = np.arange(256, dtype=np.float64) - 128
    red_cr, green_cb, green_cr, blue_cb = (np.rint(factor * difference).astype(np.int32)
                                           for factor in (1.402, -0.344136, -0.714136, 1.772))
    luma = np.arange(256, dtype=np.int32)[:, None]
    red = np.clip(luma + red_cr[None, :], 0, 255).astype(np.uint8).ravel()
    blue = np.clip(luma + blue_cb[None, :], 0, 255).astype(np.uint8).ravel()
    green_term = (green_cb[:, None] + green_cr[None, :]).ravel()
    green = np.clip(luma + np.arange(-_GREEN_SPAN, _GREEN_SPAN)[None, :], 0, 255).astype(np.uint8).ravel()
    return red, blue, green_term, green


_GREEN_SPAN = 160
_RED, _BLUE, _GREEN_TERM, _GREEN = _lookup_tables()
#: Pixel formats whose planes :func:`ycbcr_to_rgb` reads: (horizontal, vertical) chroma subsampling.
_SUBSAMPLING = {"yuvj444p": (1, 1), "yuvj422p": (2, 1), "yuvj420p": (2, 2)}


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    plane = frame.planes[index]
    rows: npt.NDArray[np.uint8] = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def ycbcr_to_rgb(frame: av.VideoFrame) -> RGBArray | None:
    """The RGB pixels of a decoded JPEG's full-range YCbCr (or grey) frame; None for another layout."""
    width, height = frame.width, frame.height
    name = frame.format.name
    if name == "gray":
        return np.repeat(_plane(frame, 0, width, height)[:, :, None], 3, axis=2)
    subsampling = _SUBSAMPLING.get(name)
    if subsampling is None:
        return None
    across, down = subsampling
    chroma_width, chroma_height = -(-width // across), -(-height // down)
    blue, red = (_plane(frame, index, chroma_width, chroma_height).astype(np.int32) for index in (1, 2))
    if subsampling != (1, 1):
        blue, red = (plane.repeat(down, axis=0).repeat(across, axis=1)[:height, :width] for plane in (blue, red))
    luma = _plane(frame, 0, width, height).astype(np.int32)
    rgb = np.empty((height, width, 3), np.uint8)
    luma_high = luma << 8
    rgb[:, :, 0] = _RED.take(luma_high | red)
    rgb[:, :, 2] = _BLUE.take(luma_high | blue)
    rgb[:, :, 1] = _GREEN.take(luma * (2 * _GREEN_SPAN) + _GREEN_TERM.take((blue << 8) | red) + _GREEN_SPAN)
    return rgb


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
        rgb = ycbcr_to_rgb(frames[0])
        if rgb is None:  # an unusual layout (CMYK, 4:1:1): let swscale convert it
            rgb = np.ascontiguousarray(frames[0].to_ndarray(format="rgb24"), dtype=np.uint8)
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
