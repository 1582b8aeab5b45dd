"""Raw encoding (RFC 6143 §7.7.1): width * height pixels, left to right, top to bottom."""

from __future__ import annotations

from gateway.rfb.messages import Rectangle
from recorder.decoders.state import DecoderState
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer


def decode_raw(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Paint a Raw rectangle."""
    framebuffer.check_rect(rect.x, rect.y, rect.width, rect.height)
    count = rect.width * rect.height
    expected = count * state.pixel_format.bytes_per_pixel
    if len(payload) != expected:
        raise DecodeError(f"Raw {rect.width}x{rect.height}: expected {expected} bytes, got {len(payload)}")
    rgb = state.to_rgb(payload, count)
    framebuffer.blit(rect.x, rect.y, rgb.reshape(rect.height, rect.width, 3))
