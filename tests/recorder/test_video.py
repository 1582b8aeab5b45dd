"""VideoEncoder: H.264 MP4, VFR millisecond times, keyframes when due, even quality, letterboxing, a finished file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from recorder.video import BAND_ROWS, StripConverter, VideoEncoder
from tests.recorder.test_render import desktop_image, psnr, read_video


def still(width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = colour
    return frame


def test_frames_keep_their_times_to_the_millisecond(tmp_path: Path) -> None:
    times = [0.0, 0.001, 0.5, 0.533, 100.0, 3600.25]
    with VideoEncoder(tmp_path / "v.mp4", 64, 48) as encoder:
        for index, t in enumerate(times):
            encoder.add_frame(still(64, 48, (index * 40, 80, 200)), t)
    video = read_video(tmp_path / "v.mp4")
    assert video.times == pytest.approx(times, abs=1e-6)
    assert encoder.frames == 6 and encoder.last_time == 3600.25


# A rendered video must keep 35 dB; the encoder alone keeps a margin above that.


def test_a_still_desktop_keeps_its_quality(tmp_path: Path) -> None:
    image = desktop_image(640, 400, seed=3)
    with VideoEncoder(tmp_path / "v.mp4", 640, 400) as encoder:
        encoder.add_frame(image, 0.0)
    video = read_video(tmp_path / "v.mp4")
    assert psnr(video.frames[0], image) >= 38  # about 36 with the deblocking filter on


def test_a_repainted_desktop_keeps_its_quality(tmp_path: Path) -> None:
    first, second = desktop_image(640, 400, seed=3), desktop_image(640, 400, seed=4)
    with VideoEncoder(tmp_path / "v.mp4", 640, 400) as encoder:
        encoder.add_frame(first, 0.0)
        encoder.add_frame(second, 0.5)  # a new window between keyframes: predicted, yet every pixel new
    video = read_video(tmp_path / "v.mp4")
    assert video.keyframe_times == [0.0]
    assert psnr(video.frames[1], second) >= 38  # about 34 at crf 23, which spends less on complex frames


def packet_sizes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [packet.size for packet in container.demux(container.streams.video[0]) if packet.size]


def test_a_scrolled_page_is_coded_as_moved_not_as_new_text(tmp_path: Path) -> None:
    page = np.concatenate([desktop_image(640, 400, seed=seed) for seed in (5, 6)])  # 800 rows of "text"
    with VideoEncoder(tmp_path / "v.mp4", 640, 400) as encoder:
        for step, top in enumerate((0, 0, 60, 120)):  # then scrolled by 60 rows, twice
            encoder.add_frame(np.ascontiguousarray(page[top : top + 400]), step * 0.5)
    first, unchanged, *scrolled = packet_sizes(tmp_path / "v.mp4")
    assert all(size < first / 8 for size in scrolled)  # as new text, about as big as the first
    video = read_video(tmp_path / "v.mp4")
    assert psnr(video.frames[-1], page[120:520]) >= 38


def test_a_keyframe_comes_with_the_first_frame_once_the_interval_has_passed(tmp_path: Path) -> None:
    times = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 60.0, 60.1]
    with VideoEncoder(tmp_path / "v.mp4", 64, 48, keyframe_interval=1.0) as encoder:
        for index, t in enumerate(times):
            encoder.add_frame(still(64, 48, (index * 20, 0, 0)), t)
    assert read_video(tmp_path / "v.mp4").keyframe_times == pytest.approx([0.0, 1.2, 2.4, 60.0])


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    with VideoEncoder(tmp_path / "v.mp4", 101, 61) as encoder:
        encoder.add_frame(still(101, 61, (240, 240, 240)), 0.0)
    video = read_video(tmp_path / "v.mp4")
    assert (video.width, video.height) == (102, 62)
    frame = video.frames[0].astype(int)
    assert np.abs(frame[:59, :99] - 240).max() <= 3
    assert frame[:, 101].mean() < 40 and frame[61, :].mean() < 40  # the padding is black


def test_a_frame_of_another_shape_is_letterboxed(tmp_path: Path) -> None:
    wide = still(400, 50, (250, 250, 250))  # scaled down to 200x25, centred vertically
    with VideoEncoder(tmp_path / "v.mp4", 200, 100) as encoder:
        encoder.add_frame(wide, 0.0)
        encoder.add_frame(still(50, 20, (250, 250, 250)), 1.0)  # smaller: centred as is
    first, second = (frame.astype(int) for frame in read_video(tmp_path / "v.mp4").frames)
    assert np.abs(first[40:60, 2:198] - 250).max() <= 4
    assert first[:34].max() < 24 and first[66:].max() < 24
    assert np.abs(second[42:58, 77:123] - 250).max() <= 4
    assert second[:, :70].max() < 24 and second[:36].max() < 24


def test_times_must_increase(tmp_path: Path) -> None:
    with VideoEncoder(tmp_path / "v.mp4", 64, 48) as encoder:
        encoder.add_frame(still(64, 48, (0, 0, 0)), 1.0)
        with pytest.raises(ValueError, match="does not come after"):
            encoder.add_frame(still(64, 48, (0, 0, 0)), 1.0004)  # the same millisecond


def test_an_exception_still_leaves_a_playable_file(tmp_path: Path) -> None:
    image = desktop_image(160, 120, seed=4)
    with pytest.raises(RuntimeError), VideoEncoder(tmp_path / "v.mp4", 160, 120) as encoder:
        encoder.add_frame(image, 0.0)
        encoder.add_frame(image, 0.5)
        raise RuntimeError("the renderer failed")
    video = read_video(tmp_path / "v.mp4")
    assert video.times == pytest.approx([0.0, 0.5])
    data = (tmp_path / "v.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    encoder.close()  # idempotent


@pytest.mark.parametrize(
    ("width", "height", "interval", "qp"),
    [(0, 10, 2.0, 26), (10, -1, 2.0, 26), (10, 10, 0.0, 26), (10, 10, 2.0, -1), (10, 10, 2.0, 52)],
)
def test_impossible_settings_are_refused(tmp_path: Path, width: int, height: int, interval: float, qp: int) -> None:
    with pytest.raises(ValueError):
        VideoEncoder(tmp_path / "v.mp4", width, height, keyframe_interval=interval, qp=qp)
    assert not (tmp_path / "v.mp4").exists()


def test_a_finished_video_takes_no_more_frames(tmp_path: Path) -> None:
    encoder = VideoEncoder(tmp_path / "v.mp4", 64, 48)
    encoder.add_frame(still(64, 48, (0, 0, 0)), 0.0)
    encoder.close()
    with pytest.raises(ValueError, match="closed"):
        encoder.add_frame(still(64, 48, (0, 0, 0)), 1.0)
    assert read_video(tmp_path / "v.mp4").times == [0.0]


def test_the_stream_is_h264_yuv420p_tagged_bt709(tmp_path: Path) -> None:
    with VideoEncoder(tmp_path / "v.mp4", 64, 48) as encoder:
        encoder.add_frame(still(64, 48, (10, 20, 30)), 0.0)
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (stream.codec_context.colorspace, stream.codec_context.color_range) == (1, 1)


def whole_frame_yuv(rgb: np.ndarray) -> np.ndarray:
    """The yuv420p planes swscale makes of the whole frame at once, as the encoder did before strips."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709",
                                                                      dst_color_range="MPEG")
    converted: np.ndarray = frame.to_ndarray()
    return converted


