"""Cursor pseudo-encoding (RFC 6143 §7.8.1): the pointer's shape, drawn by the client.

The shape is kept in the decoder state; :func:`composite_cursor` draws it onto
a copy of a frame (or into a frame the caller keeps), for videos of a session.
"""

from __future__ import annotations

import numpy as np

from gateway.rfb.messages import Rectangle
from recorder.decoders.state import CursorShape, DecoderState
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, RGBArray


def decode_cursor(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Store the cursor shape: width * height pixels, then a 1-bit mask with byte-padded rows.

    The rectangle's x and y are the hotspot; an empty cursor hides the pointer.
    """
    width, height = rect.width, rect.height
    image_size = width * height * state.pixel_format.bytes_per_pixel
    mask_row_bytes = (width + 7) // 8
    expected = image_size + mask_row_bytes * height
    if len(payload) != expected:
        raise DecodeError(f"Cursor {width}x{height}: expected {expected} bytes, got {len(payload)}")
    if width == 0 or height == 0:
        state.cursor = None
        return
    image = state.to_rgb(payload, width * height).reshape(height, width, 3)
    mask_bytes = np.frombuffer(payload, np.uint8, offset=image_size).reshape(height, mask_row_bytes)
    mask = np.unpackbits(mask_bytes, axis=1)[:, :width].astype(np.bool_)
    state.cursor = CursorShape(image, mask, rect.x, rect.y)


def composite_cursor(fb_rgb: RGBArray, state: DecoderState, x: int, y: int, out: RGBArray | None = None) -> RGBArray:
    """The (h, w, 3) frame with the cursor's hotspot drawn at pointer position (x, y), ``fb_rgb`` untouched.

    Drawn into ``out`` (an array of the frame's shape, kept by the caller) when given: a new 3 MB array
    per frame costs more in page faults than copying into a kept one. Else into a new copy.
    """
    if out is None:
        frame = fb_rgb.copy()
    else:
        np.copyto(out, fb_rgb)
        frame = out
    cursor = state.cursor
    if cursor is None:
        return frame
    left, top = x - cursor.hotspot_x, y - cursor.hotspot_y
    cursor_height, cursor_width = cursor.mask.shape
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + cursor_width, frame.shape[1]), min(top + cursor_height, frame.shape[0])
    if x0 >= x1 or y0 >= y1:
        return frame
    region = frame[y0:y1, x0:x1]
    mask = cursor.mask[y0 - top : y1 - top, x0 - left : x1 - left]
    region[mask] = cursor.image[y0 - top : y1 - top, x0 - left : x1 - left][mask]
    return frame
