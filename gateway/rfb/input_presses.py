"""What counts as a key press, a click and a person's activity: one rule for the journal's input counts,
the index's activity and the idle watchdog."""

from __future__ import annotations

from typing import Literal, TypeAlias

from gateway.rfb.clipboard import ExtendedClientCutText
from gateway.rfb.messages import ClientMessage, KeyEvent, PointerEvent, QEMUExtendedKeyEvent

#: The kinds of input the journal counts when it does not keep the input itself (``record_input: counts``).
InputKind: TypeAlias = Literal["keys", "pointer", "clicks", "cut_text"]

#: How many keys :class:`InputActivityTracker` remembers as held down; past that it forgets them all
#: (a browser that never sends key-ups must not grow its memory).
MAX_HELD_KEYS = 64


class InputPresses:
    """Follows one browser's input messages and says how many key and button presses each one makes."""

    __slots__ = ("_buttons",)

    def __init__(self) -> None:
        self._buttons = 0  # the pointer's button mask as last sent: a press is a bit that was not set

    def presses(self, message: ClientMessage | ExtendedClientCutText) -> tuple[int, int]:
        """(key presses, button presses) in ``message``; releases and moves make none."""
        if isinstance(message, (KeyEvent, QEMUExtendedKeyEvent)):
            return int(message.down), 0
        if isinstance(message, PointerEvent):
            pressed = message.button_mask & ~self._buttons
            self._buttons = message.button_mask
            return 0, pressed.bit_count()
        return 0, 0


class InputActivityTracker:
    """Follows one browser's input messages and says which of them show a person at work.

    Not activity: a pointer event that neither moves the pointer nor changes its buttons (what a
    "mouse jiggler" or a page keeping itself alive sends), and a key-down for a key already down
    without its key-up in between (auto-repeat, or a weight on the keyboard). Everything else a
    person's keyboard and pointer send is. A QEMU extended key event is told apart by its keycode
    (the physical key) when it has one.
    """

    __slots__ = ("_held", "_pointer")

    def __init__(self) -> None:
        self._held: set[tuple[bool, int]] = set()  # (extended?, keysym or keycode) of the keys down
        self._pointer: tuple[int, int, int] | None = None  # (buttons, x, y) as last sent

    def is_activity(self, message: ClientMessage) -> bool:
        """Whether ``message`` counts as the operator's activity; messages other than input never do."""
        if isinstance(message, PointerEvent):
            pointer = (message.button_mask, message.x, message.y)
            changed, self._pointer = pointer != self._pointer, pointer
            return changed
        if isinstance(message, KeyEvent):
            return self._key(message.down, (False, message.key))
        if isinstance(message, QEMUExtendedKeyEvent):
            return self._key(message.down, (True, message.keycode) if message.keycode else (False, message.keysym))
        return False

    def _key(self, down: bool, key: tuple[bool, int]) -> bool:
        if not down:
            self._held.discard(key)
            return True
        if key in self._held:
            return False
        if len(self._held) >= MAX_HELD_KEYS:
            self._held.clear()
        self._held.add(key)
        return True
