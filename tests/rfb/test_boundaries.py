"""Differential fuzzing of the target's framer (issue 16): the mypyc-compiled boundary framer, the same source
interpreted and the event framer built on it agree — same bytes, boundaries, messages and errors — on generated
streams (valid and hostile, every family and encoding) and on the recorded office captures, split anywhere.

``make test`` runs a few seconds of it; ``make fuzz`` runs the ``boundaries`` target under atheris for longer.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.constants import HextileSubencoding, TightCompression, TightFilter
from gateway.rfb.messages import Encoding, PixelFormat, ServerMessageType
from tests.rfb.differential import (
    COMPILED,
    INTERPRETED,
    NOT_COMPILED_BECAUSE,
    Stream,
    assert_all_agree,
    boundaries_said,
    in_stream_order,
    split,
)
from tests.rfb.wire_generators import SERVER_FAMILIES, TARGET_PIXEL_FORMATS, Desktop, hostile_update, update
from tests.rfb.wire_values import START_SIZE

CAPTURES = Path(__file__).resolve().parents[2] / "bench" / "captures"
FUZZ = settings(max_examples=40, deadline=None)
points = st.lists(st.integers(0, 1 << 24), max_size=16)


def test_the_compiled_framer_is_built_where_ci_runs() -> None:
    if os.environ.get("CI") == "true":
        assert COMPILED is not None, NOT_COMPILED_BECAUSE


def test_the_rules_use_the_rfc_values() -> None:
    rules = vars(INTERPRETED)
    for member in Encoding:
        assert rules[f"_{member.name}"] == member
    for message_type in (ServerMessageType.SET_COLOUR_MAP_ENTRIES, ServerMessageType.BELL,
                         ServerMessageType.SERVER_CUT_TEXT):
        assert rules[f"_{message_type.name}"] == message_type
    assert (rules["_HEXTILE_RAW"], rules["_HEXTILE_BACKGROUND"], rules["_HEXTILE_FOREGROUND"],
            rules["_HEXTILE_ANY_SUBRECTS"], rules["_HEXTILE_SUBRECTS_COLOURED"]) == tuple(HextileSubencoding)
    assert (rules["_TIGHT_FILL"], rules["_TIGHT_JPEG"]) == tuple(TightCompression)
    assert (rules["_TIGHT_COPY"], rules["_TIGHT_PALETTE"], rules["_TIGHT_GRADIENT"]) == tuple(TightFilter)


def generated_stream(seed: int, pixel_format: PixelFormat) -> bytes:
    """Updates and other server messages, valid, then in half the cases one that may break the protocol."""
    rng = Random(seed)
    desktop = Desktop(pixel_format)
    items = [update(rng, desktop)[0] if rng.random() < 0.7 else rng.choice(SERVER_FAMILIES).valid(rng).encode()
             for _ in range(rng.randint(1, 12))]
    if rng.random() < 0.5:
        items.append(hostile_update(rng, desktop)[0] if rng.random() < 0.7
                     else rng.choice(SERVER_FAMILIES).hostile(rng)[0])
    return b"".join(items)


@FUZZ
@given(seed=st.integers(0, (1 << 64) - 1), pixel_format=st.sampled_from(TARGET_PIXEL_FORMATS), points=points)
def test_generated_streams_split_anywhere(seed: int, pixel_format: PixelFormat, points: list[int]) -> None:
    stream = Stream(pixel_format, *START_SIZE)
    data = generated_stream(seed, pixel_format)
    assert_all_agree(stream, split(data, points))
    if len(data) <= 1024:
        assert_all_agree(stream, [data[at : at + 1] for at in range(len(data))])


@FUZZ
@given(seed=st.integers(0, (1 << 64) - 1), pixel_format=st.sampled_from(TARGET_PIXEL_FORMATS), points=points)
def test_any_split_frames_the_same_stream(seed: int, pixel_format: PixelFormat, points: list[int]) -> None:
    stream = Stream(pixel_format, *START_SIZE)
    data = generated_stream(seed, pixel_format)
    for every_piece in (False, True):
        whole = in_stream_order(boundaries_said(INTERPRETED, stream, [data], every_piece))
        assert in_stream_order(boundaries_said(INTERPRETED, stream, split(data, points), every_piece)) == whole


@cache
def recorded(encoding: str) -> tuple[Stream, list[bytes]]:
    from bench.capture_file import read_capture

    capture = read_capture(CAPTURES / f"office-{encoding}.rfbcap.xz")
    init = capture.server_init
    stream = Stream(init.pixel_format, init.width, init.height, encodings=capture.encodings, small_limits=False)
    return stream, [message.data for message in capture.messages]


@pytest.mark.parametrize("encoding", ["tight", "zrle", "hextile"])
@settings(max_examples=8, deadline=None)
@given(start=st.integers(0, 1 << 20), count=st.integers(1, 40), points=points,
       chunk=st.sampled_from((1, 7, 4096, 64 * 1024)))
def test_recorded_office_streams_split_anywhere(encoding: str, start: int, count: int, points: list[int],
                                               chunk: int) -> None:
    if not (CAPTURES / f"office-{encoding}.rfbcap.xz").exists():
        pytest.skip("no recorded captures here (`python -m bench.workload` records them)")
    stream, messages = recorded(encoding)
    start %= len(messages)
    data = b"".join(messages[start : start + count])[: 1 << 18]
    assert_all_agree(stream, split(data, points))
    assert_all_agree(stream, [data[at : at + chunk] for at in range(0, len(data), chunk)][:4096])
