"""The masked live view's picture: the target's updates decoded, masked and encoded by the gateway."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.rfb.framing import RectangleReceived, ServerMessageFramer, UpdateEnd
from gateway.rfb.messages import RGBX8888, Encoding, PixelFormat, Rectangle, ServerInit
from recorder.decoders import DecoderState, decode_rectangle
from recorder.framebuffer import Framebuffer
from recorder.masked_updates import MaskedUpdates, encode_pixels
from recorder.masking import MaskRegion, MaskSet, MaskStyle
from tests.recorder.pixel_encoding import FORMATS

WIDTH, HEIGHT = 160, 100
MASKS = (MaskSet((WIDTH, HEIGHT), (MaskRegion(10, 10, 50, 20, "card"),)),)


def received(rect: Rectangle, payload: bytes) -> RectangleReceived:
    return RectangleReceived(rect, payload, rect.encode() + payload)


def viewer_sees(data: bytes, pixel_format: PixelFormat, framebuffer: Framebuffer, state: DecoderState) -> list[int]:
    """Decode what the viewer gets as a viewer would; the encodings it was sent."""
    framer = ServerMessageFramer(pixel_format, framebuffer.width, framebuffer.height)
    framer.set_encodings([Encoding.ZRLE, Encoding.RAW, Encoding.CURSOR])
    framer.receive_data(data)
    seen = []
    events = framer.events_received()
    assert isinstance(events[-1], UpdateEnd)
    for event in events:
        if isinstance(event, RectangleReceived):
            seen.append(event.rect.encoding)
            decode_rectangle(state, framebuffer, event.rect, event.payload)
    return seen


@pytest.mark.parametrize("name", ["rgbx8888_le", "rgbx8888_be", "xrgb_high_be", "rgb565_le", "bgr233"])
@pytest.mark.parametrize("zrle", [False, True])
def test_the_viewer_gets_the_picture_with_the_masked_region_black(name: str, zrle: bool) -> None:
    pixel_format = FORMATS[name]
    picture = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    exact = Framebuffer(WIDTH, HEIGHT)  # what the picture is in this pixel format
    decode_rectangle(DecoderState(pixel_format), exact, Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW),
                     encode_pixels(picture, pixel_format))
    masked = MaskedUpdates(ServerInit(WIDTH, HEIGHT, pixel_format, b""), MASKS)
    viewer, state = Framebuffer(WIDTH, HEIGHT), DecoderState(pixel_format)
    for _ in range(2):  # the second update continues the same zlib stream
        rect = Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW)
        data = masked.update([received(rect, encode_pixels(picture, pixel_format))], pixel_format, zrle)
        assert viewer_sees(data, pixel_format, viewer, state) == [Encoding.ZRLE if zrle else Encoding.RAW]
        expected = exact.pixels.copy()
        expected[10:30, 10:60] = 0
        assert np.array_equal(viewer.pixels, expected)


def test_a_copyrect_and_a_small_update_repaint_only_their_area_and_pseudo_rectangles_pass() -> None:
    picture = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    masked = MaskedUpdates(ServerInit(WIDTH, HEIGHT, RGBX8888, b""), MASKS)
    masked.update([received(Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW), encode_pixels(picture, RGBX8888))],
                  RGBX8888, False)
    cursor = received(Rectangle(1, 1, 1, 1, Encoding.CURSOR), b"\1\2\3\0" + b"\x80")
    data = masked.update([received(Rectangle(20, 15, 10, 10, Encoding.COPY_RECT), b"\0\0\0\0"), cursor],
                         RGBX8888, False)
    framer = ServerMessageFramer(RGBX8888, WIDTH, HEIGHT)
    framer.set_encodings([Encoding.RAW, Encoding.CURSOR])
    framer.receive_data(data)
    rects = [event for event in framer.events_received() if isinstance(event, RectangleReceived)]
    assert [r.raw for r in rects if r.rect.encoding == Encoding.CURSOR] == [cursor.raw]
    (area,) = [r for r in rects if r.rect.encoding == Encoding.RAW]
    assert (area.rect.x, area.rect.y, area.rect.width, area.rect.height) == (20, 15, 10, 10)
    pixels = np.frombuffer(area.payload, np.uint8).reshape(10, 10, 4)[..., :3]
    assert not pixels[:15, :].any()  # rows 15..24 are inside the mask (y 10..29): black


def test_a_blurred_region_looks_the_same_whatever_area_is_repainted() -> None:
    picture = np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    masks = (MaskSet((WIDTH, HEIGHT), (MaskRegion(10, 10, 50, 20),), MaskStyle.BLUR),)
    masked = MaskedUpdates(ServerInit(WIDTH, HEIGHT, RGBX8888, b""), masks)
    whole = masked.update([received(Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW), encode_pixels(picture, RGBX8888))],
                          RGBX8888, False)
    part = masked.update([received(Rectangle(30, 0, 10, 40, Encoding.COPY_RECT), b"\0\x1e\0\0")], RGBX8888, False)
    whole_pixels = np.frombuffer(whole[16:], np.uint8).reshape(HEIGHT, WIDTH, 4)[..., :3]
    part_pixels = np.frombuffer(part[16:], np.uint8).reshape(40, 10, 4)[..., :3]
    assert np.array_equal(part_pixels[10:30], whole_pixels[10:30, 30:40])
