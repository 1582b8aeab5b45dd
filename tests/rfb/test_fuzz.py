"""Property tests: valid streams survive any chunking; arbitrary bytes only ever fail the documented way."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.errors import ProtocolViolation, TargetAuthFailed, TargetUnavailable
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    DesktopResized,
    ProtocolFailed,
    RectangleReceived,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateBegin,
    UpdateEnd,
)
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeState,
    ServerHandshake,
)
from gateway.rfb.messages import (
    RGBX8888,
    Bell,
    ClientCutText,
    ClientMessage,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    Screen,
    ServerCutText,
    ServerInit,
    ServerMessage,
    SetColourMapEntries,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    encode_update_header,
)
from tests.rfb.helpers import compact_length, feed, hextile_subrect, u32

FUZZ = settings(max_examples=300, deadline=None)
FRAMEBUFFER = 64  # the framers start with a 64x64 RGBX8888 desktop; resizes only grow it
BYTES_PER_PIXEL = 4


def server_framer() -> ServerMessageFramer:
    return ServerMessageFramer(RGBX8888, FRAMEBUFFER, FRAMEBUFFER, encodings=tuple(Encoding))

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFF_FFFF)

pixel_formats = st.sampled_from(
    [
        RGBX8888,
        PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
        PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0),
    ]
)
screens = st.builds(Screen, u32s, u16, u16, u16, u16, u32s)
client_messages: st.SearchStrategy[ClientMessage] = st.one_of(
    st.builds(SetPixelFormat, pixel_formats),
    st.builds(SetEncodings, st.lists(st.integers(-(1 << 31), (1 << 31) - 1), max_size=64).map(tuple)),
    st.builds(FramebufferUpdateRequest, st.booleans(), u16, u16, u16, u16),
    st.builds(KeyEvent, st.booleans(), u32s),
    st.builds(PointerEvent, u8, u16, u16),
    st.builds(ClientCutText, st.binary(max_size=300)),
    st.builds(SetDesktopSize, u16, u16, st.lists(screens, max_size=16).map(tuple)),
    st.builds(QEMUExtendedKeyEvent, st.booleans(), u32s, u32s),
)


def cut(data: bytes, points: Sequence[int]) -> list[bytes]:
    """Split ``data`` at the given points (taken modulo its length)."""
    cuts = sorted({point % (len(data) + 1) for point in points} | {0, len(data)})
    return [data[start:end] for start, end in zip(cuts, cuts[1:])]


cut_points = st.lists(st.integers(0, 1 << 16), max_size=20)


@FUZZ
@given(st.lists(client_messages, max_size=12), cut_points)
def test_valid_client_streams_round_trip_in_any_chunking(messages: list[ClientMessage], points: list[int]) -> None:
    stream = b"".join(message.encode() for message in messages)
    events = feed(ClientMessageFramer(), cut(stream, points))
    assert all(isinstance(event, ClientMessageReceived) for event in events)
    assert [event.message for event in events] == messages  # type: ignore[attr-defined]
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]


# ---------------------------------------------------------------- valid server streams


@st.composite
def inside(draw: st.DrawFn, max_size: int = 40) -> tuple[int, int, int, int]:
    width = draw(st.integers(0, max_size))
    height = draw(st.integers(0, max_size))
    return draw(st.integers(0, FRAMEBUFFER - width)), draw(st.integers(0, FRAMEBUFFER - height)), width, height


pixels = st.binary(min_size=BYTES_PER_PIXEL, max_size=BYTES_PER_PIXEL)


@st.composite
def hextile_payload(draw: st.DrawFn, width: int, height: int) -> bytes:
    payload = b""
    for tile_y in range(0, height, 16):
        for tile_x in range(0, width, 16):
            tile_width, tile_height = min(16, width - tile_x), min(16, height - tile_y)
            mask = draw(st.integers(0, 31))
            payload += bytes((mask,))
            if mask & 1:
                size = tile_width * tile_height * BYTES_PER_PIXEL
                payload += draw(st.binary(min_size=size, max_size=size))
                continue
            payload += draw(pixels) if mask & 2 else b""
            payload += draw(pixels) if mask & 4 else b""
            if mask & 8:
                count = draw(st.integers(0, 5))
                payload += bytes((count,))
                for _ in range(count):
                    w, h = draw(st.integers(1, tile_width)), draw(st.integers(1, tile_height))
                    x, y = draw(st.integers(0, tile_width - w)), draw(st.integers(0, tile_height - h))
                    payload += hextile_subrect(x, y, w, h, draw(pixels) if mask & 16 else b"")
    return payload


@st.composite
def tight_payload(draw: st.DrawFn, width: int, height: int) -> bytes:
    tpixel = st.binary(min_size=3, max_size=3)
    kind = draw(st.sampled_from(["fill", "jpeg", "copy", "palette", "gradient"]))
    streams = draw(st.integers(0, 15))
    if kind == "fill":
        return bytes((0x80 | streams,)) + draw(tpixel)
    if kind == "jpeg":
        data = draw(st.binary(max_size=300))
        return bytes((0x90 | streams,)) + compact_length(len(data)) + data
    control = bytes((draw(st.integers(0, 3)) << 4 | streams,))
    if kind == "copy":
        header, size = (control if draw(st.booleans()) else bytes((control[0] | 0x40, 0))), width * height * 3
    elif kind == "gradient":
        header, size = bytes((control[0] | 0x40, 2)), width * height * 3
    else:
        colours = draw(st.integers(2, 256))
        palette = b"".join(draw(tpixel) for _ in range(colours))
        header = bytes((control[0] | 0x40, 1, colours - 1)) + palette
        size = ((width + 7) // 8 if colours == 2 else width) * height
    if size < 12:
        return header + draw(st.binary(min_size=size, max_size=size))
    data = draw(st.binary(max_size=300))
    return header + compact_length(len(data)) + data


@st.composite
def rectangles(draw: st.DrawFn) -> tuple[Rectangle, bytes]:
    encoding = draw(st.sampled_from(list(Encoding)))
    x, y, width, height = draw(inside())
    if encoding == Encoding.RAW:
        payload = draw(st.binary(min_size=width * height * 4, max_size=width * height * 4))
    elif encoding == Encoding.COPY_RECT:
        payload = draw(st.integers(0, FRAMEBUFFER - width)).to_bytes(2, "big")
        payload += draw(st.integers(0, FRAMEBUFFER - height)).to_bytes(2, "big")
    elif encoding == Encoding.RRE:
        subrects = b""
        count = draw(st.integers(0, min(4, width * height)))
        for _ in range(count):
            w, h = draw(st.integers(0, width)), draw(st.integers(0, height))
            sx, sy = draw(st.integers(0, width - w)), draw(st.integers(0, height - h))
            subrects += draw(pixels) + b"".join(value.to_bytes(2, "big") for value in (sx, sy, w, h))
        payload = u32(count) + draw(pixels) + subrects
    elif encoding == Encoding.HEXTILE:
        payload = draw(hextile_payload(width, height))
    elif encoding == Encoding.ZRLE:
        data = draw(st.binary(max_size=200))
        payload = u32(len(data)) + data
    elif encoding == Encoding.TIGHT:
        payload = draw(tight_payload(width, height))
    elif encoding == Encoding.CURSOR:
        size = width * height * 4 + (width + 7) // 8 * height
        payload = draw(st.binary(min_size=size, max_size=size))
    elif encoding in (Encoding.DESKTOP_SIZE, Encoding.EXTENDED_DESKTOP_SIZE):
        x, y = (0, 0) if encoding == Encoding.DESKTOP_SIZE else (draw(st.integers(0, 2)), 0)
        width, height = draw(st.integers(FRAMEBUFFER, 300)), draw(st.integers(FRAMEBUFFER, 300))
        listed = draw(st.lists(screens, max_size=3))
        payload = b"" if encoding == Encoding.DESKTOP_SIZE else bytes((len(listed), 0, 0, 0))
        payload += b"".join(screen.encode() for screen in listed) if listed and payload else b""
    elif encoding == Encoding.DESKTOP_NAME:
        name = draw(st.binary(max_size=64))
        payload = u32(len(name)) + name
    else:  # LastRect is placed by updates(); QEMUExtendedKeyEvent has no payload
        encoding = Encoding.QEMU_EXTENDED_KEY_EVENT
        payload = b""
    return Rectangle(x, y, width, height, encoding), payload


Update = tuple[bytes, list[tuple[Rectangle, bytes]]]  # the update's bytes, and its rectangles


@st.composite
def updates(draw: st.DrawFn) -> Update:
    rects = draw(st.lists(rectangles(), max_size=4))
    if draw(st.booleans()):
        rects.append((Rectangle(0, 0, 0, 0, Encoding.LAST_RECT), b""))
        header = encode_update_header(0xFFFF)
    else:
        header = encode_update_header(len(rects))
    return header + b"".join(rect.encode() + payload for rect, payload in rects), rects


server_messages = st.one_of(
    st.builds(
        SetColourMapEntries, st.integers(0, 100), st.lists(st.tuples(u16, u16, u16), max_size=20).map(tuple)
    ),
    st.just(Bell()),
    st.builds(ServerCutText, st.binary(max_size=300)),
)


def wire(item: Update | ServerMessage) -> bytes:
    return item[0] if isinstance(item, tuple) else item.encode()


@FUZZ
@given(st.lists(st.one_of(updates(), server_messages), max_size=6), cut_points)
def test_valid_server_streams_round_trip_in_any_chunking(
    items: list[Update | ServerMessage], points: list[int]
) -> None:
    stream = b"".join(wire(item) for item in items)
    expected_rects = [rect for item in items if isinstance(item, tuple) for rect in item[1]]
    expected_messages = [item for item in items if not isinstance(item, tuple)]
    events = feed(server_framer(), cut(stream, points))
    assert not any(isinstance(event, ProtocolFailed) for event in events), events[-1]
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]
    assert [(e.rect, e.payload) for e in events if isinstance(e, RectangleReceived)] == expected_rects
    assert [e.message for e in events if isinstance(e, ServerMessageReceived)] == expected_messages
    begins = sum(isinstance(event, UpdateBegin) for event in events)
    assert begins == sum(isinstance(event, UpdateEnd) for event in events)
    assert sum(isinstance(event, DesktopResized) for event in events) == sum(
        rect.encoding in (Encoding.DESKTOP_SIZE, Encoding.EXTENDED_DESKTOP_SIZE) and not (rect.x == 1 and rect.y)
        for rect, _ in expected_rects
    )


# ---------------------------------------------------------------- arbitrary bytes

MEMORY_LIMIT = 1 << 20  # far above what a few kilobytes of input may take, far below any length field


def assert_fails_only_the_documented_way(
    make: Callable[[], ClientMessageFramer | ServerMessageFramer], data: bytes, points: list[int]
) -> None:
    tracemalloc.start()
    try:
        events = feed(make(), cut(data, points))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT
    failures = [event for event in events if isinstance(event, ProtocolFailed)]
    assert failures in ([], events[-1:])
    assert all(isinstance(failure.error, ProtocolViolation) for failure in failures)
    assert data.startswith(b"".join(event.raw for event in events))  # type: ignore[attr-defined]


@FUZZ
@given(st.binary(max_size=4096), cut_points)
def test_arbitrary_bytes_never_escape_the_client_framer(data: bytes, points: list[int]) -> None:
    assert_fails_only_the_documented_way(ClientMessageFramer, data, points)


@FUZZ
@given(st.sampled_from([b"", b"\x00", b"\x00\x00\x00\x01"]), st.binary(max_size=4096), cut_points)
def test_arbitrary_bytes_never_escape_the_server_framer(prefix: bytes, data: bytes, points: list[int]) -> None:
    assert_fails_only_the_documented_way(server_framer, prefix + data, points)


@FUZZ
@given(st.lists(st.one_of(updates(), server_messages), min_size=1, max_size=3), st.data())
def test_corrupted_server_streams_never_escape(items: list[Update | ServerMessage], data: st.DataObject) -> None:
    stream = bytearray(b"".join(wire(item) for item in items))
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(u8)
    assert_fails_only_the_documented_way(server_framer, bytes(stream), data.draw(cut_points))


def drive_until_done(handshake: ClientHandshake | ServerHandshake, chunks: list[bytes]) -> list[object]:
    """Feed chunks until the handshake completes or fails, accepting the browser as soon as it may."""
    events: list[object] = []
    for chunk in chunks:
        handshake.receive_data(chunk)
        for event in handshake.events_received():
            events.append(event)
            if isinstance(event, ClientVersionReceived):
                assert isinstance(handshake, ServerHandshake)
                handshake.accept(ServerInit(FRAMEBUFFER, FRAMEBUFFER, RGBX8888, b"fuzz"))
                events += handshake.events_received()
        if handshake.state in (HandshakeState.COMPLETE, HandshakeState.FAILED):
            break
    return events


def assert_ends_the_documented_way(events: list[object]) -> None:
    endings = [event for event in events if isinstance(event, (HandshakeComplete, HandshakeFailed))]
    assert endings in ([], events[-1:])
    for ending in endings:
        if isinstance(ending, HandshakeFailed):
            assert isinstance(ending.error, (ProtocolViolation, TargetAuthFailed, TargetUnavailable))


handshake_prefixes = st.sampled_from(
    [
        b"",
        b"RFB 003.003\n",
        b"RFB 003.007\n",
        b"RFB 003.008\n",
        b"RFB 003.008\n\x01\x02",  # VNC authentication offered
        b"RFB 003.003\n\x00\x00\x00\x02",
    ]
)


@FUZZ
@given(handshake_prefixes, st.binary(max_size=512), cut_points)
def test_arbitrary_bytes_never_escape_the_client_handshake(prefix: bytes, data: bytes, points: list[int]) -> None:
    events = drive_until_done(ClientHandshake(password=b"pw"), cut(prefix + data, points))
    assert_ends_the_documented_way(events)


@FUZZ
@given(handshake_prefixes, st.binary(max_size=512), cut_points)
def test_arbitrary_bytes_never_escape_the_server_handshake(prefix: bytes, data: bytes, points: list[int]) -> None:
    handshake = ServerHandshake()
    handshake.initiate()
    events = drive_until_done(handshake, cut(prefix + data, points))
    assert_ends_the_documented_way(events)
