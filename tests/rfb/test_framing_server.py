"""ServerMessageFramer: the target's stream, bytes in, updates, rectangles and messages out."""

from __future__ import annotations

from functools import partial

import pytest

from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.framing import (
    DesktopResized,
    ProtocolFailed,
    RectangleReceived,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateBegin,
    UpdateEnd,
    filter_encodings,
)
from gateway.rfb.messages import (
    COMPRESS_LEVELS,
    JPEG_QUALITY_LEVELS,
    RGBX8888,
    Bell,
    Encoding,
    PixelFormat,
    Rectangle,
    ServerCutText,
    ServerMessage,
    SetColourMapEntries,
    encode_update_header,
)
from tests.rfb.helpers import (
    compact_length,
    events_for_every_split,
    feed,
    hextile_subrect,
    u32,
    update,
)

ALL_ENCODINGS = tuple(Encoding)
RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
PIXEL = b"\x11\x22\x33\x00"  # one RGBX8888 pixel
TPIXEL = b"\x11\x22\x33"  # the same pixel as Tight sends it


def make_framer(
    pixel_format: PixelFormat = RGBX8888, width: int = 64, height: int = 64, **limits: int
) -> ServerMessageFramer:
    return ServerMessageFramer(pixel_format, width, height, encodings=ALL_ENCODINGS, **limits)  # type: ignore[arg-type]


def single_rect_events(rect: Rectangle, payload: bytes) -> list[object]:
    raw = rect.encode() + payload
    return [UpdateBegin(1, encode_update_header(1)), RectangleReceived(rect, payload, raw), UpdateEnd()]


def hextile_tile(mask: int, width: int, height: int) -> bytes:
    """A valid tile for any sub-encoding mask: the bytes each flag calls for, sub-rectangles in the corners."""
    if mask & 1:
        return bytes((mask,)) + bytes(width * height * 4)
    tile = bytes((mask,))
    if mask & 2:
        tile += PIXEL
    if mask & 4:
        tile += PIXEL
    if mask & 8:
        colour = PIXEL if mask & 16 else b""
        tile += b"\x02" + hextile_subrect(0, 0, 1, 1, colour) + hextile_subrect(width - 1, height - 1, 1, 1, colour)
    return tile


TIGHT_PAYLOADS = {
    "fill": (4, 4, b"\x80" + TPIXEL),
    "fill resetting all streams": (4, 4, b"\x8f" + TPIXEL),
    "jpeg, 1-byte length": (4, 4, b"\x90" + compact_length(5) + b"\xff\xd8JPG"),
    "jpeg, 2-byte length": (4, 4, b"\x90" + compact_length(200) + bytes(200)),
    "jpeg, 3-byte length": (4, 4, b"\x90" + compact_length(16384) + bytes(16384)),
    "basic, implicit copy filter": (4, 4, b"\x00" + compact_length(10) + bytes(10)),
    "basic, stream 2, explicit copy filter": (4, 4, b"\x60\x00" + compact_length(10) + bytes(10)),
    "basic, copy filter, under 12 bytes sent raw": (2, 1, b"\x00" + bytes(6)),
    "basic, empty rectangle": (0, 0, b"\x00"),
    "palette of 2, packed bits sent raw": (4, 4, b"\x40\x01\x01" + TPIXEL * 2 + bytes(4)),
    "palette of 2, packed bits compressed": (64, 8, b"\x50\x01\x01" + TPIXEL * 2 + compact_length(9) + bytes(9)),
    "palette of 5, byte per pixel": (4, 4, b"\x70\x01\x04" + TPIXEL * 5 + compact_length(7) + bytes(7)),
    "palette of 256": (4, 1, b"\x40\x01\xff" + TPIXEL * 256 + bytes(4)),
    "gradient filter": (4, 4, b"\x40\x02" + compact_length(20) + bytes(20)),
}


