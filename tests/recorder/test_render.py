"""Journal → MP4: journals built here from real RFB byte streams, rendered, and the video decoded back."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from gateway.rfb.messages import (
    RGBX8888,
    Encoding,
    FramebufferUpdateRequest,
    PixelFormat,
    PointerEvent,
    Rectangle,
    SetEncodings,
    SetPixelFormat,
    encode_update_header,
)
from recorder.errors import DecodeError
from recorder.journal import JOURNAL_MAGIC, JournalReader, RecordKind, encode_record
from recorder.records import SessionHeader
from recorder.render import RenderResult, SessionReplay, render_journal
from tests.recorder.pixel_encoding import (
    FORMATS,
    expected_rgb,
    pack_cpixels,
    pack_pixels,
    pack_tpixels,
    random_pixels,
)

RGBImage = npt.NDArray[np.uint8]
WIDTH, HEIGHT = 320, 240

# ---------------------------------------------------------------- test-side RFB encoders (RGBX8888)


def to_wire(rgb: RGBImage) -> npt.NDArray[np.uint32]:
    """RGBX8888 pixel values (red at bit 16) of an RGB image."""
    rgb32 = rgb.astype(np.uint32)
    return (rgb32[..., 0] << 16) | (rgb32[..., 1] << 8) | rgb32[..., 2]


def rect_header(x: int, y: int, rgb: RGBImage, encoding: int) -> bytes:
    return Rectangle(x, y, rgb.shape[1], rgb.shape[0], encoding).encode()


def tiles(pixels: npt.NDArray[np.uint32], size: int) -> list[npt.NDArray[np.uint32]]:
    height, width = pixels.shape
    return [pixels[y : y + size, x : x + size] for y in range(0, height, size) for x in range(0, width, size)]


def is_solid(tile: npt.NDArray[np.uint32]) -> bool:
    return bool((tile == tile.flat[0]).all())


class RawEncoder:
    encoding = Encoding.RAW

    def rect(self, x: int, y: int, rgb: RGBImage) -> bytes:
        return rect_header(x, y, rgb, Encoding.RAW) + pack_pixels(RGBX8888, to_wire(rgb))


class HextileEncoder:
    """Each 16x16 tile solid (background only) or raw."""

    encoding = Encoding.HEXTILE

    def rect(self, x: int, y: int, rgb: RGBImage) -> bytes:
        out = [rect_header(x, y, rgb, Encoding.HEXTILE)]
        for tile in tiles(to_wire(rgb), 16):
            if is_solid(tile):
                out += [b"\x02", pack_pixels(RGBX8888, [tile.flat[0]])]
            else:
                out += [b"\x01", pack_pixels(RGBX8888, tile)]
        return b"".join(out)


class ZrleEncoder:
    """Each 64x64 tile solid or raw CPIXELs, over one zlib stream for the connection."""

    encoding = Encoding.ZRLE

    def __init__(self) -> None:
        self._deflater = zlib.compressobj()

    def rect(self, x: int, y: int, rgb: RGBImage) -> bytes:
        data = []
        for tile in tiles(to_wire(rgb), 64):
            if is_solid(tile):
                data += [b"\x01", pack_cpixels("rgbx8888_le", [tile.flat[0]])]
            else:
                data += [b"\x00", pack_cpixels("rgbx8888_le", tile)]
        compressed = self._deflater.compress(b"".join(data)) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        return rect_header(x, y, rgb, Encoding.ZRLE) + struct.pack(">I", len(compressed)) + compressed


class TightEncoder:
    """Fill for solid rectangles, else basic compression (copy filter) on zlib stream 0."""

    encoding = Encoding.TIGHT

    def __init__(self) -> None:
        self._deflater = zlib.compressobj()

    def rect(self, x: int, y: int, rgb: RGBImage) -> bytes:
        header = rect_header(x, y, rgb, Encoding.TIGHT)
        pixels = to_wire(rgb)
        if is_solid(pixels):
            return header + b"\x80" + pack_tpixels(RGBX8888, [pixels.flat[0]])
        data = pack_tpixels(RGBX8888, pixels)
        if len(data) < 12:
            return header + b"\x00" + data
        compressed = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        return header + b"\x00" + compact_length(len(compressed)) + compressed


def compact_length(length: int) -> bytes:
    out = bytearray([length & 0x7F])
    if length > 0x7F:
        out[0] |= 0x80
        out.append((length >> 7) & 0x7F)
        if length > 0x3FFF:
            out[1] |= 0x80
            out.append(length >> 14)
    return bytes(out)


Encoder = RawEncoder | HextileEncoder | ZrleEncoder | TightEncoder
ENCODERS: dict[str, Callable[[], Encoder]] = {
    "raw": RawEncoder,
    "hextile": HextileEncoder,
    "zrle": ZrleEncoder,
    "tight": TightEncoder,
}


def update(*rects: bytes) -> bytes:
    return encode_update_header(len(rects)) + b"".join(rects)


def cursor_rect(hotspot: tuple[int, int], rgb: RGBImage, mask: npt.NDArray[np.bool_]) -> bytes:
    height, width = mask.shape
    rows = np.packbits(mask, axis=1)
    return Rectangle(*hotspot, width, height, Encoding.CURSOR).encode() + pack_pixels(RGBX8888, to_wire(rgb)) + rows.tobytes()


# ---------------------------------------------------------------- test pictures


def desktop_image(width: int, height: int, seed: int) -> RGBImage:
    """Desktop-like: a flat background, a window with a title bar, and dark 'text' on white."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (58, 110, 165)
    top, left = height // 8, width // 10
    image[top : height - top, left : width - left] = (245, 245, 245)
    image[top : top + 14, left : width - left] = (40, 70, 130)
    for row in range(top + 22, height - top - 12, 12):
        for column in range(left + 8, width - left - 10, 7):
            if rng.random() < 0.75:
                image[row : row + 8, column : column + 5] = rng.integers(0, 60)
    return image


