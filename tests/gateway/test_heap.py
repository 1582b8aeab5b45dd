"""What start-up built is left out of later garbage collections (``freeze_start_up_heap``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.web.app import freeze_start_up_heap


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes on collecting as before


def test_start_up_objects_are_frozen_and_later_ones_still_collected(unfrozen_afterwards: None) -> None:
    built_at_start_up = [object()]
    freeze_start_up_heap()
    assert gc.get_freeze_count() > 0
    assert not any(tracked is built_at_start_up for tracked in gc.get_objects())
    session_garbage: list[object] = []
    session_garbage.append(session_garbage)
    del session_garbage
    assert gc.collect() >= 1  # sessions' cycles are still found
