"""VNC authentication (RFC 6143 §7.2.2): the server's challenge encrypted with DES, keyed by the password."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from gateway.rfb.errors import LocalProtocolError

CHALLENGE_SIZE = 16

# VNC's original DES code reads each key byte least significant bit first, so every
# password byte enters standard DES with its bits reversed.
_BITS_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def vnc_auth_response(password: bytes, challenge: bytes) -> bytes:
    """Encrypt the 16-byte ``challenge`` with DES-ECB keyed by ``password`` (first 8 bytes, zero-padded)."""
    if len(challenge) != CHALLENGE_SIZE:
        raise LocalProtocolError(f"a VNC authentication challenge is {CHALLENGE_SIZE} bytes, got {len(challenge)}")
    key = password[:8].ljust(8, b"\0").translate(_BITS_REVERSED)
    # Triple DES with three equal keys is single DES; cryptography offers DES only in this form.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()
