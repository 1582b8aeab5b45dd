"""JPEG images inside Tight rectangles, decoded with FFmpeg's MJPEG decoder through PyAV.

noVNC asks for a JPEG quality level, so TigerVNC sends photo-like areas as JPEG.
The image's own size is read from its SOF header and must be the rectangle's before
anything is decoded: a JPEG cannot make the decoder allocate more than the rectangle.

Standard Huffman tables the decoder already holds are not sent to it again (see :data:`_STANDARD_TABLES`).
FFmpeg hands back the JPEG's own YCbCr planes (full range, BT.601, as JFIF defines them);
swscale converts them to RGB with a context kept per image size (:data:`KEPT_CONTEXTS`): for the
small images Tight sends, building a context costs as much as the conversion, and numpy lookup
tables cost about 1.5 times as much CPU as a kept context (office Tight render: 0.37 against 0.25 s).
"""

from __future__ import annotations

import av
import numpy as np

from recorder.errors import CodecUnavailable, DecodeError
from recorder.framebuffer import RGBArray
from recorder.reformatters import KeptReformatters

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


#: The Huffman tables of the JPEG standard's example (ITU-T T.81 Annex K.3), one DHT segment each as libjpeg
#: writes them (TigerVNC's JPEGs carry these), and the decoder's slot each fills: class << 4 | table id.
#: FFmpeg's decoder starts with the same tables and builds its lookup tables again for every DHT segment it
#: reads, about a quarter of the decode of a small image: a segment that repeats the table in force is left out.
_STANDARD_TABLES = {
    bytes.fromhex(
        "ffc4001f0000010501010101010100000000000000000102030405060708090a0b"): 0x00,
    bytes.fromhex(
        "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1"
        "c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a6364"
        "65666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9"
        "bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"): 0x10,
    bytes.fromhex(
        "ffc4001f0100030101010101010101010000000000000102030405060708090a0b"): 0x01,
    bytes.fromhex(
        "ffc400b51100020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c1"
        "09233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63"
        "6465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7"
        "b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"): 0x11,
}
_STANDARD_SLOTS = frozenset(_STANDARD_TABLES.values())

#: swscale contexts kept, one per image size (about 400 KB each): Tight cuts photos into rectangles of
#: many sizes, and a new context costs about as much as converting the image with a kept one.
KEPT_CONTEXTS = 32


class JpegDecoder:
    """A connection's MJPEG decoder, opened on first use and kept: opening one per rectangle costs more
    than decoding it. Single-threaded, so each image comes out as soon as it goes in."""

    __slots__ = ("_context", "_converters", "_replaced")

    def __init__(self) -> None:
        self._context: av.VideoCodecContext | None = None
        self._converters = KeptReformatters(KEPT_CONTEXTS)
        self._replaced: set[int] = set()  # the decoder's Huffman slots that may hold another than the standard table

    def decode(self, data: bytes | memoryview, width: int, height: int) -> RGBArray:
        """The (height, width, 3) RGB pixels of a JPEG that must be exactly ``width`` x ``height``.

        The array is a view of the converted picture (its rows may be padded), not a copy.
        """
        declared = jpeg_size(data)
        if declared != (width, height):
            raise DecodeError(
                f"Tight JPEG: the image is {declared[0]}x{declared[1]}, the rectangle {width}x{height}"
            )
        context = self._open()
        try:
            # No copy: PyAV takes any buffer, and the decoder is done with it on return (PyAV 17's stubs said bytes).
            packet = av.Packet(self._without_repeated_tables(data))  # type: ignore[arg-type, unused-ignore]
            frames = context.decode(packet)
        except (av.FFmpegError, ValueError) as exc:
            self._context = None  # start the next image on a fresh decoder
            raise DecodeError(f"Tight JPEG: the image cannot be decoded ({exc})") from exc
        if len(frames) != 1 or (frames[0].width, frames[0].height) != (width, height):
            self._context = None
            raise DecodeError(f"Tight JPEG: the decoder did not return one {width}x{height} image")
        plane = self._converters.for_size(width, height).reformat(frames[0], format="rgb24", threads=1).planes[0]
        rows: RGBArray = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        return rows[:height, : width * 3].reshape(height, width, 3)

    def _without_repeated_tables(self, data: bytes | memoryview) -> bytes | memoryview:
        """``data`` without the standard Huffman table segments the decoder already holds in their slots.

        A segment with other tables is kept, and from then on every standard one too, until it has
        put the standard table back in its slot (FFmpeg 8 goes back to the standard tables for each
        image anyway; older ones keep the last). Segments are read up to the scan; anything malformed
        is left for the decoder to refuse.
        """
        view = memoryview(data)
        position, start, pieces = 2, 0, []
        while position + 4 <= len(view) and view[position] == 0xFF:
            marker = view[position + 1]
            if marker in _STANDALONE or marker == 0xFF:
                position += 1 if marker == 0xFF else 2
                continue
            if marker == 0xDA:  # the scan: no tables after it
                break
            end = position + 2 + int.from_bytes(view[position + 2 : position + 4], "big")
            if marker == 0xC4:
                slot = _STANDARD_TABLES.get(bytes(view[position:end]))
                if slot is None:
                    self._replaced |= _STANDARD_SLOTS
                elif slot in self._replaced:
                    self._replaced.discard(slot)
                else:
                    pieces.append(view[start:position])
                    start = end
            position = end
        if not pieces:
            return data
        pieces.append(view[start:])
        return b"".join(pieces)

    def _open(self) -> av.VideoCodecContext:
        if self._context is None:
            try:
                context = av.CodecContext.create("mjpeg", "r")
            except (av.FFmpegError, ValueError) as exc:
                raise CodecUnavailable(f"Tight JPEG: PyAV has no MJPEG decoder ({exc})") from exc
            assert isinstance(context, av.VideoCodecContext)
            context.thread_count = 1
            self._context = context
            self._replaced.clear()  # a new decoder starts with the standard tables
        return self._context
