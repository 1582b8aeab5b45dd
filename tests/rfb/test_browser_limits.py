"""BrowserLimits and the token bucket behind them: what a browser may send, on the caller's clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.browser_limits import MAX_BROWSER_CUT_TEXT, BrowserLimits, TokenBucket
from gateway.rfb.errors import LimitExceeded
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived, ProtocolFailed
from gateway.rfb.messages import ClientCutText, Screen, SetDesktopSize, SetEncodings


def test_a_bucket_gives_its_burst_at_once_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    bucket.refill(100.0)  # the first reading of the clock earns nothing: the bucket starts full
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    bucket.refill(100.25)  # a quarter of a second at 10 a second: 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    bucket.refill(1000.0)  # a long pause refills up to the burst, no more
    assert sum(bucket.take() for _ in range(10)) == 3


def test_a_clock_going_back_earns_nothing_and_is_not_held_against_the_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    bucket.refill(5.0)
    assert bucket.take()
    bucket.refill(4.0)
    assert not bucket.take()
    bucket.refill(5.2)  # earns from the latest reading that moved forward, 5.0: two tenths of a second
    assert bucket.take()


def test_spending_more_than_there_is_runs_a_debt_the_rate_pays_back() -> None:
    bucket = TokenBucket(rate=100, burst=10)
    bucket.refill(0.0)
    assert bucket.debt_seconds() == 0.0
    bucket.spend(30)
    assert bucket.debt_seconds() == 0.2 and not bucket.take()
    bucket.refill(0.1)
    assert bucket.debt_seconds() == 0.1
    bucket.refill(0.2)
    assert bucket.debt_seconds() == 0.0 and not bucket.take()  # back to zero, not yet a token
    bucket.refill(0.25)
    assert bucket.take()


def test_a_message_budget_must_refill() -> None:
    with pytest.raises(ValueError, match="messages_per_second must be above 0"):
        BrowserLimits(messages_per_second=0)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.5, 1000),
    burst=st.integers(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 2), st.integers(0, 50)), max_size=40),
)
def test_a_bucket_never_gives_more_than_its_burst_plus_its_rate_over_the_time(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate, burst)
    now, given_out = 0.0, 0
    bucket.refill(now)
    for elapsed, wanted in steps:
        now += elapsed
        bucket.refill(now)
        given_out += sum(bucket.take() for _ in range(wanted))
        assert given_out <= burst + rate * now + 1e-6


def test_the_largest_message_is_a_cut_text_at_the_limit() -> None:
    assert BrowserLimits().largest_message == 8 + MAX_BROWSER_CUT_TEXT == 1_048_584
    assert BrowserLimits(max_cut_text=1000).largest_message == 1008


def test_every_message_the_framer_accepts_fits_the_largest_message() -> None:
    limits = BrowserLimits(max_cut_text=300)
    framer = ClientMessageFramer(max_cut_text=limits.max_cut_text)  # its own limits for encodings and screens
    longest = (
        ClientCutText(bytes(300)).encode(),
        SetEncodings(tuple(range(64))).encode(),
        SetDesktopSize(100, 100, tuple(Screen(i, 0, 0, 100, 100, 0) for i in range(16))).encode(),
    )
    framer.receive_data(b"".join(longest))
    events = framer.events_received()
    assert all(isinstance(event, ClientMessageReceived) for event in events) and len(events) == 3
    assert max(len(message) for message in longest) <= limits.largest_message

    framer.receive_data(ClientCutText(bytes(301)).encode())
    (failed,) = framer.events_received()
    assert isinstance(failed, ProtocolFailed) and isinstance(failed.error, LimitExceeded)
