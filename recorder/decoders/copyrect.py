"""CopyRect encoding (RFC 6143 §7.7.2): copy a rectangle the client already has."""

from __future__ import annotations

from gateway.rfb.messages import Rectangle
from recorder.decoders.reader import PayloadReader
from recorder.decoders.state import DecoderState
from recorder.framebuffer import Framebuffer


def decode_copy_rect(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Copy from the source position in the payload; source and destination may overlap."""
    reader = PayloadReader(payload, "CopyRect")
    src_x, src_y = reader.u16(), reader.u16()
    reader.expect_end()
    framebuffer.copy_rect(src_x, src_y, rect.x, rect.y, rect.width, rect.height)