def pseudo_and_plain_rectangles() -> dict[str, tuple[Rectangle, bytes]]:
    return {
        "raw": (Rectangle(1, 2, 3, 2, Encoding.RAW), bytes(range(24))),
        "raw, empty": (Rectangle(64, 64, 0, 0, Encoding.RAW), b""),
        "copyrect": (Rectangle(10, 10, 8, 8, Encoding.COPY_RECT), bytes.fromhex("0038 0000")),
        "rre": (
            Rectangle(0, 0, 8, 8, Encoding.RRE),
            u32(2) + PIXEL
            + PIXEL + bytes.fromhex("0000 0000 0008 0001")
            + PIXEL + bytes.fromhex("0007 0000 0001 0008"),
        ),
        "rre, no sub-rectangles": (Rectangle(0, 0, 8, 8, Encoding.RRE), u32(0) + PIXEL),
        "zrle": (Rectangle(0, 0, 64, 64, Encoding.ZRLE), u32(5) + b"zlib!"),
        "cursor": (Rectangle(2, 3, 5, 2, Encoding.CURSOR), bytes(40) + b"\xf8\xf8"),
        "last rect after nothing": (Rectangle(0, 0, 0, 0, Encoding.LAST_RECT), b""),
        "desktop name": (Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), u32(4) + b"desk"),
        "qemu extended key event": (Rectangle(0, 0, 0, 0, Encoding.QEMU_EXTENDED_KEY_EVENT), b""),
        "extended desktop size, error status": (Rectangle(1, 3, 0, 0, Encoding.EXTENDED_DESKTOP_SIZE), bytes(4)),
    }


@pytest.mark.parametrize("name", list(pseudo_and_plain_rectangles()))
def test_each_encoding_frames_the_same_in_every_split(name: str) -> None:
    rect, payload = pseudo_and_plain_rectangles()[name]
    assert events_for_every_split(make_framer, update((rect, payload))) == single_rect_events(rect, payload)


@pytest.mark.parametrize("name", list(TIGHT_PAYLOADS))
def test_each_tight_variant_frames_the_same_in_every_split(name: str) -> None:
    width, height, payload = TIGHT_PAYLOADS[name]
    rect = Rectangle(0, 0, width, height, Encoding.TIGHT)
    assert events_for_every_split(make_framer, update((rect, payload))) == single_rect_events(rect, payload)


def test_tight_pixels_follow_the_pixel_format() -> None:
    rect = Rectangle(0, 0, 4, 4, Encoding.TIGHT)
    payload = b"\x80\x12\x34"  # a 16-bit fill pixel is 2 bytes, not 3
    events = events_for_every_split(partial(make_framer, RGB565), update((rect, payload)))
    assert events == single_rect_events(rect, payload)


@pytest.mark.parametrize("mask", range(32))
def test_every_hextile_mask_frames_the_same_in_every_split(mask: int) -> None:
    rect = Rectangle(3, 4, 5, 3, Encoding.HEXTILE)
    payload = hextile_tile(mask, 5, 3)
    assert events_for_every_split(make_framer, update((rect, payload))) == single_rect_events(rect, payload)


def test_hextile_tiles_run_left_to_right_then_down_with_smaller_edge_tiles() -> None:
    rect = Rectangle(0, 0, 20, 18, Encoding.HEXTILE)
    payload = (
        hextile_tile(0x01, 16, 16)
        + hextile_tile(0x02, 4, 16)
        + b"\x0e" + PIXEL + PIXEL + b"\x02" + hextile_subrect(0, 0, 16, 1) + hextile_subrect(3, 1, 2, 1)
        + b"\x18\x01" + hextile_subrect(0, 0, 4, 2, PIXEL)
    )  # fmt: skip
    events = feed(make_framer(), [update((rect, payload))])
    assert events == single_rect_events(rect, payload)


def busy_hextile_tile(width: int, height: int, pixel: bytes = b"") -> bytes:
    """255 sub-rectangles (coloured when ``pixel`` is given), the last ones touching the right and bottom edges."""
    mask = b"\x18" if pixel else b"\x08"
    subrects = [hextile_subrect(i % width, i % height, 1, 1, pixel) for i in range(253)]
    subrects += [hextile_subrect(0, height - 1, width, 1, pixel), hextile_subrect(width - 1, 0, 1, height, pixel)]
    return mask + b"\xff" + b"".join(subrects)


