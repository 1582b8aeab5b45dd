"""TOTP second factor (RFC 6238): enrollment, and verification with replay protection.

Codes are 6 digits over 30-second steps. A code is accepted for the current step
and ``drift_steps`` steps either side (clocks of phones drift); once a step has
been accepted for a user, that step and every earlier one are refused for that
user, so an intercepted code cannot be replayed.
"""

from __future__ import annotations

import hmac
import io
import re
import time
from collections.abc import Callable
from typing import Protocol

import pyotp
import segno

from auth.errors import InvalidTOTP

DIGITS = 6
STEP_SECONDS = 30
CODE = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app enrolls from (it contains ``secret=``)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=issuer
    )


def terminal_qr(uri: str) -> str:
    """The QR code of ``uri`` drawn with half-block characters, for printing on a terminal."""
    buffer = io.StringIO()
    segno.make(uri, error="m").terminal(out=buffer, compact=True)
    return buffer.getvalue()


class UsedCodes(Protocol):
    """Remembers which time step was last accepted per user (in memory now; a database later)."""

    def check_and_mark(self, username: str, step: int) -> bool:
        """True, and remember ``step``, when it is later than any accepted for ``username``."""
        ...


class InMemoryUsedCodes:
    """:class:`UsedCodes` for one process: the last accepted step per user."""

    def __init__(self) -> None:
        self._last_step: dict[str, int] = {}

    def check_and_mark(self, username: str, step: int) -> bool:
        if step <= self._last_step.get(username, -1):
            return False
        self._last_step[username] = step
        return True


class TOTPVerifier:
    """Checks codes against the injected clock, within ``drift_steps`` steps, each step once."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        drift_steps: int = 1,
        used_codes: UsedCodes | None = None,
    ) -> None:
        if drift_steps < 0:
            raise ValueError("drift_steps must be 0 or more")
        self.clock = clock
        self.drift_steps = drift_steps
        self.used_codes: UsedCodes = used_codes if used_codes is not None else InMemoryUsedCodes()

    def verify(self, username: str, secret: str, code: str) -> None:
        """Return if ``code`` is valid and unused for ``username``; raise :class:`InvalidTOTP` if not."""
        code = code.replace(" ", "")  # apps show "123 456"; people type it that way
        if not CODE.fullmatch(code):
            raise InvalidTOTP()
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        current_step = int(self.clock()) // STEP_SECONDS
        matched_step = None
        for step in range(max(0, current_step - self.drift_steps), current_step + self.drift_steps + 1):
            # compare_digest: the comparison takes the same time however many digits match
            if hmac.compare_digest(totp.generate_otp(step), code):
                matched_step = step
        if matched_step is None or not self.used_codes.check_and_mark(username, matched_step):
            raise InvalidTOTP()
