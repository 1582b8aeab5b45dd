"""The proxy holds a browser to the input a person can produce (:mod:`gateway.rfb.browser_limits`)."""


from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.browser_limits import BrowserLimits
from gateway.rfb.errors import InputFlood
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.messages import (
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
)
from gateway.rfb.proxy import (
    InputActivity,
    PointerMovesDropped,
    ProxyConnection,
    ProxyFailed,
    Side,
)
from tests.rfb.proxy_helpers import SERVER_INIT, Transcript, feed

# ---------------------------------------------------------------- input at the rate of a person

LIMITS = BrowserLimits(pointer_moves_per_second=10, pointer_move_burst=5, presses_per_second=20, press_burst=8)


def moves(count: int, buttons: int = 0) -> bytes:
    return b"".join(PointerEvent(buttons, x, 7).encode() for x in range(count))


def test_pointer_moves_over_the_burst_are_dropped_neither_forwarded_nor_journaled() -> None:
    proxy = ProxyConnection(SERVER_INIT, browser_limits=LIMITS)
    transcript = feed_at(proxy, [(0.0, moves(12))])
    assert transcript.sent[Side.TARGET] == moves(5) == transcript.journal[Side.BROWSER]
    assert transcript.events == [InputActivity(), PointerMovesDropped(7)]


def test_time_refills_the_moves_at_their_rate() -> None:
    proxy = ProxyConnection(SERVER_INIT, browser_limits=LIMITS)
    transcript = feed_at(proxy, [(0.0, moves(5)), (0.0, moves(1)), (0.3, moves(5)), (100.0, moves(9))])
    # 5 at once; none more at once; 3 after 0.3 s at 10 a second; after a long pause, the burst again.
    assert transcript.sent[Side.TARGET] == moves(5) + moves(3) + moves(5)
    assert [event for event in transcript.events if isinstance(event, PointerMovesDropped)] == [
        PointerMovesDropped(1), PointerMovesDropped(2), PointerMovesDropped(4)]


def test_without_a_clock_no_time_passes() -> None:
    proxy = ProxyConnection(SERVER_INIT, browser_limits=LIMITS)
    transcript = feed(proxy, Side.BROWSER, [moves(5), moves(5)])
    assert transcript.sent[Side.TARGET] == moves(5)


def test_clicks_and_wheel_steps_pass_when_moves_are_being_dropped() -> None:
    proxy = ProxyConnection(SERVER_INIT, browser_limits=LIMITS)
    drag = PointerEvent(1, 50, 50).encode() + moves(3, buttons=1) + PointerEvent(0, 60, 60).encode()
    wheel = PointerEvent(8, 60, 60).encode() + PointerEvent(0, 60, 60).encode()
    transcript = feed_at(proxy, [(0.0, moves(9) + drag + wheel + KeyEvent(True, 0x61).encode())])
    # The press, the release, the wheel step and the key all go through; moves (the drag's too) are dropped.
    assert transcript.sent[Side.TARGET] == (moves(5) + PointerEvent(1, 50, 50).encode() + PointerEvent(0, 60, 60).encode()
                                            + wheel + KeyEvent(True, 0x61).encode())
    assert PointerMovesDropped(4 + 3) in transcript.events


def test_a_flood_of_key_or_button_events_fails_the_browser_and_forwards_nothing_past_the_limit() -> None:
    proxy = ProxyConnection(SERVER_INIT, browser_limits=LIMITS)
    keys = b"".join(KeyEvent(down, 0x61).encode() for down in (True, False) * 3)
    transcript = feed_at(proxy, [(0.0, keys), (0.0, keys)])  # 12 key events at once; the burst is 8
    assert transcript.sent[Side.TARGET] == keys + keys[: 2 * 8]  # the 8 within the burst
    (failure,) = [event for event in transcript.events if isinstance(event, ProxyFailed)]
    assert failure.side is Side.BROWSER and isinstance(failure.error, InputFlood)
    assert str(failure.error) == "key or button events faster than a person can (over 20 a second)"
    assert feed_at(proxy, [(10.0, keys)]) == Transcript()  # nothing is looked at after the failure


