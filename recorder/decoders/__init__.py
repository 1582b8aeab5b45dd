"""Decode RFB rectangles into a :class:`~recorder.framebuffer.Framebuffer`.

``decode_rectangle(state, framebuffer, rect, payload)`` takes one rectangle as
the framer cut it (header and the bytes after it) and paints it, or updates
the per-connection :class:`DecoderState` (zlib streams, cursor, size). Pure:
no I/O. Anything malformed raises :class:`~recorder.errors.DecodeError` (its
subclass ``CodecUnavailable`` when PyAV lacks the MJPEG decoder Tight JPEG needs).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.rfb.constants import ExtendedDesktopSizeReason, ExtendedDesktopSizeStatus
from gateway.rfb.messages import Encoding, Rectangle, Screen
from recorder.decoders.copyrect import decode_copy_rect
from recorder.decoders.cursor import composite_cursor, decode_cursor
from recorder.decoders.hextile import decode_hextile
from recorder.decoders.raw import decode_raw
from recorder.decoders.reader import PayloadReader
from recorder.decoders.rre import decode_rre
from recorder.decoders.state import DEFAULT_MAX_DECOMPRESSED, CursorShape, DecoderState
from recorder.decoders.tight import decode_tight
from recorder.decoders.zrle import decode_zrle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED",
    "CursorShape",
    "DecoderState",
    "composite_cursor",
    "decode_rectangle",
]

Decoder = Callable[[DecoderState, Framebuffer, Rectangle, bytes], None]


def decode_rectangle(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Apply one rectangle of a FramebufferUpdate; unknown encodings are a DecodeError."""
    decoder = _DECODERS.get(rect.encoding)
    if decoder is None:
        raise DecodeError(f"rectangle encoding {rect.encoding} is not supported by the recorder")
    decoder(state, framebuffer, rect, payload)


def _decode_desktop_size(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    _expect_empty(payload, "DesktopSize")
    framebuffer.resize(rect.width, rect.height)


def _decode_extended_desktop_size(
    state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes
) -> None:
    reader = PayloadReader(payload, "ExtendedDesktopSize")
    screens = reader.u8()
    reader.take(3)
    reader.take(screens * Screen.LAYOUT.size)
    reader.expect_end()
    # x is the reason, y the status: a refused request of ours changes nothing (its size fields are undefined).
    if rect.x == ExtendedDesktopSizeReason.CLIENT and rect.y != ExtendedDesktopSizeStatus.OK:
        return
    framebuffer.resize(rect.width, rect.height)


def _decode_desktop_name(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    reader = PayloadReader(payload, "DesktopName")
    reader.take(reader.u32())
    reader.expect_end()


def _decode_no_data(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    _expect_empty(payload, f"pseudo-encoding {rect.encoding}")


def _expect_empty(payload: bytes, what: str) -> None:
    if payload:
        raise DecodeError(f"{what} carries no data, got {len(payload)} bytes")


_DECODERS: dict[int, Decoder] = {
    Encoding.RAW: decode_raw,
    Encoding.COPY_RECT: decode_copy_rect,
    Encoding.RRE: decode_rre,
    Encoding.HEXTILE: decode_hextile,
    Encoding.ZRLE: decode_zrle,
    Encoding.TIGHT: decode_tight,
    Encoding.CURSOR: decode_cursor,
    Encoding.DESKTOP_SIZE: _decode_desktop_size,
    Encoding.EXTENDED_DESKTOP_SIZE: _decode_extended_desktop_size,
    Encoding.DESKTOP_NAME: _decode_desktop_name,
    Encoding.LAST_RECT: _decode_no_data,
    Encoding.QEMU_EXTENDED_KEY_EVENT: _decode_no_data,
}
