"""The terminal WebSocket's control messages: what parses, what is refused, and that nothing else escapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import TerminalProtocolError
from gateway.terminal_messages import MAX_CELLS, MAX_CONTROL_MESSAGE, TerminalResize, parse_control, resize_message
from recorder.records import TerminalSize


@given(st.integers(1, MAX_CELLS), st.integers(1, MAX_CELLS))
def test_a_resize_round_trips(cols: int, rows: int) -> None:
    assert parse_control(resize_message(TerminalSize(cols, rows))) == TerminalResize(TerminalSize(cols, rows))


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"resize": [80]}', '{"resize": [0, 24]}', f'{{"resize": [80, {MAX_CELLS + 1}]}}',
    '{"resize": [80.0, 24]}', '{"resize": [true, 24]}', '{"resize": "80x24"}', '{"resize": [80, 24], "x": 1}',
    '{"input": "ls"}', '{"resize": [80, 24, 1]}', " " * (MAX_CONTROL_MESSAGE + 1), "[" * 100_000,
])
def test_anything_but_a_resize_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(TerminalProtocolError) as refusal:
        parse_control(text)
    assert str(refusal.value)


@given(st.one_of(st.text(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10).map(lambda value: json.dumps(value))))
def test_any_text_frame_parses_to_a_valid_resize_or_is_refused(text: str) -> None:
    try:
        message = parse_control(text)
    except TerminalProtocolError:
        return
    assert 1 <= message.size.cols <= MAX_CELLS and 1 <= message.size.rows <= MAX_CELLS
