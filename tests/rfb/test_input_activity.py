"""What counts as a person's activity: the tracker's rule, and the proxy's InputActivity that follows it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.rfb.input_presses import MAX_HELD_KEYS, InputActivityTracker
from gateway.rfb.messages import (
    ClientMessage,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    QEMUExtendedKeyEvent,
)
from gateway.rfb.proxy import InputActivity, ProxyConnection
from tests.rfb.proxy_helpers import SERVER_INIT


def activity(messages: list[ClientMessage]) -> list[bool]:
    tracker = InputActivityTracker()
    return [tracker.is_activity(message) for message in messages]


def test_pointer_events_count_only_when_they_move_or_change_buttons() -> None:
    assert activity([PointerEvent(0, 5, 5), PointerEvent(0, 5, 5), PointerEvent(0, 5, 5),
                     PointerEvent(1, 5, 5), PointerEvent(1, 5, 5), PointerEvent(0, 5, 5),
                     PointerEvent(0, 6, 5), PointerEvent(0, 6, 5)]) == [
        True, False, False, True, False, True, True, False]


def test_key_repeats_do_not_count_until_the_key_is_released() -> None:
    a_down, a_up, b_down = KeyEvent(True, 0x61), KeyEvent(False, 0x61), KeyEvent(True, 0x62)
    assert activity([a_down, a_down, a_down, b_down, a_down, a_up, a_down]) == [
        True, False, False, True, False, True, True]


def test_extended_key_events_are_told_apart_by_keycode() -> None:
    shift_left, shift_right = QEMUExtendedKeyEvent(True, 0xFFE1, 0x2A), QEMUExtendedKeyEvent(True, 0xFFE1, 0x36)
    assert activity([shift_left, shift_left, shift_right, QEMUExtendedKeyEvent(False, 0xFFE1, 0x2A), shift_left]) == [
        True, False, True, True, True]


def test_other_messages_are_never_activity() -> None:
    assert activity([FramebufferUpdateRequest(True, 0, 0, 10, 10)]) == [False]


def test_held_keys_are_bounded() -> None:
    tracker = InputActivityTracker()
    for key in range(10 * MAX_HELD_KEYS):  # never released
        assert tracker.is_activity(KeyEvent(True, key))
    assert len(tracker._held) <= MAX_HELD_KEYS


input_messages = st.one_of(
    st.builds(PointerEvent, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.builds(KeyEvent, st.booleans(), st.integers(0, 3)),
)


@given(st.lists(input_messages, max_size=40))
def test_tracker_matches_the_rule(messages: list[ClientMessage]) -> None:
    """A model of the rule: activity unless the pointer is unchanged, or a key-down comes for a key still down."""
    pointer = None
    held: set[int] = set()
    expected = []
    for message in messages:
        if isinstance(message, PointerEvent):
            state = (message.button_mask, message.x, message.y)
            expected.append(state != pointer)
            pointer = state
        else:
            assert isinstance(message, KeyEvent)
            expected.append(not (message.down and message.key in held))
            (held.add if message.down else held.discard)(message.key)
    assert activity(messages) == expected


def active_chunks(chunks: list[bytes]) -> list[bool]:
    """For each chunk fed to a proxy, whether it reported InputActivity (each chunk fed at a new time)."""
    proxy = ProxyConnection(SERVER_INIT)
    reported = []
    for step, chunk in enumerate(chunks):
        proxy.receive_browser_data(chunk, now=float(step))
        reported.append(any(isinstance(event, InputActivity) for event in proxy.events_received()))
    return reported


def test_proxy_reports_no_activity_for_a_jiggle_in_place_or_a_key_repeat() -> None:
    assert active_chunks([
        PointerEvent(0, 40, 30).encode(),
        PointerEvent(0, 40, 30).encode() * 3,  # the same position, the same buttons
        KeyEvent(True, 0x61).encode(),
        KeyEvent(True, 0x61).encode() * 5,  # auto-repeat
        KeyEvent(False, 0x61).encode(),
        PointerEvent(0, 41, 30).encode(),
    ]) == [True, False, True, False, True, True]


@given(st.lists(input_messages, min_size=1, max_size=30), st.integers(1, 6))
def test_proxy_activity_does_not_depend_on_how_the_input_is_cut(messages: list[ClientMessage], size: int) -> None:
    """A chunk is active exactly when one of its messages is, whatever the chunking."""
    tracker = InputActivityTracker()
    flags = [tracker.is_activity(message) for message in messages]
    chunks = [messages[i:i + size] for i in range(0, len(messages), size)]
    expected = [any(flags[i:i + size]) for i in range(0, len(messages), size)]
    assert active_chunks([b"".join(message.encode() for message in chunk) for chunk in chunks]) == expected
