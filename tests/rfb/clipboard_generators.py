"""Seeded generators of Extended Clipboard messages (valid and hostile), shared by the client and server families."""

from __future__ import annotations

import struct
import zlib
from random import Random
from typing import TypeVar

from gateway.rfb.clipboard import (
    ClipboardAction,
    ClipboardFormat,
    ExtendedCutText,
)
from gateway.rfb.errors import LimitExceeded, ProtocolViolation
from gateway.rfb.messages import (
    ClientMessageType,
)
from tests.rfb.wire_values import CLIPBOARD_LIMIT, CUT_TEXT_LIMIT, Hostile, u32, uint, upto

_CLIPBOARD_CHARACTERS = "山田太郎東京都日本語のテキストｶﾅ é€\n\r\t abcXYZ012"


def clipboard_text(rng: Random, longest: int = 40) -> str:
    """Text as people copy it: Japanese, Latin, line ends, and now and then any code point (no surrogates)."""
    return "".join(rng.choice(_CLIPBOARD_CHARACTERS) if rng.random() < 0.9
                   else chr(rng.choice((rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x10FFFF))))
                   for _ in range(upto(rng, longest, 4)))


CutTextT = TypeVar("CutTextT", bound=ExtendedCutText)


def extended_cut_text(rng: Random, message: type[CutTextT]) -> CutTextT:
    """A valid Extended Clipboard message of each action, a provide in half of them."""
    roll = rng.random()
    if roll < 0.5:
        return message.provide_text(clipboard_text(rng))
    if roll < 0.65:
        actions = ClipboardAction(0)
        for action in ClipboardAction:
            actions |= action if rng.random() < 0.5 else 0
        return message.caps(actions, {ClipboardFormat.TEXT: uint(rng, 32)} if rng.random() < 0.8 else {})
    action = rng.choice((ClipboardAction.REQUEST, ClipboardAction.PEEK, ClipboardAction.NOTIFY))
    return message.announce(action, ClipboardFormat(rng.choice((0, 1, 1, 0x1F))))


def extended_clipboard_hostile(rng: Random, message_type: int = ClientMessageType.CLIENT_CUT_TEXT) -> Hostile:
    """An Extended Clipboard message over a limit (on the wire, or inflated: a zlib bomb) or malformed."""
    def wire(flags: int, payload: bytes) -> bytes:
        return struct.pack(">B3xiI", message_type, -(4 + len(payload)), flags) + payload
    provide = ClipboardAction.PROVIDE | ClipboardFormat.TEXT
    roll = rng.random()
    if roll < 0.25:
        size = rng.choice((CUT_TEXT_LIMIT + 1, 1 << 31, rng.randint(CUT_TEXT_LIMIT + 1, 1 << 31)))
        return struct.pack(">B3xi", message_type, -size), LimitExceeded
    if roll < 0.45:
        inflated = rng.randint(CLIPBOARD_LIMIT - 3, 4 * CLIPBOARD_LIMIT)  # with its 4-byte size: over the limit
        return wire(provide, zlib.compress(u32(inflated) + bytes(inflated))), LimitExceeded
    if roll < 0.55:
        return struct.pack(">B3xi", message_type, -rng.randint(1, 3)) + rng.randbytes(3), ProtocolViolation
    if roll < 0.7:
        return wire(provide, b"\xff" + rng.randbytes(rng.randint(0, 20))), ProtocolViolation  # not zlib
    if roll < 0.85:  # its size says more than its data holds
        data = rng.randbytes(rng.randint(0, 20))
        return wire(provide, zlib.compress(u32(len(data) + rng.randint(1, 9)) + data)), ProtocolViolation
    flags = rng.choice((1 << 29, 1 << 31, ClipboardAction.REQUEST | ClipboardAction.NOTIFY, 0, 1))
    return wire(flags, b""), ProtocolViolation
