"""Every message's wire form, byte for byte (RFC 6143 §7.5–7.6 and rfbproto extensions)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation
from gateway.rfb.messages import (
    RGBX8888,
    Bell,
    ClientCutText,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Screen,
    ServerCutText,
    ServerInit,
    SetColourMapEntries,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    encode_update_header,
)

RGBX8888_WIRE = "20 18 00 01 00ff 00ff 00ff 10 08 00 000000"

GOLDEN = [
    (SetPixelFormat(RGBX8888), "00 000000" + RGBX8888_WIRE),
    (SetEncodings((0, 7, -223)), "02 00 0003 00000000 00000007 ffffff21"),
    (SetEncodings(()), "02 00 0000"),
    (FramebufferUpdateRequest(True, 1, 2, 640, 480), "03 01 0001 0002 0280 01e0"),
    (FramebufferUpdateRequest(False, 0, 0, 0xFFFF, 0xFFFF), "03 00 0000 0000 ffff ffff"),
    (KeyEvent(True, 0xFF0D), "04 01 0000 0000ff0d"),
    (KeyEvent(False, 0x61), "04 00 0000 00000061"),
    (PointerEvent(5, 10, 20), "05 05 000a 0014"),
    (ClientCutText(b"hi"), "06 000000 00000002 6869"),
    (ClientCutText(b""), "06 000000 00000000"),
    (
        SetDesktopSize(1024, 768, (Screen(1, 0, 0, 1024, 768, 0),)),
        "fb 00 0400 0300 01 00  00000001 0000 0000 0400 0300 00000000",
    ),
    (QEMUExtendedKeyEvent(True, 0x61, 0x1E), "ff 00 0001 00000061 0000001e"),
    (ServerInit(640, 480, RGBX8888, b"desk"), "0280 01e0" + RGBX8888_WIRE + "00000004 6465736b"),
    (SetColourMapEntries(5, ((0xFFFF, 0, 0x8000),)), "01 00 0005 0001 ffff 0000 8000"),
    (ServerCutText(b"x"), "03 000000 00000001 78"),
]


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=lambda value: type(value).__name__)
def test_encode_is_golden(message: object, wire: str) -> None:
    assert message.encode() == bytes.fromhex(wire)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=lambda value: type(value).__name__)
def test_parse_inverts_encode(message: object, wire: str) -> None:
    assert type(message).parse(bytes.fromhex(wire)) == message  # type: ignore[attr-defined]


def test_bell_and_update_header_are_golden() -> None:
    assert Bell().encode() == b"\x02"
    assert encode_update_header(2) == bytes.fromhex("00 00 0002")
    assert encode_update_header(0xFFFF) == bytes.fromhex("00 00 ffff")


def test_flags_parse_any_nonzero_byte_as_true() -> None:
    assert FramebufferUpdateRequest.parse(bytes.fromhex("03 07 0000 0000 0001 0001")).incremental is True
    assert KeyEvent.parse(bytes.fromhex("04 ff 0000 00000061")).down is True


@pytest.mark.parametrize(
    "build",
    [
        lambda: KeyEvent(True, -1),
        lambda: KeyEvent(True, 1 << 32),
        lambda: PointerEvent(256, 0, 0),
        lambda: PointerEvent(0, 65536, 0),
        lambda: FramebufferUpdateRequest(False, 0, 0, 70000, 1),
        lambda: SetEncodings((1 << 31,)),
        lambda: SetEncodings(tuple(range(65536))),
        lambda: Screen(-1, 0, 0, 1, 1, 0),
        lambda: SetDesktopSize(1, 1, (Screen(0, 0, 0, 1, 1, 0),) * 256),
        lambda: QEMUExtendedKeyEvent(True, 0, 1 << 32),
        lambda: ServerInit(65536, 1, RGBX8888, b""),
        lambda: SetColourMapEntries(65535, ((0, 0, 0), (0, 0, 0))),
        lambda: SetColourMapEntries(0, ((0, 0, 65536),)),
        lambda: encode_update_header(65536),
        lambda: PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0),
        lambda: PixelFormat(16, 24, False, True, 255, 255, 255, 16, 8, 0),
        lambda: PixelFormat(16, 16, False, True, 31, 64, 31, 11, 5, 0),
    ],
)
def test_building_a_message_with_values_that_do_not_fit_the_wire_is_our_bug(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_the_last_colour_map_entry_can_be_set() -> None:
    assert SetColourMapEntries(65535, ((1, 2, 3),)).first_colour == 65535


@pytest.mark.parametrize(
    ("parse", "wire"),
    [
        (KeyEvent.parse, "04 01 0000 000000"),
        (SetPixelFormat.parse, "00 000000 2018"),
        (SetEncodings.parse, "02 00 0002 00000000"),
        (ClientCutText.parse, "06 000000"),
        (ServerCutText.parse, "03 000000 00000005 6869"),
        (SetDesktopSize.parse, "fb 00 0400 0300 01 00"),
        (SetColourMapEntries.parse, "01 00 0000 0001 ffff"),
        (QEMUExtendedKeyEvent.parse, "ff 01 0001 00000061 0000001e"),
        (SetColourMapEntries.parse, "01 00 ffff 0002 0000 0000 0000 0000 0000 0000"),  # past entry 65535
        (PixelFormat.parse, "20 18 00 01 00ff 00ff 00ff 10 08 00 00"),  # 15 bytes
    ],
)
def test_parse_refuses_malformed_bytes(parse: object, wire: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse(bytes.fromhex(wire))  # type: ignore[operator]


def test_set_pixel_format_refuses_an_unusable_pixel_format() -> None:
    bad = "00 000000" + "18 18 00 01 00ff 00ff 00ff 10 08 00 000000"  # 24 bits per pixel
    with pytest.raises(ProtocolViolation, match="bits-per-pixel"):
        SetPixelFormat.parse(bytes.fromhex(bad))


def test_a_peers_value_that_construction_refuses_is_the_peers_violation() -> None:
    wire = bytes.fromhex("01 00 fffe 0003" + "0000" * 9)  # colours 65534..65536: one past the map
    with pytest.raises(LocalProtocolError):
        SetColourMapEntries(0xFFFE, ((0, 0, 0),) * 3)
    with pytest.raises(ProtocolViolation, match="last colour") as refused:
        SetColourMapEntries.parse(wire)
    assert not isinstance(refused.value, LocalProtocolError)


def test_messages_are_frozen_and_slotted() -> None:
    message = KeyEvent(True, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.key = 2  # type: ignore[misc]
    assert not hasattr(message, "__dict__")
    assert PixelFormat.parse(RGBX8888.encode()) == RGBX8888
