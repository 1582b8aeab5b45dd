"""What counts as a key press and a click: one rule for the journal's input counts and the index's activity."""

from __future__ import annotations

from typing import Literal, TypeAlias

from gateway.rfb.clipboard import ExtendedClientCutText
from gateway.rfb.messages import ClientMessage, KeyEvent, PointerEvent, QEMUExtendedKeyEvent

#: The kinds of input the journal counts when it does not keep the input itself (``record_input: counts``).
InputKind: TypeAlias = Literal["keys", "pointer", "clicks", "cut_text"]


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
