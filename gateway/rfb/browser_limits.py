"""What one browser may send: the largest message, and messages at the rate a person makes them.

A person moves a mouse, clicks and types; nobody produces hundreds of thousands of events
a second. The proxy (:mod:`gateway.rfb.proxy`) holds each browser to :class:`BrowserLimits`
with :class:`TokenBucket` s refilled from a clock value its caller passes in (the core
keeps no time):

- **messages** of any kind cost the gateway CPU to frame, however small: past the budget
  the proxy tells its caller to stop reading the browser for a while
  (:meth:`~gateway.rfb.proxy.ProxyConnection.browser_pause`), so a flood costs the
  gateway at most that many messages a second and slows only the flooding browser, whose
  data waits in its own socket. noVNC sends at most a few hundred a second;
- **pointer moves** (a PointerEvent whose buttons are those of the one before) over the
  limit are dropped: a later move or click carries the pointer's position anyway, and
  noVNC sends at most one move every 17 ms (about 60 a second), so an operator never
  reaches the default of 120 a second;
- **presses** (key events, and pointer events that change the buttons: clicks, wheel
  steps, drags' ends) are never dropped — a lost key release leaves a key held down on
  the desktop — so a browser that sends more than a person can ends its session with
  :class:`~gateway.rfb.errors.InputFlood`. The defaults leave room for key auto-repeat,
  fast scrolling and barcode scanners that type like a keyboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.rfb.messages import ClientCutText

#: The longest clipboard text a browser may send in one ClientCutText (RFC 6143 §7.5.6).
MAX_BROWSER_CUT_TEXT = 1 << 20


@dataclass(frozen=True, slots=True)
class BrowserLimits:
    """Limits on what one browser sends after the handshake; the defaults are safe."""

    max_cut_text: int = MAX_BROWSER_CUT_TEXT
    messages_per_second: float = 1000.0
    message_burst: int = 1000
    pointer_moves_per_second: float = 120.0
    pointer_move_burst: int = 240
    presses_per_second: float = 200.0
    press_burst: int = 2000

    def __post_init__(self) -> None:
        if self.messages_per_second <= 0:
            raise ValueError(f"messages_per_second must be above 0, not {self.messages_per_second}")

    @property
    def largest_message(self) -> int:
        """The longest legitimate client message: a ClientCutText of ``max_cut_text`` bytes.

        The gateway caps the browser's WebSocket messages at this size. Every other client
        message is far shorter within the framer's limits (SetEncodings of 64 encodings: 260
        bytes; SetDesktopSize of 16 screens: 264), and noVNC flushes what it sends every
        10 KiB, so it never comes near the cap.
        """
        return ClientCutText.HEADER.size + self.max_cut_text


class TokenBucket:
    """Up to ``burst`` events at once, then ``rate`` a second of the caller's clock."""

    __slots__ = ("_burst", "_rate", "_updated", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._updated: float | None = None
        self.tokens = float(burst)

    def refill(self, now: float) -> None:
        """Add what ``now`` (seconds, monotonic) earned since the last refill; a clock going back earns nothing."""
        updated = self._updated
        if updated is None or now > updated:
            if updated is not None:
                self.tokens = min(self._burst, self.tokens + (now - updated) * self._rate)
            self._updated = now

    def take(self) -> bool:
        """Spend one token; ``False`` when there is none left."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def spend(self, count: int) -> None:
        """Spend ``count`` tokens, going into debt if there are fewer."""
        self.tokens -= count

    def debt_seconds(self) -> float:
        """How long the rate takes to pay back the debt (0.0 without one)."""
        return -self.tokens / self._rate if self.tokens < 0 else 0.0
