"""TOTP second factor (RFC 6238): enrollment, and verification with replay protection.

Codes are 6 digits over 30-second steps. A code is accepted for the current step
and ``drift_steps`` steps either side (clocks of phones drift); once a step has
been accepted for a user, that step and every earlier one are refused for that
user, so an intercepted code cannot be replayed. Which step was accepted last is
kept by a :class:`UsedCodes` (the database, so that it holds across restarts and nodes).
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
REPLAYED = "authenticator code already used"  # the audit reason of a replay


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


def svg_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI, for an ``<img>`` (no markup lands in the page)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=4))


class UsedCodes(Protocol):
    """Remembers which time step was last accepted per user (the database: see auth.totp_store)."""

    async def check_and_mark(self, username: str, step: int) -> bool:
        """True, and remember ``step``, when it is later than any accepted for ``username``."""
        ...


class TOTPVerifier:
    """Checks codes against the injected clock, within ``drift_steps`` steps, each step once per user."""

    def __init__(self, used_codes: UsedCodes, clock: Callable[[], float] = time.time, drift_steps: int = 1) -> None:
        if drift_steps < 0:
            raise ValueError("drift_steps must be 0 or more")
        self.used_codes = used_codes
        self.clock = clock
        self.drift_steps = drift_steps

    def matching_step(self, secret: str, code: str) -> int | None:
        """The time step within the drift window whose code is ``code``, or None."""
        code = code.replace(" ", "")  # apps show "123 456"; people type it that way
        if not CODE.fullmatch(code):
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        current_step = int(self.clock()) // STEP_SECONDS
        matched_step = None
        for step in range(max(0, current_step - self.drift_steps), current_step + self.drift_steps + 1):
            # compare_digest: the comparison takes the same time however many digits match
            if hmac.compare_digest(totp.generate_otp(step), code):
                matched_step = step
        return matched_step

    async def verify(self, username: str, secret: str, code: str) -> None:
        """Return if ``code`` is valid and unused for ``username``; raise :class:`InvalidTOTP` if not."""
        step = self.matching_step(secret, code)
        if step is None:
            raise InvalidTOTP()
        if not await self.used_codes.check_and_mark(username, step):
            raise InvalidTOTP(reason=REPLAYED)
