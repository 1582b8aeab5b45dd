"""VNC authentication: DES of the challenge with the bit-reversed password as key."""

from __future__ import annotations

import pytest

from gateway.rfb.errors import LocalProtocolError
from gateway.rfb.vncauth import vnc_auth_response


def reverse_bits(data: bytes) -> bytes:
    """Each byte's bits in the opposite order, computed independently of the module's table."""
    return bytes(sum(((byte >> bit) & 1) << (7 - bit) for bit in range(8)) for byte in data)


def test_textbook_des_vector() -> None:
    # "The DES Algorithm Illustrated" (J. Orlin Grabbe): key 133457799BBCDFF1 turns
    # 0123456789ABCDEF into 85E813540F0AB405. VNC reverses each password byte's bits
    # before DES, so the password is that key with its bits reversed.
    password = reverse_bits(bytes.fromhex("133457799BBCDFF1"))
    challenge = bytes.fromhex("0123456789ABCDEF") * 2
    assert vnc_auth_response(password, challenge) == bytes.fromhex("85E813540F0AB405") * 2


def test_golden_vnc_response() -> None:
    # Computed with OpenSSL 3 (legacy provider): `openssl enc -des-ecb -nopad -K 0e86ceceee260000`
    # over bytes 0..15, the key being b"passwd" zero-padded with its bits reversed.
    assert vnc_auth_response(b"passwd", bytes(range(16))) == bytes.fromhex("e8399b58571e87ed8445c8716b6dd945")


def test_the_password_is_zero_padded_and_truncated_to_eight_bytes() -> None:
    challenge = bytes(range(16))
    assert vnc_auth_response(b"passwd", challenge) == vnc_auth_response(b"passwd\0\0", challenge)
    assert vnc_auth_response(b"12345678", challenge) == vnc_auth_response(b"123456789 and more", challenge)
    assert vnc_auth_response(b"12345678", challenge) != vnc_auth_response(b"12345679", challenge)
    assert len(vnc_auth_response(b"", challenge)) == 16


@pytest.mark.parametrize("size", [0, 8, 15, 17])
def test_a_challenge_must_be_16_bytes(size: int) -> None:
    with pytest.raises(LocalProtocolError, match="16 bytes"):  # the handshake always reads 16
        vnc_auth_response(b"pw", bytes(size))
