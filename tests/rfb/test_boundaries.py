"""Differential fuzzing of the target's framer (issue 16): the mypyc-compiled boundary framer, the same source
interpreted and the event framer built on it agree — same bytes, boundaries, messages and errors — on generated
streams (valid and hostile, every family and encoding) and on what a real Xvnc sends, split anywhere.

``make test`` runs a few seconds of it; ``make fuzz`` runs the ``boundaries`` target under atheris for longer.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.capture_file import Capture
from bench.workload import ENCODINGS, CapturingViewer
from gateway.demo import XvncDesktop
from gateway.rfb.constants import HextileSubencoding, TightCompression, TightFilter
from gateway.rfb.messages import RGBX8888, Encoding, PixelFormat, ServerMessageType
from tests.conftest import DESKTOP_PASSWORD
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


async def _record_from_xvnc(desktop: XvncDesktop, seconds: float) -> dict[str, Capture]:
    """What a real Xvnc sends viewers asking for Tight, ZRLE and Hextile while its screen changes for ``seconds``."""
    viewers = {name: CapturingViewer(name, desktop.port, DESKTOP_PASSWORD, "test") for name in ENCODINGS}
    stop = asyncio.Event()
    started = {name: asyncio.Event() for name in viewers}
    busy = subprocess.Popen(["xterm", "-geometry", "100x30+0+0", "-e", "sh", "-c",
                             "while :; do ls -lR /usr/lib/python3*; done"],
                            env=desktop.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with asyncio.TaskGroup() as tasks:
            for name, viewer in viewers.items():
                tasks.create_task(viewer.run(started[name], stop))
            async with asyncio.timeout(15):
                await asyncio.gather(*(event.wait() for event in started.values()))
            for colour in ("#204080", "#806020", "#208040", "#ffffff")[: max(1, int(seconds))]:
                await asyncio.to_thread(subprocess.run, ["xsetroot", "-solid", colour], env=desktop.env,
                                        check=True, timeout=10)
                await asyncio.sleep(seconds / 4)
            stop.set()
    finally:
        busy.kill()
        busy.wait(timeout=10)
    return {name: viewer.capture() for name, viewer in viewers.items()}


@pytest.fixture(scope="module")
def xvnc_streams(desktop: XvncDesktop) -> dict[str, tuple[Stream, list[bytes]]]:
    """Each encoding's stream from a real Xvnc (a terminal scrolling, the background changing), message by message."""
    captures = asyncio.run(_record_from_xvnc(desktop, 3.0))
    return {name: (Stream(RGBX8888, capture.server_init.width, capture.server_init.height,
                          encodings=capture.encodings, small_limits=False),
                   [message.data for message in capture.messages])
            for name, capture in captures.items()}


@pytest.mark.functional
@pytest.mark.parametrize("encoding", ["tight", "zrle", "hextile"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 1 << 20), count=st.integers(1, 40), points=points,
       chunk=st.sampled_from((1, 7, 4096, 64 * 1024)))
def test_streams_from_a_real_xvnc_split_anywhere(xvnc_streams: dict[str, tuple[Stream, list[bytes]]],
                                                 encoding: str, start: int, count: int, points: list[int],
                                                 chunk: int) -> None:
    stream, messages = xvnc_streams[encoding]
    assert len(messages) > 10
    start %= len(messages)
    data = b"".join(messages[start : start + count])[: 1 << 18]
    assert_all_agree(stream, split(data, points))
    assert_all_agree(stream, [data[at : at + chunk] for at in range(0, len(data), chunk)][:4096])
