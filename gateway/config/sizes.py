"""Amounts of disk space in the configuration: ``storage.min_free`` (``2GiB``, ``500MB``, ``10%``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
SIZE_HINT = "use e.g. 2GiB, 500MB, a number of bytes, or a share of the disk such as 5%"


@dataclass(frozen=True, slots=True)
class MinFree:
    """Free space a volume must keep: a number of bytes, or a share of the volume's size (0 turns the check off)."""

    bytes: int = 0
    percent: float | None = None

    def threshold(self, total: int) -> int:
        """The free bytes below which a volume of ``total`` bytes counts as nearly full."""
        if self.percent is not None:
            return int(total * self.percent / 100)
        return self.bytes

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.bytes} bytes"


#: The default ``storage.min_free``: room for a few minutes of every operator's recording, and the database.
DEFAULT_MIN_FREE = MinFree(bytes=2**30)


def parse_min_free(text: str | int) -> MinFree:
    """``"2GiB"``, ``"500MB"``, ``1073741824`` or ``"5%"`` as a :class:`MinFree`."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not an amount of disk space; {SIZE_HINT}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{text!r} is negative; {SIZE_HINT}")
        return MinFree(bytes=text)
    compact = text.strip().lower()
    if match := PERCENT.fullmatch(compact):
        percent = float(match.group(1))
        if percent >= 100:
            raise ValueError(f"{text!r} would leave no disk usable; give a share below 100%")
        return MinFree(percent=percent)
    match = SIZE.fullmatch(compact)
    if match is None or match.group(2) not in SIZE_UNITS:
        raise ValueError(f"{text!r} is not an amount of disk space; {SIZE_HINT}")
    return MinFree(bytes=int(float(match.group(1)) * SIZE_UNITS[match.group(2)]))