def test_only_the_bands_that_changed_are_converted_again() -> None:
    desktop = desktop_image(320, 240, seed=3)
    converter = StripConverter(320, 240)
    first = converter.convert(desktop).to_ndarray()
    assert np.array_equal(first, whole_frame_yuv(desktop))  # the first frame is converted whole
    typed = desktop.copy()
    typed[BAND_ROWS * 5 + 2 : BAND_ROWS * 5 + 12, 40:60] = (250, 250, 250)  # a few characters within one band
    converter.bands_converted = 0
    second = converter.convert(typed).to_ndarray()
    assert converter.bands_converted == 1
    expected = whole_frame_yuv(typed)
    changed = slice(BAND_ROWS * 5, BAND_ROWS * 6)
    assert np.array_equal(second[:240][: changed.start], expected[:240][: changed.start])  # luma untouched above
    assert np.abs(second[:240][changed].astype(int) - expected[:240][changed]).max() <= 1
    assert np.abs(second.astype(int) - expected).max() <= 2  # chroma: the band's edge filtered on its own
    converter.bands_converted = 0
    assert np.array_equal(converter.convert(typed.copy()).to_ndarray(), second)  # nothing changed: nothing done
    assert converter.bands_converted == 0


@pytest.mark.parametrize(("left", "right"), [(0, 1), (100, 140), (250, 320), (127, 129), (0, 320)])
def test_a_band_is_converted_again_across_the_columns_that_changed(left: int, right: int) -> None:
    desktop = desktop_image(320, 240, seed=3)
    converter = StripConverter(320, 240)
    converter.convert(desktop)
    typed = desktop.copy()
    typed[BAND_ROWS * 2 + 3 : BAND_ROWS * 2 + 9, left:right] = (200, 30, 90)
    converted = converter.convert(typed).to_ndarray().astype(int)
    expected = whole_frame_yuv(typed)
    assert np.abs(converted[:240] - expected[:240]).max() <= 1  # luma, which has no neighbours to filter
    assert np.abs(converted - expected).max() <= 2  # chroma: the piece's edges filtered on their own


def test_changes_in_several_places_convert_only_their_bands() -> None:
    desktop = desktop_image(320, 240, seed=3)
    converter = StripConverter(320, 240)
    converter.convert(desktop)
    changed = desktop.copy()
    changed[BAND_ROWS + 4 : BAND_ROWS * 4 - 3, 100:180] = (20, 160, 60)  # a tall change across adjacent bands
    changed[BAND_ROWS * 9 + 1, 300:302] = (255, 0, 0)  # and a dot far away
    converter.bands_converted = 0
    converted = converter.convert(changed).to_ndarray().astype(int)
    assert converter.bands_converted == 4
    expected = whole_frame_yuv(changed)
    assert np.abs(converted[:240] - expected[:240]).max() <= 1
    assert np.abs(converted - expected).max() <= 2
    untouched = [*range(0, BAND_ROWS), *range(BAND_ROWS * 4, BAND_ROWS * 9), *range(BAND_ROWS * 10, 240)]
    assert np.array_equal(converted[untouched], expected[untouched])


def test_a_frame_changing_all_over_is_converted_whole() -> None:
    converter = StripConverter(320, 240)
    converter.convert(desktop_image(320, 240, seed=1))
    for seed in (2, 4):  # the frame kept for whole conversions is reused
        other = desktop_image(320, 240, seed=seed)
        assert np.array_equal(converter.convert(other).to_ndarray(), whole_frame_yuv(other))