@pytest.mark.parametrize("pixel", [b"", PIXEL])
def test_hextile_tiles_full_of_sub_rectangles_frame_the_same_in_every_split(pixel: bytes) -> None:
    rect = Rectangle(0, 0, 17, 17, Encoding.HEXTILE)  # tiles of 16x16, 1x16, 16x1 and 1x1
    payload = b"".join(busy_hextile_tile(w, h, pixel) for w, h in [(16, 16), (1, 16), (16, 1), (1, 1)])
    assert events_for_every_split(make_framer, update((rect, payload))) == single_rect_events(rect, payload)


@pytest.mark.parametrize("pixel", [b"", PIXEL])
@pytest.mark.parametrize(
    ("x", "y", "width", "height"),
    [(15, 0, 2, 1), (0, 15, 1, 2), (8, 8, 9, 9), (0, 0, 16, 16)],
)
def test_the_first_hextile_sub_rectangle_outside_its_tile_is_named(
    pixel: bytes, x: int, y: int, width: int, height: int
) -> None:
    # The sub-rectangles of a tile are checked all at once: the error must still name the first culprit.
    tile_height = 16 if (x, y, width, height) != (0, 0, 16, 16) else 15
    subrects = [hextile_subrect(1, 1, 2, 2, pixel)] * 40 + [hextile_subrect(x, y, width, height, pixel)]
    subrects += [hextile_subrect(9, 9, 8, 8, pixel)] * 3  # outside too, but later
    tile = (b"\x18" if pixel else b"\x08") + bytes((len(subrects),)) + b"".join(subrects)
    error = failure(make_framer(), update((Rectangle(0, 0, 16, tile_height, Encoding.HEXTILE), tile)))
    assert type(error) is ProtocolViolation
    assert str(error) == (
        f"Hextile sub-rectangle {width}x{height} at ({x}, {y}) lies outside its 16x{tile_height} tile"
    )


def test_a_stream_frames_the_same_whole_in_large_chunks_and_byte_by_byte() -> None:
    # Whole rectangles are framed straight from the buffer; a split one waits and resumes.
    rectangles = [
        (Rectangle(0, 0, 40, 33, Encoding.HEXTILE), hextile_payload_for(40, 33)),
        (Rectangle(1, 2, 3, 2, Encoding.RAW), bytes(range(24))),
        (Rectangle(0, 0, 4, 4, Encoding.TIGHT), b"\x90" + compact_length(16384) + bytes(16384)),
        (Rectangle(0, 0, 64, 64, Encoding.ZRLE), u32(5) + b"zlib!"),
        (Rectangle(10, 10, 8, 8, Encoding.COPY_RECT), bytes.fromhex("0038 0000")),
    ]
    stream = (
        update(*rectangles)
        + update(rectangles[0], (Rectangle(0, 0, 0, 0, Encoding.LAST_RECT), b""), count=0xFFFF)
        + Bell().encode()
        + update(*reversed(rectangles))
    )
    whole = feed(make_framer(), [stream])
    assert [type(event) for event in whole].count(RectangleReceived) == 2 * len(rectangles) + 2
    for size in (1, 7, 1000, 65536):
        assert feed(make_framer(), [stream[i : i + size] for i in range(0, len(stream), size)]) == whole


def hextile_payload_for(width: int, height: int) -> bytes:
    """A tile of every mask in turn, left to right then down."""
    tiles = []
    for index, (tile_y, tile_x) in enumerate((y, x) for y in range(0, height, 16) for x in range(0, width, 16)):
        tiles.append(hextile_tile(index % 32, min(16, width - tile_x), min(16, height - tile_y)))
    return b"".join(tiles)


def test_server_messages_frame_the_same_in_every_split() -> None:
    colours = SetColourMapEntries(0, ((0, 0, 0), (65535, 32768, 1)))
    messages: list[ServerMessage] = [colours, Bell(), ServerCutText(b"copied"), ServerCutText(b"")]
    for message in messages:
        wire = message.encode()
        assert events_for_every_split(make_framer, wire) == [ServerMessageReceived(message, wire)]


