"""RRE encoding (RFC 6143 §7.7.3): a background colour and solid sub-rectangles."""

from __future__ import annotations

import numpy as np

from gateway.rfb.messages import Rectangle
from recorder.decoders.reader import PayloadReader
from recorder.decoders.state import DecoderState
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, paint


def decode_rre(state: DecoderState, framebuffer: Framebuffer, rect: Rectangle, payload: bytes) -> None:
    """Paint an RRE rectangle; every sub-rectangle must lie inside it."""
    framebuffer.check_rect(rect.x, rect.y, rect.width, rect.height)
    pixel_size = state.pixel_format.bytes_per_pixel
    reader = PayloadReader(payload, "RRE")
    count = reader.u32()
    background = state.to_rgb(reader.take(pixel_size), 1)[0]
    # Check the length before looping, so a huge count costs nothing.
    record_size = pixel_size + 8
    if reader.remaining != count * record_size:
        raise DecodeError(
            f"RRE: {count} sub-rectangles need {count * record_size} bytes, {reader.remaining} given"
        )
    records = np.frombuffer(
        reader.take(count * record_size),
        np.dtype([("pixel", f"V{pixel_size}"), ("x", ">u2"), ("y", ">u2"), ("w", ">u2"), ("h", ">u2")]),
    )
    xs, ys = records["x"].astype(np.int64), records["y"].astype(np.int64)
    widths, heights = records["w"].astype(np.int64), records["h"].astype(np.int64)
    outside = np.flatnonzero((xs + widths > rect.width) | (ys + heights > rect.height))
    if outside.size:
        index = int(outside[0])
        raise DecodeError(
            f"RRE sub-rectangle {index} ({widths[index]}x{heights[index]} at ({xs[index]}, {ys[index]})) "
            f"is outside its {rect.width}x{rect.height} rectangle"
        )
    colours = state.to_rgb(records["pixel"].tobytes(), count)
    target = framebuffer.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    paint(target, background)
    for colour, x, y, width, height in zip(colours, xs.tolist(), ys.tolist(), widths.tolist(), heights.tolist()):
        target[y : y + height, x : x + width] = colour
