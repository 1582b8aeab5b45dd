"""The small pieces every wire generator shares: the families' limits, edge-leaning integers, hostile cases."""

from __future__ import annotations

import struct
from random import Random

from gateway.rfb.clipboard import (
    EXTENDED_CLIPBOARD_ENCODING,
)
from gateway.rfb.errors import ProtocolViolation

CUT_TEXT_LIMIT = 512
ENCODINGS_LIMIT = 64
SCREENS_LIMIT = 16
NAME_LIMIT = 256
PAYLOAD_LIMIT = 1 << 15
FRAMEBUFFER_LIMIT = (512, 384)
START_SIZE = (64, 48)
#: What an Extended Clipboard provide may inflate to in the families' framers.
CLIPBOARD_LIMIT = 2048
EXTENDED_CLIPBOARD = EXTENDED_CLIPBOARD_ENCODING

Hostile = tuple[bytes, type[ProtocolViolation] | None]


_EDGES = {bits: (0, 1, (1 << bits) - 1, (1 << bits) - 2, 1 << (bits - 1), (1 << (bits - 1)) - 1, 0x7F, 0x80)
          for bits in (8, 16, 31, 32)}


def uint(rng: Random, bits: int) -> int:
    """An unsigned integer of ``bits`` bits: one in eight an edge (0, 1, the largest...), two a byte."""
    value = rng.getrandbits(bits + 3)  # one call: this runs for nearly every field of every case
    kind, value = value & 7, value >> 3
    if kind == 0:
        return _EDGES[bits][value & 7] & ((1 << bits) - 1)
    return value & 0xFF if kind < 3 else value


def upto(rng: Random, limit: int, usual: int = 8, at_limit: float = 0.05) -> int:
    """A count in 0..limit: mostly up to ``usual``, exactly the limit with probability ``at_limit``."""
    roll = rng.random()
    if roll < at_limit:
        return limit
    if roll < 0.9:
        return rng.randint(0, min(usual, limit))
    return rng.randint(0, limit)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def flipped(rng: Random, wire: bytes) -> bytes:
    """``wire`` with one to three bytes replaced."""
    data = bytearray(wire)
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)
