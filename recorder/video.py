"""H.264 in MP4 through PyAV: variable frame rate, bounded keyframe interval, faststart.

Frames come with their own time (seconds since the recording's start), so an
idle stretch costs no frames at all; the MP4's time base is 1/1000 s and every
frame keeps the journal's time to the millisecond.

Every frame is coded at one constant quantizer with the deblocking filter off:
screen content is sharp text, and the picture a reviewer pauses on must be as
legible as the first one, whatever came before it.

RGB → YUV (swscale, BT.709 limited range) converts only what changed: the frame is compared with
the previous one word by word, each band of :data:`BAND_ROWS` rows that differs is narrowed to the
columns that differ, and neighbouring bands are converted together as one rectangle
(:class:`StripConverter`); a screen where the caret blinks and a clock ticks costs a few small
pieces a frame, not the whole picture.

:func:`write_jpeg` writes one picture as a JPEG: the player's poster, shown before playing.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorRange, Colorspace

from recorder.errors import CodecUnavailable
from recorder.framebuffer import RGBArray
from recorder.reformatters import KeptReformatters

#: Video time is counted in milliseconds.
TIME_BASE: Final = Fraction(1, 1000)
#: H.264's quantizer range; 0 is lossless, 51 the coarsest.
QP_RANGE: Final = range(52)

_CODEC: Final = "libx264"
# The colour tags the YUV conversion uses, written into the stream so players convert back alike.
_COLORSPACE = Colorspace.ITU709
_COLOR_RANGE = ColorRange.MPEG
_BT709 = 1  # ColorPrimaries / ColorTrc / Colorspace value of ITU-R BT.709
#: Rows per band of the strip-wise colour conversion (even, for 4:2:0 chroma).
BAND_ROWS: Final = 16
#: A changed band is converted again over whole multiples of this many columns (even; few swscale contexts).
_SPAN_COLUMNS: Final = 64
#: What one more swscale call costs, in pixels converted: pieces cost more than the whole frame once their
#: pixels and calls add up to it. Two bands merge when their union costs less than converting both.
_PIECE_COST_PIXELS: Final = 4096
#: swscale contexts kept, one per piece size (about 180 KB each; a new one costs as much as converting 8,000 pixels).
_KEPT_CONTEXTS: Final = 64
#: Bytes after the kept frame that swscale's vector loads may read past a piece's last row (beyond one row).
_OVERREAD: Final = 64
#: The preset and the x264 options that go with it: ultrafast turns CABAC off, which costs 10-20 % in size on
#: screen content for about 5 % of the time; at the same quantizer the picture is as sharp (see bench/README.md).
DEFAULT_PRESET: Final = "ultrafast"
#: The constant quantizer: the worst sampled frame of the bench's sessions stays at 38 dB or more (see bench/README.md).
DEFAULT_QP: Final = 24
#: Pixels a block may have moved since the previous frame and still be found there (a scroll step, a dragged window).
SCROLL_SEARCH_RANGE: Final = 128

Piece = tuple[int, int, int, int]  # top, bottom, left, right: rows top:bottom, columns left:right


class StripConverter:
    """Converts (h, w, 3) RGB frames of one even size to yuv420p, re-converting only what changed.

    The RGB and YUV planes of the last frame are kept. Each band (:data:`BAND_ROWS` rows) that
    differs from the previous frame is converted again across the columns that differ (widened
    to :data:`_SPAN_COLUMNS`); adjacent changed bands go to swscale as one piece when that is
    cheaper, and a frame whose pieces would cost more than the whole is converted whole. swscale
    reads the kept frame in place (no copy per piece), and each piece size keeps its own context.
    """

    def __init__(self, width: int, height: int, threads: int = 1) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs an even size, not {width}x{height}")
        self.width, self.height = width, height
        self._threads = threads
        # The frame handed to the encoder every time: the encoder copies it before the next one is written.
        self._frame = av.VideoFrame(width, height, "yuv420p")
        self._planes = tuple(_plane_array(self._frame, index, width // scale, height // scale)
                             for index, scale in enumerate((1, 2, 2)))
        # The last frame in RGB, and a row after it: a piece's buffer runs to the end of its last row's stride.
        self._kept = np.zeros((height + 1) * width * 3 + _OVERREAD, np.uint8)
        self._previous: RGBArray = self._kept[: height * width * 3].reshape(height, width, 3)
        self._primed = False
        self._reformatters = KeptReformatters(_KEPT_CONTEXTS)
        row_bytes = width * 3
        self._word = next(size for size in (8, 4, 2, 1) if row_bytes % size == 0)
        self.bands_converted = 0  # counters, for measurements
        self.bands_seen = 0

    def convert(self, rgb: RGBArray) -> av.VideoFrame:
        """The yuv420p frame of ``rgb`` (C-contiguous, the converter's size)."""
        width, height = self.width, self.height
        self.bands_seen += -(-height // BAND_ROWS)
        pieces = self._changed_pieces(rgb) if self._primed else [(0, height, 0, width)]
        self.bands_converted += sum(-(-(bottom - top) // BAND_ROWS) for top, bottom, _, _ in pieces)
        cost = sum((bottom - top) * (right - left) + _PIECE_COST_PIXELS for top, bottom, left, right in pieces)
        if cost >= width * height:
            pieces = [(0, height, 0, width)]
        for top, bottom, left, right in pieces:
            kept = self._previous[top:bottom, left:right]
            kept[...] = rgb[top:bottom, left:right]
            self._store(self._reformatters.for_size(right - left, bottom - top).reformat(
                av.VideoFrame.from_numpy_buffer(kept, format="rgb24"), format="yuv420p",
                dst_colorspace=_COLORSPACE, dst_color_range=_COLOR_RANGE, threads=self._threads),
                top, bottom, left, right)
        self._primed = True
        return self._frame

    def _changed_pieces(self, rgb: RGBArray) -> list[Piece]:
        """The rectangles to convert again: changed bands, narrowed to their changed columns, merged when cheaper."""
        dtype = np.dtype(f"u{self._word}")
        height = self.height
        differs = rgb.reshape(height, -1).view(dtype) != self._previous.reshape(height, -1).view(dtype)
        whole_bands = height // BAND_ROWS * BAND_ROWS  # a reshape is far cheaper than reduceat
        by_band = differs[:whole_bands].reshape(height // BAND_ROWS, BAND_ROWS, -1).any(axis=1)
        if whole_bands < height:
            by_band = np.concatenate([by_band, differs[whole_bands:].any(axis=0, keepdims=True)])
        changed = np.flatnonzero(by_band.any(axis=1))
        if not changed.size:
            return []
        words = by_band[changed]
        last_word = words.shape[1] - 1
        first = words.argmax(axis=1) * self._word // 3 // _SPAN_COLUMNS * _SPAN_COLUMNS
        last = ((last_word - words[:, ::-1].argmax(axis=1) + 1) * self._word - 1) // 3 // _SPAN_COLUMNS
        pieces: list[Piece] = []
        for band, left, right in zip(changed.tolist(), first.tolist(),
                                     np.minimum((last + 1) * _SPAN_COLUMNS, self.width).tolist()):
            top, bottom = band * BAND_ROWS, min(height, (band + 1) * BAND_ROWS)
            if pieces and pieces[-1][1] == top:
                above_top, _, above_left, above_right = pieces[-1]
                union_left, union_right = min(left, above_left), max(right, above_right)
                apart = (top - above_top) * (above_right - above_left) + (bottom - top) * (right - left)
                if (bottom - above_top) * (union_right - union_left) <= apart + _PIECE_COST_PIXELS:
                    pieces[-1] = (above_top, bottom, union_left, union_right)
                    continue
            pieces.append((top, bottom, left, right))
        return pieces

    def _store(self, converted: av.VideoFrame, top: int, bottom: int, left: int, right: int) -> None:
        """Copy a converted piece's planes into the kept frame at rows ``top:bottom``, columns ``left:right``."""
        for index, (plane, scale) in enumerate(zip(self._planes, (1, 2, 2))):
            data = _plane_array(converted, index, (right - left) // scale, (bottom - top) // scale)
            plane[top // scale : bottom // scale, left // scale : right // scale] = data


def _plane_array(frame: av.VideoFrame, index: int, row_bytes: int, rows: int) -> npt.NDArray[np.uint8]:
    """A writable view of the first ``rows`` rows and ``row_bytes`` bytes of each of a frame's plane."""
    plane = frame.planes[index]
    data: npt.NDArray[np.uint8] = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return data[:rows, :row_bytes]


class VideoEncoder:
    """Writes RGB frames to an H.264 MP4 file; use as a context manager so the file is always finished.

    The video has the size given here, rounded up to even numbers (yuv420p needs
    them); a frame of any other size is letterboxed: scaled down to fit if it is
    larger, centred, and padded with black.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        *,
        keyframe_interval: float = 2.0,
        qp: int = DEFAULT_QP,
        preset: str = DEFAULT_PRESET,
        threads: int = 1,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"a video cannot be {width}x{height}")
        if keyframe_interval <= 0:
            raise ValueError(f"keyframe_interval must be positive, not {keyframe_interval}")
        if qp not in QP_RANGE:
            raise ValueError(f"qp must be in 0..51, not {qp}")
        if _CODEC not in av.codecs_available:
            raise CodecUnavailable(f"PyAV was built without {_CODEC}: H.264 videos cannot be written")
        self.path = path
        self.width = width + width % 2
        self.height = height + height % 2
        self.keyframe_interval = keyframe_interval
        self.frames = 0
        self.last_time: float | None = None
        self._threads = threads
        self._last_keyframe_ms: int | None = None
        self._last_pts = -1
        self._canvas: RGBArray = np.zeros((self.height, self.width, 3), np.uint8)
        self.converter = StripConverter(self.width, self.height, threads)
        self._container: av.container.OutputContainer | None = av.open(
            str(path), "w", format="mp4", options={"movflags": "+faststart"}
        )
        try:
            self._stream = self._container.add_stream(_CODEC)
            self._stream.width = self.width
            self._stream.height = self.height
            self._stream.pix_fmt = "yuv420p"
            self._stream.time_base = TIME_BASE
            context = self._stream.codec_context
            context.time_base = TIME_BASE
            context.thread_count = threads
            context.color_range = 1  # MPEG (limited) range, as converted in add_frame
            context.color_primaries = context.color_trc = context.colorspace = _BT709
            # zerolatency: no B-frames and no lookahead, so each frame leaves the encoder as soon as it
            # is encoded. pts == dts keeps the VFR timestamps plain in the MP4 (no reordering offsets),
            # memory stays at one frame even for 4K desktops, and a recording cut short by an error loses
            # no queued frames. Measured on screen content it is as fast as stillimage at veryfast (about
            # 5 ms a 1280x800 frame on one core, plus 3 ms of RGB to YUV) and as small.
            # A constant quantizer, not crf: crf spends less on complex frames, so a frame that repaints
            # much of the screen (a new window, a page of text) came out at 29 to 33 dB, and a keyframe
            # after it no better. At qp 26 the worst frame of 1280x800 sessions is 38 to 39 dB, for 0 to
            # 12% more bytes than crf 23. The deblocking filter blurs glyph edges: off, a desktop's
            # keyframe goes from 36 to 40-44 dB in fewer bytes, and encoding is about 5% faster.
            # ultrafast alone also turns CABAC off: it is turned back on (10-20 % smaller on screen content).
            # Scrolling moves text by tens of rows, beyond ultrafast's diamond search (16 pixels): each
            # scroll step was coded as new text, 30 KB a frame. The uneven multi-hexagon search over
            # SCROLL_SEARCH_RANGE pixels finds the shift, and a scroll costs a few hundred bytes; on the
            # call-center workload the MP4 went from 54 to 31 MB an hour for 5 % more encoding time.
            self._stream.options = {
                "preset": preset,
                "qp": str(qp),
                "tune": "zerolatency",
                "x264-params": f"no-deblock=1:cabac=1:me=umh:merange={SCROLL_SEARCH_RANGE}",
            }
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def add_frame(self, rgb: RGBArray, t: float) -> None:
        """Encode an (h, w, 3) uint8 RGB frame shown from ``t`` seconds on.

        Times must increase by at least a millisecond. A frame becomes a keyframe when
        ``keyframe_interval`` seconds or more have passed since the last one, so seeking
        never decodes more than that much video.
        """
        if self._container is None:
            raise ValueError(f"{self.path} is closed: no frame can be added")
        pts = round(t * 1000)
        if pts <= self._last_pts:
            raise ValueError(f"frame at {t:.3f} s does not come after the previous one at {self._last_pts / 1000:.3f} s")
        frame = self.converter.convert(np.ascontiguousarray(self._fit(rgb)))
        frame.pts = pts
        frame.time_base = TIME_BASE
        if self._last_keyframe_ms is None or pts - self._last_keyframe_ms >= round(self.keyframe_interval * 1000):
            frame.pict_type = av.video.frame.PictureType.I
            self._last_keyframe_ms = pts
        else:
            frame.pict_type = av.video.frame.PictureType.NONE  # the converter hands out the same frame each time
        self._container.mux(self._stream.encode(frame))
        self._last_pts = pts
        self.last_time = pts / 1000
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (the moov atom moves to the front); idempotent."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self.frames:
                container.mux(self._stream.encode(None))
        finally:
            container.close()

    def _fit(self, rgb: RGBArray) -> RGBArray:
        """The frame at the video's size: as is if it matches, else letterboxed onto black."""
        height, width = rgb.shape[:2]
        if (width, height) == (self.width, self.height):
            return rgb
        scale = min(1.0, self.width / width, self.height / height)
        if scale < 1.0:
            fitted_width, fitted_height = max(1, int(width * scale)), max(1, int(height * scale))
            fitted = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
                fitted_width, fitted_height, interpolation="AREA", threads=self._threads
            )
            rgb = np.asarray(fitted.to_ndarray(), np.uint8)  # rgb24 is uint8 already: no copy
            height, width = fitted_height, fitted_width
        top, left = (self.height - height) // 2, (self.width - width) // 2
        canvas = self._canvas
        canvas[:] = 0
        canvas[top : top + height, left : left + width] = rgb
        return canvas


def write_jpeg(rgb: RGBArray, path: Path, *, max_width: int = 1920, quality: int = 3) -> None:
    """Write an (h, w, 3) uint8 RGB picture to ``path`` as a JPEG, scaled down to ``max_width`` if wider.

    ``quality`` is the JPEG quantizer, 2 (finest) to 31. The file appears whole or not at all.
    """
    if not 2 <= quality <= 31:
        raise ValueError(f"quality must be in 2..31, not {quality}")
    if "mjpeg" not in av.codecs_available:
        raise CodecUnavailable("PyAV was built without mjpeg: JPEG pictures cannot be written")
    height, width = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if width > max_width:
        width, height = max_width, max(1, round(height * max_width / width))
        frame = frame.reformat(width, height, interpolation="AREA")
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height = width, height
    context.pix_fmt = "yuvj420p"  # full-range YUV, as JPEG files are
    context.time_base = Fraction(1, 1)
    context.options = {"qmin": str(quality), "qmax": str(quality)}
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    data = b"".join(bytes(packet) for packet in [*context.encode(picture), *context.encode(None)])
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)