def test_desktop_size_resizes_right_after_its_rectangle() -> None:
    resize = Rectangle(0, 0, 800, 600, Encoding.DESKTOP_SIZE)
    after = Rectangle(700, 500, 100, 100, Encoding.RAW), bytes(100 * 100 * 4)
    framer = make_framer()
    events = feed(framer, [update((resize, b""), after)])
    assert events[1:3] == [RectangleReceived(resize, b"", resize.encode()), DesktopResized(800, 600)]
    assert isinstance(events[3], RectangleReceived) and isinstance(events[4], UpdateEnd)
    assert (framer.width, framer.height) == (800, 600)


def test_extended_desktop_size_resizes_and_carries_its_screens() -> None:
    rect = Rectangle(0, 0, 1024, 768, Encoding.EXTENDED_DESKTOP_SIZE)
    payload = bytes.fromhex("01 000000  00000001 0000 0000 0400 0300 00000000")
    events = events_for_every_split(make_framer, update((rect, payload)))
    received = RectangleReceived(rect, payload, rect.encode() + payload)
    assert events[1:] == [received, DesktopResized(1024, 768), UpdateEnd()]


def test_a_refused_resize_keeps_the_size() -> None:
    framer = make_framer()
    feed(framer, [update((Rectangle(1, 1, 0, 0, Encoding.EXTENDED_DESKTOP_SIZE), bytes(4)))])
    assert (framer.width, framer.height) == (64, 64)


def test_last_rect_ends_the_update_early() -> None:
    raw_rect = Rectangle(0, 0, 1, 1, Encoding.RAW)
    last = Rectangle(0, 0, 0, 0, Encoding.LAST_RECT)
    stream = update((raw_rect, PIXEL), (last, b""), count=0xFFFF) + Bell().encode()
    events = events_for_every_split(make_framer, stream)
    assert events == [
        UpdateBegin(0xFFFF, encode_update_header(0xFFFF)),
        RectangleReceived(raw_rect, PIXEL, raw_rect.encode() + PIXEL),
        RectangleReceived(last, b"", last.encode()),
        UpdateEnd(),
        ServerMessageReceived(Bell(), b"\x02"),
    ]


def test_an_empty_update_begins_and_ends() -> None:
    assert feed(make_framer(), [encode_update_header(0)]) == [UpdateBegin(0, encode_update_header(0)), UpdateEnd()]


def test_pixel_format_changes_apply_to_later_rectangles() -> None:
    framer = make_framer()
    framer.set_pixel_format(PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0))
    rect = Rectangle(0, 0, 4, 2, Encoding.RAW)
    assert feed(framer, [update((rect, bytes(8)))]) == single_rect_events(rect, bytes(8))
    assert framer.pixel_format.bits_per_pixel == 8


def test_filter_encodings_keeps_what_can_be_framed_in_the_clients_order() -> None:
    requested = [7, 16, -312, -313, 6, 5, 0xC0A1E5CE - (1 << 32), -260, -309, 1, 0, 2, -239, -223, -224, -307, -308,
                 -258, -32, -23, -22, -256, -247, -246, 8, 15]  # fmt: skip
    assert filter_encodings(requested) == (7, 16, 5, 0xC0A1E5CE - (1 << 32), 1, 0, 2, -239, -223, -224, -307, -308,
                                           -258, -32, -23, -256, -247)  # fmt: skip
    assert set(filter_encodings(tuple(JPEG_QUALITY_LEVELS) + tuple(COMPRESS_LEVELS))) == (
        set(JPEG_QUALITY_LEVELS) | set(COMPRESS_LEVELS)
    )


# ---------------------------------------------------------------- violations


def failure(framer: ServerMessageFramer, data: bytes) -> ProtocolViolation:
    events = feed(framer, [data])
    assert isinstance(events[-1], ProtocolFailed), events
    assert not any(isinstance(event, ProtocolFailed) for event in events[:-1])
    return events[-1].error


