"""The atheris fuzz targets of ``make fuzz`` (:mod:`fuzz.targets`), run here without atheris:
on their seeds and on arbitrary bytes, so that they stay correct between fuzzing runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS, seeds


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_holds_on_its_seeds(name: str) -> None:
    for seed in seeds(name):
        TARGETS[name](seed)


@pytest.mark.parametrize("name", TARGETS)
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1024))
def test_each_target_holds_on_arbitrary_bytes(name: str, data: bytes) -> None:
    TARGETS[name](data)