def patch_image(width: int, height: int, seed: int) -> RGBImage:
    """A small update: a line of 'typed' 5x8 glyphs, dark on white."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, np.uint8)
    for column in range(1, width - 5, 7):
        glyph = rng.random((8, 5)) < 0.45
        image[2:10, column : column + 5][glyph] = rng.integers(0, 60)
    return image


def psnr(a: RGBImage, b: RGBImage) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


# ---------------------------------------------------------------- journals


def journal_header(width: int, height: int, pixel_format: PixelFormat = RGBX8888) -> dict[str, object]:
    return {
        "format": 1,
        "session_id": "20261125T080000Z-0123abcd",
        "user": "alice",
        "source": "127.0.0.1",
        "target": "desk-01",
        "protocol": "vnc",
        "started": "2026-11-25T08:00:00.000000Z",
        "started_epoch": 1795075200.0,
        "width": width,
        "height": height,
        "pixel_format": dataclasses.asdict(pixel_format),
        "desktop_name": "test desktop",
        "gateway_version": "0.1.0",
        "node": "test",
        "policy": "operators",
        "record_input": "full",
        "clipboard": "off",
    }


class Session:
    """Builds a journal as the gateway would write it, and tracks the picture the browser should show."""

    def __init__(self, encoder: Encoder, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.encoder = encoder
        self.expected = np.zeros((height, width, 3), np.uint8)
        self.records = [encode_record(RecordKind.HEADER, 0, json.dumps(journal_header(width, height)).encode())]
        self.last_us = 0

    def server(self, t: float, data: bytes) -> None:
        self._record(RecordKind.SERVER_DATA, t, data)

    def client(self, t: float, data: bytes) -> None:
        self._record(RecordKind.CLIENT_DATA, t, data)

    def start(self, t: float = 0.0, extra_encodings: tuple[int, ...] = (Encoding.CURSOR, Encoding.DESKTOP_SIZE)) -> None:
        """The browser's opening: SetEncodings, then a full update request."""
        encodings = (self.encoder.encoding, *extra_encodings)
        request = FramebufferUpdateRequest(False, 0, 0, self.expected.shape[1], self.expected.shape[0])
        self.client(t, SetEncodings(encodings).encode() + request.encode())

    def paint(self, t: float, x: int, y: int, rgb: RGBImage) -> None:
        """One FramebufferUpdate with one rectangle, in the session's encoding."""
        self.server(t, update(self.encoder.rect(x, y, rgb)))
        self.expected[y : y + rgb.shape[0], x : x + rgb.shape[1]] = rgb

    def write(self, path: Path, end: float | None = None) -> Path:
        end_us = self.last_us if end is None else round(end * 1e6)
        end_json = {"ended": "2026-11-25T09:00:00Z", "ended_epoch": 0.0, "reason": "closed", "crashed": False, "torn_at": None}
        path.write_bytes(
            JOURNAL_MAGIC + b"".join(self.records) + encode_record(RecordKind.END, end_us, json.dumps(end_json).encode())
        )
        return path

    def _record(self, kind: RecordKind, t: float, data: bytes) -> None:
        offset_us = round(t * 1e6)
        assert offset_us >= self.last_us, "journal times never decrease"
        self.last_us = offset_us
        self.records.append(encode_record(kind, offset_us, data))