def test_an_encoding_the_client_did_not_ask_for_is_a_violation() -> None:
    framer = ServerMessageFramer(RGBX8888, 64, 64, encodings=(Encoding.TIGHT,))
    error = failure(framer, update((Rectangle(0, 0, 1, 1, Encoding.ZRLE), u32(0))))
    assert type(error) is ProtocolViolation
    assert str(error) == "the target sent a rectangle in encoding 16, which the client did not request"


def test_raw_is_always_allowed_and_set_encodings_replaces_the_list() -> None:
    framer = ServerMessageFramer(RGBX8888, 64, 64, encodings=())
    rect = Rectangle(0, 0, 1, 1, Encoding.RAW)
    assert feed(framer, [update((rect, PIXEL))]) == single_rect_events(rect, PIXEL)
    framer.set_encodings([Encoding.COPY_RECT])
    copy = Rectangle(1, 1, 1, 1, Encoding.COPY_RECT)
    assert feed(framer, [update((copy, bytes(4)))]) == single_rect_events(copy, bytes(4))
    assert type(failure(framer, update((Rectangle(0, 0, 1, 1, Encoding.ZRLE), u32(0))))) is ProtocolViolation


def test_an_encoding_that_cannot_be_framed_is_unsupported() -> None:
    framer = ServerMessageFramer(RGBX8888, 64, 64, encodings=(6,))  # zlib: not in filter_encodings
    error = failure(framer, update((Rectangle(0, 0, 1, 1, 6), b"")))
    assert type(error) is UnsupportedEncoding
    assert str(error) == "encoding 6 is not supported"


@pytest.mark.parametrize("message_type", [4, 150, 248, 250, 255])
def test_an_unknown_server_message_is_unsupported(message_type: int) -> None:
    error = failure(make_framer(), bytes((message_type,)))
    assert type(error) is UnsupportedEncoding
    assert str(error) == f"server message type {message_type} is not supported"


@pytest.mark.parametrize(
    ("rect", "payload"),
    [
        (Rectangle(60, 0, 5, 1, Encoding.RAW), b""),
        (Rectangle(0, 64, 1, 1, Encoding.HEXTILE), b""),
        (Rectangle(0xFFFF, 0xFFFF, 2, 2, Encoding.ZRLE), b""),
        (Rectangle(0, 0, 8, 8, Encoding.COPY_RECT), bytes.fromhex("0039 0000")),
        (Rectangle(0, 0, 8, 8, Encoding.COPY_RECT), bytes.fromhex("0000 0039")),
    ],
)
def test_rectangles_outside_the_framebuffer_are_violations(rect: Rectangle, payload: bytes) -> None:
    error = failure(make_framer(), update((rect, payload)))
    assert type(error) is ProtocolViolation
    assert "outside the 64x64 framebuffer" in str(error)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (u32(65) + PIXEL, "announces 65 sub-rectangles"),
        (u32(1) + PIXEL + PIXEL + bytes.fromhex("0007 0000 0002 0001"), "outside its rectangle"),
        (u32(1) + PIXEL + PIXEL + bytes.fromhex("0000 0000 0001 0009"), "outside its rectangle"),
    ],
)
def test_rre_counts_and_sub_rectangles_are_checked(payload: bytes, expected: str) -> None:
    error = failure(make_framer(), update((Rectangle(0, 0, 8, 8, Encoding.RRE), payload)))
    assert type(error) is ProtocolViolation
    assert expected in str(error)


