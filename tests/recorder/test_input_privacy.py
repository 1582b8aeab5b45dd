"""Keys kept only as far as privacy allows: card numbers and keys typed into a masked field become counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived
from gateway.rfb.messages import ClientMessage, KeyEvent, PointerEvent, QEMUExtendedKeyEvent, SetEncodings
from recorder.input_privacy import MAX_RUN_DIGITS, JournalOutput, KeysCounted, KeystrokeFilter, luhn_valid
from recorder.masking import MaskRegion

CARD = "4111111111111111"
FIELD = MaskRegion(100, 100, 200, 30, "card number")


def keys(text: str) -> list[ClientMessage]:
    return [KeyEvent(down, ord(char)) for char in text for down in (True, False)]


def encode(*messages: ClientMessage) -> bytes:
    return b"".join(message.encode() for message in messages)


def feed(tracker: KeystrokeFilter, data: bytes) -> list[JournalOutput]:
    """``data`` (whole messages) framed as the proxy frames it, then fed."""
    framer = ClientMessageFramer()
    framer.receive_data(data)
    return tracker.feed(event for event in framer.events_received() if isinstance(event, ClientMessageReceived))


def journaled(outputs: list[JournalOutput]) -> tuple[bytes, int]:
    data = b"".join(output for output in outputs if isinstance(output, bytes))
    return data, sum(output.count for output in outputs if isinstance(output, KeysCounted))


@pytest.mark.parametrize(("number", "valid"), [(CARD, True), ("4111111111111112", False), ("79927398713", True),
                                                ("5500005555555559", True), ("0", True), ("1", False)])
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid([int(digit) for digit in number]) is valid


def test_a_card_number_typed_in_one_run_is_counted_not_kept() -> None:
    tracker = KeystrokeFilter()
    data, counted = journaled(feed(tracker, encode(*keys("ab" + CARD + "\r"))))
    assert data == encode(*keys("ab"), *keys("\r")) and counted == len(CARD)


def test_spaces_hyphens_and_shift_do_not_end_a_run() -> None:
    tracker = KeystrokeFilter()
    typed = [*keys("4111 1111-1111 "), KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1), *keys("1111"), *keys("x")]
    data, counted = journaled(feed(tracker, encode(*typed)))
    assert data == encode(*keys("x")) and counted == len("4111 1111-1111 1111") + 1  # every press, shift too


def test_other_digit_runs_are_kept_in_order_with_what_came_during_them() -> None:
    tracker = KeystrokeFilter()
    messages = [*keys("12"), PointerEvent(0, 5, 5), *keys("345\t")]
    out = feed(tracker, encode(*messages[:3])) + feed(tracker, encode(*messages[3:]))
    assert journaled(out) == (encode(*messages), 0)


def test_a_run_split_over_feeds_and_ended_by_a_click_or_the_session() -> None:
    tracker = KeystrokeFilter()
    assert feed(tracker, encode(*keys(CARD[:8]))) == []  # held: the run has not ended
    assert journaled(feed(tracker, encode(*keys(CARD[8:]), PointerEvent(1, 5, 5)))) == (encode(PointerEvent(1, 5, 5)),
                                                                                        len(CARD))
    feed(tracker, encode(*keys(CARD)))
    assert journaled(tracker.finish()) == (b"", len(CARD))


def test_more_digits_than_a_card_has_are_released_at_once() -> None:
    tracker = KeystrokeFilter()
    typed = encode(*keys("1" * (MAX_RUN_DIGITS + 1)))
    assert journaled(feed(tracker, typed)) == (typed, 0)
    assert tracker.finish() == []


def test_keys_after_a_click_in_a_masked_field_are_counted_until_a_click_elsewhere() -> None:
    tracker = KeystrokeFilter([FIELD])
    click_in, click_out = [PointerEvent(1, 150, 110), PointerEvent(0, 150, 110)], [PointerEvent(1, 5, 5)]
    data, counted = journaled(feed(tracker, encode(*click_in, *keys("secret"), QEMUExtendedKeyEvent(True, 0x61, 30),
                                                  *click_out, *keys("ok"))))
    assert counted == len("secret") + 1
    assert data == encode(*click_in, *click_out, *keys("ok"))


def test_other_messages_pass_unchanged() -> None:
    tracker = KeystrokeFilter([FIELD])
    data = encode(SetEncodings((16, 0)), PointerEvent(0, 150, 110))
    assert journaled(feed(tracker, data)) == (data, 0)


@given(st.lists(st.sampled_from([*keys("0123456789 -ax"), PointerEvent(1, 150, 110), PointerEvent(0, 1, 1),
                                 PointerEvent(1, 1, 1)]), max_size=60))
def test_nothing_is_lost_reordered_or_duplicated(messages: list[ClientMessage]) -> None:
    """Whatever is typed, the journal keeps the input in order less some key events, and counts their presses."""
    tracker = KeystrokeFilter([FIELD])
    out = feed(tracker, encode(*messages)) + tracker.finish()
    kept, counted = journaled(out)
    framer = ClientMessageFramer()
    framer.receive_data(kept)
    kept_messages = [event.message for event in framer.events_received() if isinstance(event, ClientMessageReceived)]
    remaining = iter(messages)
    dropped = []
    for message in kept_messages:  # a subsequence of the input...
        while (candidate := next(remaining)) != message:
            dropped.append(candidate)
    dropped.extend(remaining)
    assert all(isinstance(message, KeyEvent) for message in dropped)  # ...that lacks only key events,
    assert counted == sum(message.down for message in dropped)  # whose presses are counted


@given(st.lists(st.sampled_from([*keys("0123456789 -ax"), PointerEvent(1, 150, 110), PointerEvent(0, 1, 1),
                                 PointerEvent(1, 1, 1)]), max_size=60),
       st.lists(st.integers(0, 60), max_size=4))
def test_messages_as_the_proxy_framed_them_journal_as_their_bytes_do(messages: list[ClientMessage],
                                                                      cuts: list[int]) -> None:
    """Messages fed in any chunks journal as their bytes, framed as the proxy frames them, do."""
    from_bytes, from_messages = KeystrokeFilter([FIELD]), KeystrokeFilter([FIELD])
    bounds = [0, *sorted(min(cut, len(messages)) for cut in cuts), len(messages)]
    for start, end in zip(bounds, bounds[1:]):
        chunk = messages[start:end]
        framed = [ClientMessageReceived(message, message.encode()) for message in chunk]
        assert from_messages.feed(framed) == feed(from_bytes, encode(*chunk))
    assert from_messages.finish() == from_bytes.finish()
