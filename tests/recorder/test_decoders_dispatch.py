"""decode_rectangle's dispatch, the pseudo-encodings without pixels, and the decoder state."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest

import recorder
from gateway.rfb.messages import RGBX8888, Encoding, Rectangle
from recorder.decoders import DecoderState, decode_rectangle
from recorder.errors import DecodeError, RecordingError
from recorder.framebuffer import Framebuffer
from tests.recorder.pixel_encoding import FORMATS, new_state


def numbered_framebuffer() -> Framebuffer:
    framebuffer = Framebuffer(4, 3)
    framebuffer.pixels[...] = 7
    return framebuffer


def screen(x: int, y: int, width: int, height: int) -> bytes:
    return struct.pack(">IHHHHI", 1, x, y, width, height, 0)


class TestDesktopSize:
    def test_resizes_keeping_the_overlap(self) -> None:
        framebuffer = numbered_framebuffer()
        decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(0, 0, 6, 2, Encoding.DESKTOP_SIZE), b"")
        assert framebuffer.pixels.shape == (2, 6, 3)
        assert (framebuffer.pixels[:, :4] == 7).all()
        assert not framebuffer.pixels[:, 4:].any()

    def test_carries_no_data(self) -> None:
        with pytest.raises(DecodeError, match="no data"):
            decode_rectangle(new_state(RGBX8888), Framebuffer(1, 1), Rectangle(0, 0, 2, 2, Encoding.DESKTOP_SIZE), b"x")

    def test_size_limit(self) -> None:
        framebuffer = Framebuffer(4, 4, max_pixels=10_000)
        with pytest.raises(DecodeError, match="max_pixels"):
            decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(0, 0, 65535, 65535, Encoding.DESKTOP_SIZE), b"")
        assert framebuffer.pixels.shape == (4, 4, 3)


class TestExtendedDesktopSize:
    @pytest.mark.parametrize(("reason", "status"), [(0, 0), (1, 0), (2, 0), (7, 0)])
    def test_resizes(self, reason: int, status: int) -> None:
        framebuffer = numbered_framebuffer()
        payload = b"\x01\x00\x00\x00" + screen(0, 0, 8, 5)
        rect = Rectangle(reason, status, 8, 5, Encoding.EXTENDED_DESKTOP_SIZE)
        decode_rectangle(new_state(RGBX8888), framebuffer, rect, payload)
        assert framebuffer.pixels.shape == (5, 8, 3)
        assert (framebuffer.pixels[:3, :4] == 7).all()

    @pytest.mark.parametrize("status", [1, 2, 3, 99])
    def test_a_refused_request_changes_nothing(self, status: int) -> None:
        framebuffer = numbered_framebuffer()
        rect = Rectangle(1, status, 0, 0, Encoding.EXTENDED_DESKTOP_SIZE)
        decode_rectangle(new_state(RGBX8888), framebuffer, rect, b"\x00\x00\x00\x00")
        assert framebuffer.pixels.shape == (3, 4, 3)

    @pytest.mark.parametrize(
        "payload", [b"", b"\x01\x00\x00", b"\x01\x00\x00\x00", b"\x00\x00\x00\x00" + screen(0, 0, 1, 1), b"\x02\x00\x00\x00" + screen(0, 0, 1, 1)]
    )
    def test_screen_count_and_length_must_agree(self, payload: bytes) -> None:
        rect = Rectangle(0, 0, 8, 5, Encoding.EXTENDED_DESKTOP_SIZE)
        with pytest.raises(DecodeError):
            decode_rectangle(new_state(RGBX8888), numbered_framebuffer(), rect, payload)


class TestNoPixels:
    @pytest.mark.parametrize(
        ("encoding", "payload"),
        [
            (Encoding.LAST_RECT, b""),
            (Encoding.QEMU_EXTENDED_KEY_EVENT, b""),
            (Encoding.DESKTOP_NAME, b"\x00\x00\x00\x05desk1"),
            (Encoding.DESKTOP_NAME, b"\x00\x00\x00\x00"),
        ],
    )
    def test_leave_the_framebuffer_alone(self, encoding: Encoding, payload: bytes) -> None:
        framebuffer = numbered_framebuffer()
        decode_rectangle(new_state(RGBX8888), framebuffer, Rectangle(0, 0, 0, 0, encoding), payload)
        assert framebuffer.pixels.shape == (3, 4, 3)
        assert (framebuffer.pixels == 7).all()

    @pytest.mark.parametrize(
        ("encoding", "payload"),
        [
            (Encoding.LAST_RECT, b"\x00"),
            (Encoding.QEMU_EXTENDED_KEY_EVENT, b"\x00"),
            (Encoding.DESKTOP_NAME, b"\x00\x00\x00\x05desk"),
            (Encoding.DESKTOP_NAME, b"\x00\x00\x00\x01ab"),
            (Encoding.DESKTOP_NAME, b"\x00\x00"),
        ],
    )
    def test_malformed(self, encoding: Encoding, payload: bytes) -> None:
        with pytest.raises(DecodeError):
            decode_rectangle(new_state(RGBX8888), numbered_framebuffer(), Rectangle(0, 0, 0, 0, encoding), payload)


@pytest.mark.parametrize("encoding", [4, 6, 8, 15, -32, -247, 0x574D5600])
def test_unknown_encodings_are_a_decode_error(encoding: int) -> None:
    with pytest.raises(DecodeError, match=f"encoding {encoding} is not supported"):
        decode_rectangle(new_state(RGBX8888), Framebuffer(4, 4), Rectangle(0, 0, 1, 1, encoding), b"")


def test_decode_errors_are_recording_errors() -> None:
    assert issubclass(DecodeError, RecordingError)


class TestColourMap:
    def test_entries_are_the_high_bytes_of_16_bit_channels(self) -> None:
        state = DecoderState(FORMATS["colour_map8"])
        state.set_colour_map_entries(254, [(0xFFFF, 0x8000, 0x00FF), (0x1234, 0, 0xABCD)])
        assert state.colour_map[254:].tolist() == [[255, 128, 0], [0x12, 0, 0xAB]]
        assert not state.colour_map[:254].any()
        framebuffer = Framebuffer(2, 1)
        decode_rectangle(state, framebuffer, Rectangle(0, 0, 2, 1, Encoding.RAW), b"\xfe\x00")
        assert framebuffer.pixels[0].tolist() == [[255, 128, 0], [0, 0, 0]]

    @pytest.mark.parametrize(
        ("first", "colours"), [(255, [(0, 0, 0), (0, 0, 0)]), (256, [(0, 0, 0)]), (-1, [(0, 0, 0)]), (0, [(0, 0, 0x10000)]), (0, [(0, 0)])]
    )
    def test_invalid_entries(self, first: int, colours: list[tuple[int, ...]]) -> None:
        with pytest.raises(DecodeError):
            DecoderState(FORMATS["colour_map8"]).set_colour_map_entries(first, colours)  # type: ignore[arg-type]


def test_decoders_import_no_io() -> None:
    """Decoders are sans-I/O: they can run in worker processes and in the test client alike."""
    forbidden = {"asyncio", "socket", "aiohttp", "asyncssh", "selectors", "ssl", "subprocess", "threading"}
    package = Path(recorder.__file__).parent
    for path in [package / "framebuffer.py", package / "errors.py", *sorted((package / "decoders").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {name.split(".")[0] for name in names} & forbidden, f"{path.name} imports {names}"
