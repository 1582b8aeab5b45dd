"""Cursor pseudo-encoding: shape, mask and hotspot, and drawing the cursor onto a frame."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.rfb.messages import RGBX8888, Encoding, Rectangle
from recorder.decoders import DecoderState, composite_cursor, decode_rectangle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer
from tests.recorder.pixel_encoding import (
    FORMATS,
    expected_rgb,
    new_state,
    pack_pixels,
    random_pixels,
)

WHITE, BLACK = b"\xff\xff\xff\x00", b"\x00\x00\x00\x00"


def arrow_state() -> DecoderState:
    """A 3x2 cursor, hotspot (1, 0): top row white, white, black; bottom row only its middle pixel."""
    state = new_state(RGBX8888)
    payload = WHITE + WHITE + BLACK + BLACK + WHITE + BLACK + bytes([0b11100000, 0b01000000])
    decode_rectangle(state, Framebuffer(1, 1), Rectangle(1, 0, 3, 2, Encoding.CURSOR), payload)
    return state


def test_golden_cursor_shape() -> None:
    cursor = arrow_state().cursor
    assert cursor is not None
    assert (cursor.hotspot_x, cursor.hotspot_y) == (1, 0)
    assert cursor.mask.tolist() == [[True, True, True], [False, True, False]]
    assert cursor.image[:, :, 0].tolist() == [[255, 255, 0], [0, 255, 0]]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_cursor_in_every_format_with_padded_mask_rows(name: str) -> None:
    pixel_format = FORMATS[name]
    rng = np.random.default_rng(8)
    pixels = random_pixels(pixel_format, (5, 11), rng)
    mask = rng.integers(0, 2, (5, 11)).astype(bool)
    payload = pack_pixels(pixel_format, pixels) + np.packbits(mask, axis=1).tobytes()
    state = new_state(pixel_format)
    decode_rectangle(state, Framebuffer(1, 1), Rectangle(10, 4, 11, 5, Encoding.CURSOR), payload)
    assert state.cursor is not None
    assert (state.cursor.image == expected_rgb(pixel_format, pixels)).all()
    assert (state.cursor.mask == mask).all()


def test_empty_cursor_hides_the_pointer() -> None:
    state = arrow_state()
    decode_rectangle(state, Framebuffer(1, 1), Rectangle(0, 0, 0, 0, Encoding.CURSOR), b"")
    assert state.cursor is None


@pytest.mark.parametrize("size", [0, 25, 27])
def test_wrong_length_is_a_decode_error(size: int) -> None:
    with pytest.raises(DecodeError, match="expected 26 bytes"):
        decode_rectangle(new_state(RGBX8888), Framebuffer(1, 1), Rectangle(0, 0, 3, 2, Encoding.CURSOR), bytes(size))


class TestComposite:
    def frame(self) -> np.ndarray:
        return np.full((4, 5, 3), 100, np.uint8)

    def test_hotspot_lands_on_the_pointer(self) -> None:
        frame = self.frame()
        drawn = composite_cursor(frame, arrow_state(), 2, 1)
        assert drawn[:, :, 0].tolist() == [
            [100, 100, 100, 100, 100],
            [100, 255, 255, 0, 100],
            [100, 100, 255, 100, 100],
            [100, 100, 100, 100, 100],
        ]
        assert (frame == 100).all(), "the frame itself is untouched"

    @pytest.mark.parametrize(
        ("x", "y", "expected_rows"),
        [
            (0, 0, [[255, 0, 100, 100, 100], [255, 100, 100, 100, 100]]),
            (4, 3, None),
            (6, 0, [[100, 100, 100, 100, 100], [100, 100, 100, 100, 100]]),
            (-5, -5, [[100, 100, 100, 100, 100], [100, 100, 100, 100, 100]]),
        ],
    )
    def test_clipped_at_the_edges(self, x: int, y: int, expected_rows: list[list[int]] | None) -> None:
        drawn = composite_cursor(self.frame(), arrow_state(), x, y)
        if expected_rows is not None:
            assert drawn[:2, :, 0].tolist() == expected_rows
        else:
            assert drawn[3, :, 0].tolist() == [100, 100, 100, 255, 255]

    def test_drawn_into_a_kept_frame(self) -> None:
        frame, kept = self.frame(), np.zeros((4, 5, 3), np.uint8)
        for x in (2, 3):  # the second picture replaces the first whole: no cursor left behind
            drawn = composite_cursor(frame, arrow_state(), x, 1, out=kept)
            assert drawn is kept
            assert np.array_equal(drawn, composite_cursor(frame, arrow_state(), x, 1))
        assert (frame == 100).all(), "the frame itself is untouched"

    def test_no_cursor_gives_an_unchanged_copy(self) -> None:
        frame = self.frame()
        drawn = composite_cursor(frame, new_state(RGBX8888), 1, 1)
        assert (drawn == frame).all()
        assert drawn is not frame