def test_past_the_message_budget_the_caller_is_told_to_pause_reading() -> None:
    limits = BrowserLimits(messages_per_second=100, message_burst=10)
    proxy = ProxyConnection(SERVER_INIT, browser_limits=limits)
    request = FramebufferUpdateRequest(True, 0, 0, 1, 1).encode()
    proxy.receive_browser_data(request * 10, now=0.0)
    assert proxy.browser_pause() == 0.0
    proxy.receive_browser_data(request * 20, now=0.0)  # messages of every kind count
    assert proxy.browser_pause() == 0.2
    assert proxy.data_to_send_target() == request * 30  # nothing is dropped: the caller waits before reading more
    proxy.receive_browser_data(b"", now=0.15)
    assert round(proxy.browser_pause(), 6) == 0.05
    proxy.receive_browser_data(request, now=0.2)
    assert round(proxy.browser_pause(), 6) == 0.01


def test_a_person_typing_fast_for_a_long_time_is_never_limited() -> None:
    proxy = ProxyConnection(SERVER_INIT)  # the defaults
    typing = KeyEvent(True, 0x61).encode() + KeyEvent(False, 0x61).encode()
    noVNC_moves = moves(1)
    chunks = [(step / 60, typing + noVNC_moves) for step in range(60 * 60)]  # 60 keys and moves a second, an hour
    transcript = Transcript()
    for now, chunk in chunks:
        proxy.receive_browser_data(chunk, now)
        transcript.collect(proxy)
        assert proxy.browser_pause() == 0.0
    assert transcript.sent[Side.TARGET] == (typing + noVNC_moves) * len(chunks)
    assert not [event for event in transcript.events if isinstance(event, (ProxyFailed, PointerMovesDropped))]


def test_a_barcode_scanner_typing_a_long_code_at_once_is_not_a_flood() -> None:
    proxy = ProxyConnection(SERVER_INIT)
    scan = b"".join(KeyEvent(down, 0x30 + digit % 10).encode() for digit in range(400) for down in (True, False))
    transcript = feed_at(proxy, [(0.0, scan)])
    assert transcript.sent[Side.TARGET] == scan


inputs = st.lists(
    st.tuples(
        st.floats(0, 0.5),
        st.lists(st.one_of(st.builds(PointerEvent, st.integers(0, 3), st.integers(0, 99), st.integers(0, 99)),
                           st.builds(KeyEvent, st.booleans(), st.integers(0, 0xFFFF))), max_size=40),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_presses_are_never_dropped_and_moves_never_exceed_their_budget(
    chunks: list[tuple[float, list[PointerEvent | KeyEvent]]]
) -> None:
    limits = BrowserLimits(pointer_moves_per_second=20, pointer_move_burst=10, presses_per_second=1e6,
                           press_burst=10**6)
    proxy = ProxyConnection(SERVER_INIT, browser_limits=limits)
    now, timed = 0.0, []
    for elapsed, messages in chunks:
        now += elapsed
        timed.append((now, b"".join(message.encode() for message in messages)))
    transcript = feed_at(proxy, timed)
    framer = ClientMessageFramer()
    framer.receive_data(transcript.sent[Side.TARGET])
    forwarded = [event.message for event in framer.events_received() if isinstance(event, ClientMessageReceived)]
    sent_presses, sent_moves = presses_and_moves([message for _, messages in chunks for message in messages])
    forwarded_presses, forwarded_moves = presses_and_moves(forwarded)
    assert forwarded_presses == sent_presses  # every key and every change of the buttons, in order
    assert len(forwarded_moves) <= 10 + 20 * now + 1e-6
    dropped = sum(event.count for event in transcript.events if isinstance(event, PointerMovesDropped))
    assert len(forwarded_moves) + dropped == len(sent_moves)
    assert transcript.journal[Side.BROWSER] == transcript.sent[Side.TARGET]


def presses_and_moves(messages: Sequence[object]) -> tuple[list[object], list[object]]:
    """Key events and pointer events that change the buttons; pointer events that only move."""
    buttons, presses, moves = 0, [], []
    for message in messages:
        if isinstance(message, PointerEvent) and message.button_mask == buttons:
            moves.append(message)
        else:
            presses.append(message)
            if isinstance(message, PointerEvent):
                buttons = message.button_mask
    return presses, moves


def feed_at(proxy: ProxyConnection, chunks: Sequence[tuple[float, bytes]]) -> Transcript:
    """Feed the browser's chunks, each at its time on the caller's clock."""
    transcript = Transcript()
    for now, chunk in chunks:
        proxy.receive_browser_data(chunk, now)
        transcript.collect(proxy)
    return transcript
