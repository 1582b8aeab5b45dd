"""TOTP verification (RFC 6238): the drift window, one use per step, enrollment URI and QR codes."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from auth.errors import InvalidTOTP
from auth.totp import (
    REPLAYED,
    TOTPVerifier,
    new_secret,
    provisioning_uri,
    svg_data_uri,
    terminal_qr,
)

# RFC 6238 appendix B: the SHA-1 test secret "12345678901234567890", base32-encoded.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
NOW = 1_111_111_109.0  # RFC 6238 test time; 8-digit code 07081804, so 6-digit code 081804
STEP = 30


class LastStep:
    """:class:`~auth.totp.UsedCodes` in a dict (the database one is tested in test_totp_store)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.calls: list[tuple[str, int]] = []

    async def check_and_mark(self, username: str, step: int) -> bool:
        self.calls.append((username, step))
        if step <= self.last.get(username, -1):
            return False
        self.last[username] = step
        return True


def code_at(offset_steps: int, secret: str = RFC_SECRET) -> str:
    return pyotp.TOTP(secret).at(NOW + offset_steps * STEP)


def verifier(now: float = NOW, drift_steps: int = 1) -> TOTPVerifier:
    return TOTPVerifier(LastStep(), clock=lambda: now, drift_steps=drift_steps)


async def test_rfc_6238_vector() -> None:
    await verifier().verify("alice", RFC_SECRET, "081804")


@pytest.mark.parametrize("offset", [-1, 0, 1])
async def test_current_and_neighbouring_steps_are_accepted(offset: int) -> None:
    await verifier().verify("alice", RFC_SECRET, code_at(offset))


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
async def test_codes_two_steps_away_are_refused(offset: int) -> None:
    with pytest.raises(InvalidTOTP, match="wrong or expired authenticator code") as refused:
        await verifier().verify("alice", RFC_SECRET, code_at(offset))
    assert refused.value.reason == "wrong authenticator code"


async def test_drift_window_is_configurable() -> None:
    with pytest.raises(InvalidTOTP):
        await verifier(drift_steps=0).verify("alice", RFC_SECRET, code_at(1))
    await verifier(drift_steps=2).verify("alice", RFC_SECRET, code_at(2))
    with pytest.raises(ValueError):
        verifier(drift_steps=-1)


async def test_a_code_is_accepted_once_per_user_and_a_replay_says_so() -> None:
    totp = verifier()
    code = code_at(0)
    await totp.verify("alice", RFC_SECRET, code)
    with pytest.raises(InvalidTOTP) as replayed:
        await totp.verify("alice", RFC_SECRET, code)
    assert replayed.value.reason == REPLAYED
    assert str(replayed.value) == "wrong or expired authenticator code"  # the person is told no more
    await totp.verify("bob", RFC_SECRET, code)  # another user's counter is separate


async def test_after_a_newer_step_older_steps_are_refused() -> None:
    totp = verifier()
    await totp.verify("alice", RFC_SECRET, code_at(1))
    for offset in (0, -1):
        with pytest.raises(InvalidTOTP):
            await totp.verify("alice", RFC_SECRET, code_at(offset))


async def test_next_step_is_accepted_after_time_moves_on() -> None:
    now = [NOW]
    totp = TOTPVerifier(LastStep(), clock=lambda: now[0])
    await totp.verify("alice", RFC_SECRET, code_at(0))
    now[0] += STEP
    await totp.verify("alice", RFC_SECRET, code_at(1))


async def test_a_wrong_code_does_not_use_up_a_step() -> None:
    used = LastStep()
    totp = TOTPVerifier(used, clock=lambda: NOW)
    with pytest.raises(InvalidTOTP):
        await totp.verify("alice", RFC_SECRET, code_at(5))
    assert used.calls == []
    await totp.verify("alice", RFC_SECRET, code_at(0))
    assert used.calls == [("alice", int(NOW) // STEP)]


@pytest.mark.parametrize("code", ["", "81804", "0081804", "08180a", "081804\n0", "٠٨١٨٠٤", "+81804"])
async def test_codes_must_be_six_ascii_digits(code: str) -> None:
    with pytest.raises(InvalidTOTP):
        await verifier().verify("alice", RFC_SECRET, code)


async def test_a_space_in_the_middle_is_tolerated() -> None:
    await verifier().verify("alice", RFC_SECRET, "081 804")


def test_matching_step_names_the_step() -> None:
    assert verifier().matching_step(RFC_SECRET, code_at(-1)) == int(NOW) // STEP - 1
    assert verifier().matching_step(RFC_SECRET, code_at(2)) is None


def test_enrollment_uri_and_qr() -> None:
    secret = new_secret()
    assert len(secret) == 32 and secret != new_secret()
    uri = provisioning_uri(secret, "alice", "deskgate")
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc, parsed.path) == ("otpauth", "totp", "/deskgate:alice")
    assert parse_qs(parsed.query) == {"secret": [secret], "issuer": ["deskgate"]}
    qr = terminal_qr(uri)
    lines = qr.splitlines()
    assert len(lines) > 20 and set("".join(lines)) <= {" ", "█", "▀", "▄"}
    assert len({len(line) for line in lines}) == 1  # a square block of characters


def test_svg_qr_is_an_image_data_uri_without_the_secret_in_text() -> None:
    secret = new_secret()
    svg = svg_data_uri(provisioning_uri(secret, "alice<script>", "deskgate"))
    assert svg.startswith("data:image/svg+xml")
    text = unquote(svg)
    assert "<svg" in text and "<path" in text
    assert secret not in text and "<script>" not in text
