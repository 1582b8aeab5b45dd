"""ClientMessageFramer: the browser's stream, bytes in, whole messages out."""

from __future__ import annotations

import pytest

from gateway.rfb.errors import LimitExceeded, ProtocolViolation, UnsupportedEncoding
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived, ProtocolFailed, ServerMessageFramer
from gateway.rfb.messages import (
    RGBX8888,
    ClientCutText,
    ClientMessage,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Screen,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
)
from tests.rfb.helpers import events_for_every_split, feed

EVERY_CLIENT_MESSAGE: list[ClientMessage] = [
    SetPixelFormat(RGBX8888),
    SetPixelFormat(PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)),
    SetEncodings((7, 16, 5, 0, -223, -224, -239, -307, -308, -258, -26, -250)),
    SetEncodings(()),
    FramebufferUpdateRequest(True, 0, 0, 1280, 800),
    KeyEvent(True, 0xFFE3),
    KeyEvent(False, 0x61),
    PointerEvent(1, 100, 200),
    ClientCutText(b"clipboard \xe9"),
    ClientCutText(b""),
    SetDesktopSize(1920, 1080, (Screen(1, 0, 0, 1920, 1080, 0),)),
    SetDesktopSize(3840, 1080, (Screen(1, 0, 0, 1920, 1080, 0), Screen(2, 1920, 0, 1920, 1080, 7))),
    QEMUExtendedKeyEvent(True, 0x61, 0x1E),
]


@pytest.mark.parametrize("message", EVERY_CLIENT_MESSAGE, ids=lambda m: type(m).__name__)
def test_each_message_frames_the_same_in_every_split(message: ClientMessage) -> None:
    wire = message.encode()
    events = events_for_every_split(ClientMessageFramer, wire)
    assert events == [ClientMessageReceived(message, wire)]


def test_a_stream_of_every_message_reproduces_itself() -> None:
    stream = b"".join(message.encode() for message in EVERY_CLIENT_MESSAGE)
    events = feed(ClientMessageFramer(), [stream[i : i + 7] for i in range(0, len(stream), 7)])
    assert [event.message for event in events] == EVERY_CLIENT_MESSAGE  # type: ignore[attr-defined]
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]


def test_events_received_returns_each_event_once() -> None:
    framer = ClientMessageFramer()
    framer.receive_data(KeyEvent(True, 1).encode() + b"\x05")
    assert len(framer.events_received()) == 1
    assert framer.events_received() == []
    framer.receive_data(b"\x00\x00\x01\x00\x02")
    assert framer.events_received() == [ClientMessageReceived(PointerEvent(0, 1, 2), b"\x05\x00\x00\x01\x00\x02")]


def failure(events: list[object]) -> ProtocolViolation:
    assert isinstance(events[-1], ProtocolFailed)
    assert events[-1].raw == b""
    return events[-1].error


@pytest.mark.parametrize("message_type", [1, 7, 127, 150, 248, 250, 252, 253, 254])
def test_an_unknown_message_type_is_unsupported(message_type: int) -> None:
    events = feed(ClientMessageFramer(), [bytes((message_type,))])
    error = failure(events)
    assert type(error) is UnsupportedEncoding
    assert str(error) == f"client message type {message_type} is not supported"


def test_a_qemu_message_other_than_the_extended_key_event_is_unsupported() -> None:
    error = failure(feed(ClientMessageFramer(), [b"\xff\x01"]))  # QEMU audio
    assert type(error) is UnsupportedEncoding


def test_extended_clipboard_fails_on_the_length_before_any_text() -> None:
    events = feed(ClientMessageFramer(), [bytes.fromhex("06 000000 80000004")])
    assert type(failure(events)) is LimitExceeded


def test_cut_text_over_the_limit_fails_on_the_length_before_any_text() -> None:
    framer = ClientMessageFramer(max_cut_text=10)
    at_the_limit = ClientCutText(b"x" * 10)
    assert feed(framer, [at_the_limit.encode()]) == [ClientMessageReceived(at_the_limit, at_the_limit.encode())]
    error = failure(feed(framer, [bytes.fromhex("06 000000 0000000b")]))
    assert type(error) is LimitExceeded
    assert str(error) == "ClientCutText announces 11 bytes; the limit is 10"


def test_a_huge_cut_text_length_fails_at_once_with_the_default_limit() -> None:
    assert type(failure(feed(ClientMessageFramer(), [bytes.fromhex("06 000000 7fffffff")]))) is LimitExceeded


def test_too_many_encodings_fail_on_the_count() -> None:
    framer = ClientMessageFramer(max_encodings=2)
    error = failure(feed(framer, [bytes.fromhex("02 00 0003")]))
    assert type(error) is LimitExceeded
    assert str(error) == "SetEncodings announces 3 encodings; the limit is 2"


def test_too_many_screens_fail_on_the_count() -> None:
    framer = ClientMessageFramer(max_screens=1)
    error = failure(feed(framer, [bytes.fromhex("fb 00 0400 0300 02 00")]))
    assert type(error) is LimitExceeded


def test_an_unusable_pixel_format_is_a_violation() -> None:
    wire = bytes.fromhex("00 000000 20 18 00 01 0100 00ff 00ff 10 08 00 000000")  # red-max 256
    assert type(failure(feed(ClientMessageFramer(), [wire]))) is ProtocolViolation


def test_after_a_failure_the_prefix_is_kept_and_later_data_is_ignored() -> None:
    good = KeyEvent(True, 0x61).encode()
    framer = ClientMessageFramer()
    events = feed(framer, [good + b"\x09garbage"])
    assert events[0] == ClientMessageReceived(KeyEvent(True, 0x61), good)
    assert len(events) == 2 and isinstance(events[1], ProtocolFailed)
    assert b"".join(event.raw for event in events) == good  # type: ignore[attr-defined]
    framer.receive_data(good)
    assert framer.events_received() == []


@pytest.mark.parametrize("limit", [-1, 1 << 31, 1 << 32])
def test_a_cut_text_limit_that_would_let_an_extended_clipboard_length_through_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="cut-text limit"):
        ClientMessageFramer(max_cut_text=limit)
    with pytest.raises(ValueError, match="cut-text limit"):
        ServerMessageFramer(RGBX8888, 8, 8, max_cut_text=limit)
