"""The view-only relay: what a viewer sends never reaches the target; updates are paced by the gateway."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived, ProtocolFailed
from gateway.rfb.messages import (
    Bell,
    ClientCutText,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    Screen,
    ServerCutText,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    encode_update_header,
)
from gateway.rfb.proxy import ConnectionClosed, ProxyFailed, Side
from gateway.rfb.viewer import (
    LIVE_PACING,
    TILE_PACING,
    CutTextWithheld,
    InputDropped,
    Pacing,
    UpdateCaptured,
    UpdateForwarded,
    ViewerConnection,
)
from tests.rfb.proxy_helpers import HEIGHT, SERVER_INIT, WIDTH
from tests.rfb.wire_generators import CLIENT_FAMILIES

RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)


def update(*rects: tuple[Rectangle, bytes]) -> bytes:
    return encode_update_header(len(rects)) + b"".join(rect.encode() + payload for rect, payload in rects)


RAW_PIXEL = (Rectangle(0, 0, 1, 1, Encoding.RAW), b"\1\2\3\0")


def test_input_and_extensions_are_dropped_and_counted_nothing_reaches_the_target() -> None:
    relay = ViewerConnection(SERVER_INIT)
    relay.receive_viewer_data(b"".join(m.encode() for m in (
        KeyEvent(True, 0x61), KeyEvent(False, 0x61), PointerEvent(1, 3, 4), ClientCutText(b"paste me"),
        QEMUExtendedKeyEvent(True, 0x61, 30), SetDesktopSize(32, 32, (Screen(1, 0, 0, 32, 32, 0),)))))
    assert relay.data_to_send_target() == b""
    assert relay.events_received() == [InputDropped("key", 3), InputDropped("pointer", 1),
                                       InputDropped("cut_text", 1), InputDropped("other", 1)]


def test_settings_are_rebuilt_for_the_target_and_encodings_filtered() -> None:
    relay = ViewerConnection(SERVER_INIT)
    relay.receive_viewer_data(SetPixelFormat(RGB565).encode() + SetEncodings(
        (Encoding.TIGHT, 999, Encoding.QEMU_EXTENDED_KEY_EVENT, -32 + 6, -256 + 2, Encoding.CURSOR)).encode())
    assert relay.data_to_send_target() == SetPixelFormat(RGB565).encode() + SetEncodings(
        (Encoding.TIGHT, -32 + 6, -256 + 2, Encoding.CURSOR)).encode()
    # The target's stream is now framed in the viewer's pixel format: a 1x1 Raw rectangle is 2 bytes.
    relay.receive_target_data(update((Rectangle(0, 0, 1, 1, Encoding.RAW), b"\1\2")))
    assert relay.events_received() == [UpdateForwarded()]


def test_a_tile_asks_for_its_own_quality_and_compression() -> None:
    relay = ViewerConnection(SERVER_INIT, TILE_PACING)
    relay.receive_viewer_data(SetEncodings((Encoding.TIGHT, -32 + 6, -256 + 2, Encoding.RAW)).encode())
    assert relay.data_to_send_target() == SetEncodings((Encoding.TIGHT, Encoding.RAW, -32 + 1, -256 + 9)).encode()


def test_update_requests_are_absorbed_and_paced_one_outstanding_at_a_time() -> None:
    relay = ViewerConnection(SERVER_INIT, Pacing(0.5))
    assert relay.pace(0.0) is None  # the viewer has not asked
    relay.receive_viewer_data(FramebufferUpdateRequest(False, 5, 5, 1, 1).encode())
    assert relay.data_to_send_target() == b""  # absorbed
    assert relay.pace(0.0) is None
    assert relay.data_to_send_target() == FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT).encode()
    relay.receive_viewer_data(FramebufferUpdateRequest(True, 0, 0, 9, 9).encode() * 3)
    assert relay.pace(1.0) is None and relay.data_to_send_target() == b""  # one is outstanding
    relay.receive_target_data(update(RAW_PIXEL))
    assert relay.data_to_send_viewer() == update(RAW_PIXEL)
    assert relay.pace(0.2) == pytest.approx(0.3)  # due half a second after the last
    assert relay.data_to_send_target() == b""
    assert relay.pace(0.5) is None
    assert relay.data_to_send_target() == FramebufferUpdateRequest(True, 0, 0, WIDTH, HEIGHT).encode()
    relay.receive_target_data(update(RAW_PIXEL))
    assert relay.pace(5.0) is None and relay.data_to_send_target() == b""  # the viewer has not asked again


def test_a_full_update_is_asked_for_even_with_one_outstanding() -> None:
    relay = ViewerConnection(SERVER_INIT, Pacing(0.0))
    relay.receive_viewer_data(FramebufferUpdateRequest(True, 0, 0, 1, 1).encode())
    relay.pace(0.0)
    relay.receive_viewer_data(FramebufferUpdateRequest(False, 0, 0, 1, 1).encode())
    relay.pace(0.1)
    assert relay.data_to_send_target() == (FramebufferUpdateRequest(True, 0, 0, WIDTH, HEIGHT).encode()
                                           + FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT).encode())


def test_the_target_cut_text_is_withheld_its_name_replaced_the_rest_forwarded() -> None:
    relay = ViewerConnection(SERVER_INIT, desktop_name=b"desk-01")
    relay.receive_viewer_data(SetEncodings((Encoding.RAW, Encoding.DESKTOP_NAME)).encode())
    relay.receive_target_data(ServerCutText(b"secret").encode() + Bell().encode()
                              + update((Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), b"\0\0\0\4evil")))
    assert relay.data_to_send_viewer() == Bell().encode() + update(
        (Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), b"\0\0\0\7desk-01"))
    assert relay.events_received() == [CutTextWithheld(6), UpdateForwarded()]


def test_a_broken_side_fails_once_and_ends_are_reported() -> None:
    relay = ViewerConnection(SERVER_INIT)
    relay.receive_viewer_data(b"\xfe" + bytes(7))
    (failed,) = relay.events_received()
    assert isinstance(failed, ProxyFailed) and failed.side is Side.BROWSER
    relay.receive_viewer_data(KeyEvent(True, 1).encode())
    relay.receive_viewer_data(FramebufferUpdateRequest(False, 0, 0, 1, 1).encode())
    assert relay.pace(10.0) is None and relay.data_to_send_target() == b"" and relay.events_received() == []
    closed = ViewerConnection(SERVER_INIT)
    closed.receive_eof(Side.TARGET)
    closed.receive_eof(Side.TARGET)
    assert closed.events_received() == [ConnectionClosed(Side.TARGET)]


def test_pacing_is_checked() -> None:
    assert LIVE_PACING.min_interval == 0.1 and TILE_PACING.min_interval == 2.0
    with pytest.raises(ValueError):
        Pacing(-1.0)
    with pytest.raises(ValueError):
        Pacing(1.0, jpeg_quality=10)


ALLOWED_TO_TARGET = (SetPixelFormat, SetEncodings, FramebufferUpdateRequest)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hostile=st.booleans(), tile=st.booleans())
def test_fuzz_whatever_the_viewer_sends_only_the_gateways_own_messages_reach_the_target(
        seed: int, hostile: bool, tile: bool) -> None:
    """Valid and hostile viewer streams, cut anywhere: no error escapes, and the target's bytes frame as
    only SetPixelFormat, SetEncodings and whole-screen FramebufferUpdateRequests — never input."""
    rng = Random(seed)
    wire = bytearray()
    for _ in range(rng.randint(1, 12)):
        family = rng.choice(CLIENT_FAMILIES)
        if hostile and rng.random() < 0.2:
            wire += family.hostile(rng)[0]
        else:
            wire += family.valid(rng).encode()
    if rng.random() < 0.2:
        wire += rng.randbytes(rng.randint(1, 40))
    relay = ViewerConnection(SERVER_INIT, TILE_PACING if tile else LIVE_PACING, max_cut_text=512)
    to_target = bytearray()
    position, now = 0, 0.0
    while position < len(wire):
        step = rng.randint(1, 64)
        relay.receive_viewer_data(bytes(wire[position:position + step]))
        position += step
        now += rng.random()
        relay.pace(now)
        to_target += relay.data_to_send_target()
        for event in relay.events_received():
            assert isinstance(event, InputDropped | ProxyFailed)
    framer = ClientMessageFramer()
    framer.receive_data(bytes(to_target))
    for event in framer.events_received():
        assert not isinstance(event, ProtocolFailed)
        assert isinstance(event, ClientMessageReceived) and isinstance(event.message, ALLOWED_TO_TARGET)
        if isinstance(event.message, FramebufferUpdateRequest):
            assert (event.message.x, event.message.y, event.message.width) == (0, 0, WIDTH)


# ---------------------------------------------------------------- masked desktops: updates captured, not forwarded


def test_a_masked_desktops_updates_are_captured_whole_and_never_forwarded() -> None:
    relay = ViewerConnection(SERVER_INIT, desktop_name=b"desk-01", capture_updates=True)
    relay.receive_viewer_data(SetEncodings((Encoding.ZRLE, Encoding.RAW, Encoding.DESKTOP_NAME)).encode())
    first = update(RAW_PIXEL)
    relay.receive_target_data(first[:9])
    assert relay.events_received() == [] and relay.data_to_send_viewer() == b""
    relay.receive_target_data(first[9:] + Bell().encode()
                              + update((Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), b"\0\0\0\4evil")))
    assert relay.data_to_send_viewer() == Bell().encode()  # not one byte of the updates
    captured = relay.events_received()
    assert [type(event) for event in captured] == [UpdateCaptured, UpdateCaptured]
    assert [(r.rect, r.payload) for r in captured[0].rectangles] == [RAW_PIXEL]
    assert captured[0].zrle and captured[0].pixel_format == SERVER_INIT.pixel_format
    assert captured[1].rectangles[0].raw == Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME).encode() + b"\0\0\0\7desk-01"


def test_a_masked_desktop_is_viewed_in_true_colour_only() -> None:
    relay = ViewerConnection(SERVER_INIT, capture_updates=True)
    relay.receive_viewer_data(SetPixelFormat(PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)).encode())
    (failed,) = relay.events_received()
    assert isinstance(failed, ProxyFailed) and "true-colour" in str(failed.error)
    assert relay.data_to_send_target() == b""
