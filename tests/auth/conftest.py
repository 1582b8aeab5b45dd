"""Fixtures of the auth unit tests: a clock the test moves and a secret box (the store is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth.secretbox import SecretBox

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the start of a TOTP step


class Clock:
    """A wall clock that only moves when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    return SecretBox.from_file(tmp_path / "totp.key")