def typing_session(encoder: Encoder, updates: int, *, interval: float = 0.2, start: float = 0.05) -> Session:
    """A desktop painted whole, then one small 'typed' patch every ``interval`` seconds."""
    session = Session(encoder)
    session.start()
    session.paint(start, 0, 0, desktop_image(WIDTH, HEIGHT, seed=1))
    for index in range(updates):
        x, y = 40 + (index * 14) % 220, 60 + (index * 14 // 220) * 12 % 150
        session.paint(start + (index + 1) * interval, x, y, patch_image(14, 12, seed=index))
    return session


# ---------------------------------------------------------------- reading the video back


@dataclasses.dataclass
class Video:
    width: int
    height: int
    times: list[float]
    frames: list[RGBImage]
    keyframe_times: list[float]


def yuv_to_rgb(frame: av.VideoFrame) -> RGBImage:
    """Decode a yuv420p frame to RGB as a player does: BT.709, limited range (the tags the encoder writes).

    Done here in floating point because swscale's own conversion is off by a level or two.
    """
    assert (frame.format.name, frame.colorspace, frame.color_range) == ("yuv420p", 1, 1)
    height, width = frame.height, frame.width
    planes = frame.to_ndarray().astype(np.float64)
    luma = (planes[:height] - 16) / 219
    chroma = planes[height:].reshape(2, height // 2, width // 2).repeat(2, axis=1).repeat(2, axis=2)
    blue_difference, red_difference = (chroma - 128) / 224
    red = luma + 1.5748 * red_difference
    green = luma - 0.18732 * blue_difference - 0.46812 * red_difference
    blue = luma + 1.8556 * blue_difference
    return np.clip(np.rint(np.stack([red, green, blue], axis=-1) * 255), 0, 255).astype(np.uint8)


def read_video(path: Path) -> Video:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframe_times = [
            float(packet.pts * packet.time_base) for packet in container.demux(stream) if packet.pts is not None and packet.is_keyframe
        ]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(float(frame.time), yuv_to_rgb(frame)) for frame in container.decode(stream)]
        width, height = stream.codec_context.width, stream.codec_context.height
    return Video(width, height, [t for t, _ in decoded], [f for _, f in decoded], keyframe_times)


def render(tmp_path: Path, session: Session, end: float | None = None, **options: float) -> tuple[RenderResult, Video]:
    journal = session.write(tmp_path / "session.dgj", end)
    result = render_journal(journal, tmp_path / "session.mp4", **options)
    return result, read_video(result.output)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("encoding", ENCODERS)
def test_the_last_frame_is_the_desktop(tmp_path: Path, encoding: str) -> None:
    session = typing_session(ENCODERS[encoding](), updates=12)
    result, video = render(tmp_path, session)
    assert result.error is None
    # Before H.264 the replay is lossless; after it the picture is still close.
    assert np.array_equal(result.last_frame, session.expected)
    assert psnr(video.frames[-1], session.expected) >= 35
    assert (video.width, video.height) == (WIDTH, HEIGHT)
    assert result.frames == len(video.frames)


def test_frame_times_are_the_journal_times(tmp_path: Path) -> None:
    session = Session(RawEncoder())
    session.start()
    times = [0.1, 0.5, 1.25, 3.0, 63.007]
    for index, t in enumerate(times):
        session.paint(t, 0, 0, desktop_image(WIDTH, HEIGHT, seed=index))
    result, video = render(tmp_path, session, end=70.0)
    # A black frame at 0 (the video starts with the session), one per update, the last held until the end.
    assert video.times == pytest.approx([0.0, *times, 70.0], abs=0.0005)
    assert result.duration == pytest.approx(70.0)


def test_every_repaint_of_the_whole_desktop_stays_legible(tmp_path: Path) -> None:
    session = Session(RawEncoder())
    session.start()
    desktops = [desktop_image(WIDTH, HEIGHT, seed=index) for index in range(4)]
    for t, desktop in zip([0.1, 0.5, 1.25, 1.5], desktops):  # new windows, one after the other
        session.paint(t, 0, 0, desktop)
    _, video = render(tmp_path, session, end=1.9)
    assert video.keyframe_times == [0.0]  # every repaint is a predicted frame, the hardest case
    assert video.times == pytest.approx([0.0, 0.1, 0.5, 1.25, 1.5, 1.9], abs=0.0005)
    for frame, desktop in zip(video.frames[1:], [*desktops, desktops[-1]]):
        assert psnr(frame, desktop) >= 35  # not only the last: a reviewer pauses anywhere


def test_an_idle_minute_costs_no_frames(tmp_path: Path) -> None:
    session = typing_session(RawEncoder(), updates=20, interval=0.1)
    busy_until = session.last_us / 1e6
    for index in range(20):
        session.paint(busy_until + 60 + index * 0.1, 0, 0, patch_image(14, 12, seed=100 + index))
    result, video = render(tmp_path, session, max_fps=30)  # every update its own frame
    idle = [t for t in video.times if busy_until < t < busy_until + 60]
    assert idle == []  # not 1800 frames at 30 fps
    assert result.frames == len(video.times) == 1 + 21 + 20
    assert result.duration == pytest.approx(busy_until + 60 + 1.9, abs=0.001)


def test_updates_closer_than_max_fps_are_coalesced_into_the_latest(tmp_path: Path) -> None:
    session = typing_session(RawEncoder(), updates=200, interval=0.005)  # one second at 200 updates/s
    result, video = render(tmp_path, session, max_fps=20)
    gaps = np.diff(video.times)
    assert gaps.min() >= 0.05 - 0.0005
    assert len(video.times) <= 1 + 1.05 * 20 + 2
    assert np.array_equal(result.last_frame, session.expected)  # nothing lost: the latest picture wins
    assert psnr(video.frames[-1], session.expected) >= 35


def test_keyframes_bound_the_seek_distance(tmp_path: Path) -> None:
    session = typing_session(RawEncoder(), updates=60, interval=0.1)
    busy_until = session.last_us / 1e6
    session.paint(busy_until + 30, 0, 0, patch_image(14, 12, seed=7))  # after an idle half minute
    result, video = render(tmp_path, session, keyframe_interval=1.0)
    assert video.keyframe_times[0] == 0.0
    active = [t for t in video.keyframe_times if t <= busy_until]
    # Due after 1 s, a keyframe comes with the next frame: 0.1 s later at most, at 10 frames a second.
    assert all(1.0 - 0.001 <= gap <= 1.1 + 0.001 for gap in np.diff(active))
    # Every frame is less than keyframe_interval after the keyframe it decodes from.
    for t in video.times:
        assert t - max(k for k in video.keyframe_times if k <= t) < 1.0
    assert min(abs(k - (busy_until + 30)) for k in video.keyframe_times) < 0.001  # after a gap: a keyframe


def test_moov_comes_before_mdat(tmp_path: Path) -> None:
    result, _ = render(tmp_path, typing_session(RawEncoder(), updates=3))
    data = result.output.read_bytes()
    assert 0 <= data.index(b"moov") < data.index(b"mdat")


def test_the_cursor_is_drawn_at_the_pointer(tmp_path: Path) -> None:
    session = Session(RawEncoder())
    session.start()
    shape = np.zeros((16, 16, 3), np.uint8)
    shape[...] = (250, 20, 20)
    mask = np.zeros((16, 16), np.bool_)
    mask[:, :8] = True  # left half only: the right half must stay background
    background = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    session.server(0.05, update(RawEncoder().rect(0, 0, background), cursor_rect((2, 3), shape, mask)))
    session.client(0.5, PointerEvent(0, 100, 80).encode())
    session.client(1.0, PointerEvent(0, 200, 150).encode())  # a move with no screen update still shows
    result, video = render(tmp_path, session, max_fps=30)  # every pointer move its own frame
    assert video.times == pytest.approx([0.0, 0.05, 0.5, 1.0], abs=0.0005)
    expected = background.copy()
    expected[147:163, 198:206] = (250, 20, 20)  # hotspot (2, 3) at the pointer (200, 150)
    assert np.array_equal(result.last_frame, expected)
    drawn = video.frames[-1][149:161, 199:205].astype(int)
    assert np.abs(drawn - (250, 20, 20)).mean() < 12
    assert np.abs(video.frames[-1][149:161, 208:212].astype(int) - 200).mean() < 12
    assert np.abs(video.frames[-2][77:93, 98:106].astype(int) - (250, 20, 20)).mean() < 30


def test_a_corrupt_stream_ends_in_a_decode_error_and_a_playable_video(tmp_path: Path) -> None:
    session = typing_session(ZrleEncoder(), updates=5)
    good = session.expected.copy()
    session.server(2.0, b"\xc8garbage")  # server message type 200 does not exist
    session.paint(3.0, 0, 0, desktop_image(WIDTH, HEIGHT, seed=9))
    result, video = render(tmp_path, session)
    assert result.error is not None
    assert "breaks the protocol" in result.error and "at 2.000 s" in result.error
    assert np.array_equal(result.last_frame, good)
    assert psnr(video.frames[-1], good) >= 35
    assert video.times[-1] == pytest.approx(2.0)
    assert result.frames == len(video.frames)


def test_undecodable_pixels_end_in_a_decode_error(tmp_path: Path) -> None:
    session = typing_session(ZrleEncoder(), updates=3)
    bad = Rectangle(0, 0, 16, 16, Encoding.ZRLE).encode() + struct.pack(">I", 6) + b"\x00\x01junk"
    session.server(1.5, update(bad))
    result, video = render(tmp_path, session)
    assert result.error is not None and "zlib" in result.error and "at 1.500 s" in result.error
    assert psnr(video.frames[-1], session.expected) >= 35


def test_set_pixel_format_and_colour_depth_are_followed(tmp_path: Path) -> None:
    rgb565 = FORMATS["rgb565_le"]
    session = Session(RawEncoder())
    session.start()
    session.client(0.01, SetPixelFormat(rgb565).encode())
    pixels = random_pixels(rgb565, (HEIGHT, WIDTH), np.random.default_rng(5))
    raw = Rectangle(0, 0, WIDTH, HEIGHT, Encoding.RAW).encode() + pack_pixels(rgb565, pixels)
    session.server(0.1, update(raw))
    result, _ = render(tmp_path, session)
    assert result.error is None
    assert np.array_equal(result.last_frame, expected_rgb(rgb565, pixels))


@pytest.mark.parametrize(("new_size", "content_box"), [((640, 480), (0, 0, 320, 240)), ((160, 120), (80, 60, 160, 120))])
def test_a_resized_desktop_is_letterboxed_into_the_first_size(
    tmp_path: Path, new_size: tuple[int, int], content_box: tuple[int, int, int, int]
) -> None:
    session = typing_session(RawEncoder(), updates=1)
    width, height = new_size
    grown = np.full((height, width, 3), (30, 160, 60), np.uint8)
    resize = Rectangle(0, 0, width, height, Encoding.DESKTOP_SIZE).encode()
    session.server(1.0, update(resize, RawEncoder().rect(0, 0, grown)))
    result, video = render(tmp_path, session)
    assert result.error is None
    assert (video.width, video.height) == (WIDTH, HEIGHT)
    assert result.last_frame.shape == (height, width, 3)
    left, top, box_width, box_height = content_box
    frame = video.frames[-1].astype(int)
    inside = frame[top + 2 : top + box_height - 2, left + 2 : left + box_width - 2]
    assert np.abs(inside - (30, 160, 60)).mean() < 6
    border = np.ones((HEIGHT, WIDTH), np.bool_)
    border[max(top - 2, 0) : top + box_height + 2, max(left - 2, 0) : left + box_width + 2] = False
    assert not border.any() or frame[border].max() < 24  # black around a desktop that shrank


def test_progress_follows_the_journal_bytes(tmp_path: Path) -> None:
    journal = typing_session(RawEncoder(), updates=30).write(tmp_path / "s.dgj")
    reported: list[float] = []
    render_journal(journal, tmp_path / "s.mp4", progress=reported.append)
    assert reported == sorted(reported) and len(set(reported)) == len(reported)
    assert reported[-1] == 1.0 and len(reported) > 10


def test_an_unusable_header_is_refused_before_any_video(tmp_path: Path) -> None:
    header = journal_header(0, 240)
    journal = tmp_path / "bad.dgj"
    journal.write_bytes(JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, json.dumps(header).encode()))
    with pytest.raises(DecodeError, match="desktop size"):
        render_journal(journal, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_replay_rebuilds_the_framebuffer_exactly(tmp_path: Path) -> None:
    session = typing_session(TightEncoder(), updates=25)
    reader = JournalReader(session.write(tmp_path / "s.dgj"))
    replay = SessionReplay(SessionHeader.from_json(reader.header))
    changes = sum(replay.apply(record) for record in reader)
    assert changes == 26  # the first full update and 25 patches
    assert np.array_equal(replay.framebuffer.pixels, session.expected)
