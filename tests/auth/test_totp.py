from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from auth.errors import InvalidTOTP
from auth.totp import InMemoryUsedCodes, TOTPVerifier, new_secret, provisioning_uri, terminal_qr

# RFC 6238 appendix B: the SHA-1 test secret "12345678901234567890", base32-encoded.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
NOW = 1_111_111_109.0  # RFC 6238 test time; 8-digit code 07081804, so 6-digit code 081804
STEP = 30


def code_at(offset_steps: int, secret: str = RFC_SECRET) -> str:
    return pyotp.TOTP(secret).at(NOW + offset_steps * STEP)


def verifier() -> TOTPVerifier:
    return TOTPVerifier(clock=lambda: NOW)


def test_rfc_6238_vector() -> None:
    verifier().verify("alice", RFC_SECRET, "081804")


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_current_and_neighbouring_steps_are_accepted(offset: int) -> None:
    verifier().verify("alice", RFC_SECRET, code_at(offset))


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_two_steps_away_are_refused(offset: int) -> None:
    with pytest.raises(InvalidTOTP, match="wrong or expired authenticator code"):
        verifier().verify("alice", RFC_SECRET, code_at(offset))


def test_drift_window_is_configurable() -> None:
    strict = TOTPVerifier(clock=lambda: NOW, drift_steps=0)
    with pytest.raises(InvalidTOTP):
        strict.verify("alice", RFC_SECRET, code_at(1))
    TOTPVerifier(clock=lambda: NOW, drift_steps=2).verify("alice", RFC_SECRET, code_at(2))


def test_a_code_is_accepted_once_per_user() -> None:
    totp = verifier()
    code = code_at(0)
    totp.verify("alice", RFC_SECRET, code)
    with pytest.raises(InvalidTOTP):
        totp.verify("alice", RFC_SECRET, code)
    totp.verify("bob", RFC_SECRET, code)  # another user's counter is separate


def test_after_a_newer_step_older_steps_are_refused() -> None:
    totp = verifier()
    totp.verify("alice", RFC_SECRET, code_at(1))
    for offset in (0, -1):
        with pytest.raises(InvalidTOTP):
            totp.verify("alice", RFC_SECRET, code_at(offset))


def test_next_step_is_accepted_after_time_moves_on() -> None:
    now = [NOW]
    totp = TOTPVerifier(clock=lambda: now[0])
    totp.verify("alice", RFC_SECRET, code_at(0))
    now[0] += STEP
    totp.verify("alice", RFC_SECRET, code_at(1))


def test_a_refused_code_does_not_use_up_the_step() -> None:
    totp = verifier()
    with pytest.raises(InvalidTOTP):
        totp.verify("alice", RFC_SECRET, code_at(5))
    totp.verify("alice", RFC_SECRET, code_at(0))


@pytest.mark.parametrize("code", ["", "81804", "0081804", "08180a", "081804\n0", "٠٨١٨٠٤", "+81804"])
def test_codes_must_be_six_ascii_digits(code: str) -> None:
    with pytest.raises(InvalidTOTP):
        verifier().verify("alice", RFC_SECRET, code)


def test_a_space_in_the_middle_is_tolerated() -> None:
    verifier().verify("alice", RFC_SECRET, "081 804")


def test_used_codes_storage_is_pluggable() -> None:
    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def check_and_mark(self, username: str, step: int) -> bool:
            self.calls.append((username, step))
            return False

    used = Recording()
    with pytest.raises(InvalidTOTP):
        TOTPVerifier(clock=lambda: NOW, used_codes=used).verify("alice", RFC_SECRET, code_at(0))
    assert used.calls == [("alice", int(NOW) // STEP)]


def test_in_memory_used_codes() -> None:
    used = InMemoryUsedCodes()
    assert used.check_and_mark("a", 10)
    assert not used.check_and_mark("a", 10)
    assert not used.check_and_mark("a", 9)
    assert used.check_and_mark("a", 11)
    assert used.check_and_mark("b", 10)


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