@pytest.mark.parametrize(
    "tile",
    [
        b"\x08\x01" + hextile_subrect(4, 0, 2, 1),  # x + w > 5
        b"\x08\x01" + hextile_subrect(0, 2, 1, 2),  # y + h > 3
        b"\x18\x01" + PIXEL + bytes((0x00, 0xF0)),  # coloured, 16 wide
        b"\x20",  # undefined bit
        b"\xff",
    ],
)
def test_hextile_sub_rectangles_and_masks_are_checked(tile: bytes) -> None:
    error = failure(make_framer(), update((Rectangle(0, 0, 5, 3, Encoding.HEXTILE), tile)))
    assert type(error) is ProtocolViolation


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        (b"\xa0", UnsupportedEncoding),  # PNG
        (b"\xb0", UnsupportedEncoding),
        (b"\xf0", UnsupportedEncoding),
        (b"\x40\x03", ProtocolViolation),  # filter 3
        (b"\x40\x01\x00", ProtocolViolation),  # palette of one colour
    ],
)
def test_tight_sub_types_that_do_not_exist_are_refused(payload: bytes, error_type: type) -> None:
    error = failure(make_framer(), update((Rectangle(0, 0, 4, 4, Encoding.TIGHT), payload)))
    assert type(error) is error_type


def test_a_zrle_length_of_0xffffffff_fails_at_once() -> None:
    error = failure(make_framer(), update((Rectangle(0, 0, 4, 4, Encoding.ZRLE), u32(0xFFFFFFFF))))
    assert type(error) is LimitExceeded
    assert str(error) == "ZRLE data of 4294967295 bytes is over the limit of 67108864 bytes"


def test_tight_compressed_lengths_are_capped_before_the_data() -> None:
    framer = make_framer(max_payload=1000)
    error = failure(framer, update((Rectangle(0, 0, 4, 4, Encoding.TIGHT), b"\x90" + compact_length(1001))))
    assert type(error) is LimitExceeded


@pytest.mark.parametrize("encoding", [Encoding.RAW, Encoding.CURSOR])
def test_computed_payloads_are_capped_before_the_data(encoding: int) -> None:
    framer = make_framer(width=16384, height=16384, max_payload=1 << 20)
    assert type(failure(framer, update((Rectangle(0, 0, 16384, 16384, encoding), b"")))) is LimitExceeded


def test_an_rre_rectangle_over_the_payload_limit_fails_on_its_count() -> None:
    framer = make_framer(max_payload=100)
    assert type(failure(framer, update((Rectangle(0, 0, 8, 8, Encoding.RRE), u32(64) + PIXEL)))) is LimitExceeded


def test_a_hextile_rectangle_over_the_payload_limit_fails_while_walking() -> None:
    framer = make_framer(max_payload=2000)
    payload = hextile_tile(1, 16, 16) * 2
    assert type(failure(framer, update((Rectangle(0, 0, 32, 16, Encoding.HEXTILE), payload)))) is LimitExceeded


def test_a_desktop_name_over_the_limit_fails_before_the_name() -> None:
    error = failure(make_framer(max_name=3), update((Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), u32(4))))
    assert type(error) is LimitExceeded


@pytest.mark.parametrize(("width", "height"), [(0, 600), (800, 0), (16385, 600), (800, 16385)])
def test_resizes_to_nothing_or_over_the_limit_are_refused(width: int, height: int) -> None:
    error = failure(make_framer(), update((Rectangle(0, 0, width, height, Encoding.DESKTOP_SIZE), b"")))
    assert type(error) is LimitExceeded


def test_server_cut_text_over_the_limit_fails_on_the_length() -> None:
    error = failure(make_framer(max_cut_text=5), bytes.fromhex("03 000000 00000006"))
    assert type(error) is LimitExceeded


def test_colour_map_entries_past_65535_are_a_violation() -> None:
    error = failure(make_framer(), bytes.fromhex("01 00 ffff 0002") + bytes(12))
    assert type(error) is ProtocolViolation


def test_after_a_failure_later_data_is_ignored_and_the_prefix_reproduces_the_stream() -> None:
    framer = make_framer()
    good = Bell().encode() + update((Rectangle(0, 0, 1, 1, Encoding.RAW), PIXEL))
    events = feed(framer, [good + update((Rectangle(0, 0, 1, 1, Encoding.ZRLE), u32(1 << 31)))])
    assert isinstance(events[-1], ProtocolFailed)
    assert b"".join(event.raw for event in events) == good + encode_update_header(1)  # type: ignore[attr-defined]
    framer.receive_data(Bell().encode())
    assert framer.events_received() == []
