"""Keystrokes kept only as far as privacy allows: the operator's journaled input, filtered once more.

With ``record_input: full`` the proxy journals every key event. Two kinds are stored as counts
only (an INPUT_COUNTS record), never as keys:

- **keys typed into a masked region.** RFB cannot say which field has the input focus, so the
  pointer stands for it: after a button press inside a masked region (:mod:`recorder.masking`)
  the focus counts as being there until a button press outside every masked region;
- **card numbers.** A *run* of key presses of digits (0–9, keypad digits), with spaces and
  hyphens between them allowed, is held back; it ends at the next press of any other key
  (modifiers such as Shift do not end it), a button press, a run of more than
  :data:`MAX_RUN_DIGITS` digits, :data:`MAX_HELD_BYTES` held, or the session's end. If its digits
  are 13 to 19 long and pass the Luhn check, its key events are counted only; otherwise they
  are journaled as typed. Everything the browser sent after a run's first digit waits with it,
  so the journal keeps the order of events (its record times are those of the run's end).

The delay: a run reaches the journal when it ends, not as it is typed (a crash loses an
unfinished run, which is at most :data:`MAX_HELD_BYTES`).

Sans-I/O: :class:`KeystrokeFilter` takes the client messages the proxy journals, as the proxy
framed them, and returns what to journal: bytes, or :class:`KeysCounted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.rfb.framing import ClientMessageReceived
from gateway.rfb.input_presses import InputPresses
from gateway.rfb.messages import KeyEvent, PointerEvent, QEMUExtendedKeyEvent
from recorder.masking import MaskRegion

#: Card numbers are 13 to 19 digits long (ISO/IEC 7812).
CARD_DIGITS = range(13, 20)
#: A run longer than this is no card number: it is released at once.
MAX_RUN_DIGITS = 19
#: The most bytes of client data held back with a run (pointer moves included).
MAX_HELD_BYTES = 64 * 1024

_DIGIT_KEYSYMS = {**{0x30 + d: d for d in range(10)}, **{0xFFB0 + d: d for d in range(10)}}  # XK_0.., XK_KP_0..
_SEPARATOR_KEYSYMS = {0x20, 0x2D, 0xFFAD}  # space, minus, keypad minus
_MODIFIER_KEYSYMS = set(range(0xFFE1, 0xFFEF)) | {0xFF7F, 0xFE03}  # Shift..Hyper, Num_Lock, ISO_Level3_Shift


def luhn_valid(digits: Sequence[int]) -> bool:
    """Whether ``digits`` pass the Luhn check (the check digit of card numbers)."""
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def is_card_number(digits: Sequence[int]) -> bool:
    return len(digits) in CARD_DIGITS and luhn_valid(digits)


@dataclass(frozen=True, slots=True)
class KeysCounted:
    """``count`` key presses were left out of the journal: count them only."""

    count: int
    why: str  # "masked_region" or "card_number"


JournalOutput = bytes | KeysCounted


class KeystrokeFilter:
    """Follows the journaled client data of one session; see the module docstring."""

    def __init__(self, masked: Sequence[MaskRegion] = ()) -> None:
        """``masked``: the masked regions in the session's framebuffer coordinates."""
        self._masked = tuple(masked)
        self._focus_masked = False
        self._presses = InputPresses()
        self._held: list[tuple[bytes, bool]] = []  # (raw message, is a key event) since the run's first digit
        self._held_bytes = 0
        self._held_presses = 0
        self._digits: list[int] = []

    def feed(self, messages: Iterable[ClientMessageReceived]) -> list[JournalOutput]:
        """What to journal for ``messages`` (whole client messages the proxy journals, as it framed them), in order."""
        out: list[JournalOutput] = []
        passed: list[bytes] = []
        for message, raw in messages:
            if isinstance(message, KeyEvent | QEMUExtendedKeyEvent):
                self._key(message, raw, out, passed)
            elif isinstance(message, PointerEvent) and self._presses.presses(message)[1]:
                out.extend(self._release(passed))
                passed = []
                self._focus_masked = any(region.contains(message.x, message.y) for region in self._masked)
                passed.append(raw)
            elif self._digits:
                self._hold(raw, False, out, passed)
            else:
                passed.append(raw)
        if passed:  # a run still open stays held: it has not ended
            out.append(b"".join(passed))
        return out

    def finish(self) -> list[JournalOutput]:
        """The session ends: decide on a run still held."""
        return self._release([])

    def _key(self, message: KeyEvent | QEMUExtendedKeyEvent, raw: bytes, out: list[JournalOutput],
             passed: list[bytes]) -> None:
        if self._focus_masked:
            out.extend(self._release(passed))
            passed.clear()
            if message.down:
                out.append(KeysCounted(1, "masked_region"))
            return
        keysym = message.key if isinstance(message, KeyEvent) else message.keysym
        digit = _DIGIT_KEYSYMS.get(keysym)
        if message.down and digit is not None:
            if not self._digits:
                out.extend(self._release(passed))
                passed.clear()
            self._digits.append(digit)
            self._held_presses += 1
            self._hold(raw, True, out, passed)
            if len(self._digits) > MAX_RUN_DIGITS:
                out.extend(self._decide())
            return
        if self._digits and message.down and keysym not in _SEPARATOR_KEYSYMS | _MODIFIER_KEYSYMS:
            out.extend(self._release(passed))
            passed.clear()
            passed.append(raw)
            return
        if self._digits:
            self._held_presses += message.down
            self._hold(raw, True, out, passed)
        else:
            passed.append(raw)

    def _hold(self, raw: bytes, is_key: bool, out: list[JournalOutput], passed: list[bytes]) -> None:
        self._held.append((raw, is_key))
        self._held_bytes += len(raw)
        if self._held_bytes > MAX_HELD_BYTES:
            out.extend(self._decide())

    def _release(self, passed: list[bytes]) -> list[JournalOutput]:
        """The run held (decided), then ``passed``."""
        out = self._decide()
        if passed:
            out.append(b"".join(passed))
        return out

    def _decide(self) -> list[JournalOutput]:
        if not self._held:
            return []
        held, digits, presses = self._held, self._digits, self._held_presses
        self._held, self._digits, self._held_bytes, self._held_presses = [], [], 0, 0
        if not is_card_number(digits):
            return [b"".join(raw for raw, _ in held)]
        out: list[JournalOutput] = []
        others = b"".join(raw for raw, is_key in held if not is_key)
        if others:
            out.append(others)
        out.append(KeysCounted(presses, "card_number"))
        return out
