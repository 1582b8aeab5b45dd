"""Rendering for review: clips (a stretch of a session) and the poster (its first picture with content)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from recorder.render import render_journal
from recorder.video import write_jpeg
from tests.recorder.test_render import (
    HEIGHT,
    WIDTH,
    RawEncoder,
    RGBImage,
    Session,
    desktop_image,
    psnr,
    read_video,
    typing_session,
)

PAINTED = [0.1, 0.5, 1.25, 3.0, 6.0, 9.0]


def painted_session() -> tuple[Session, list[RGBImage]]:
    """A new whole picture at each of :data:`PAINTED`, ending at 10 s."""
    session = Session(RawEncoder())
    session.start()
    images = [desktop_image(WIDTH, HEIGHT, seed=index) for index in range(len(PAINTED))]
    for t, image in zip(PAINTED, images):
        session.paint(t, 0, 0, image)
    return session, images


def read_jpeg(path: Path) -> RGBImage:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        picture: RGBImage = frame.to_ndarray(format="rgb24")
    return picture


# ---------------------------------------------------------------- clips


@pytest.mark.parametrize(("start", "end", "times", "pictures"), [
    # The clip opens on the picture of its start (painted at 1.25), then each update, held to its end.
    (2.0, 7.0, [0.0, 1.0, 4.0, 5.0], [2, 3, 4, 4]),
    # An update at the clip's very start comes one frame interval (1/10 s, the default) after the picture before it.
    (0.5, 3.0, [0.0, 0.1, 0.75, 2.5], [0, 1, 2, 3]),
    (9.5, 10.0, [0.0, 0.5], [5, 5]),  # after the last update: its picture, held
])
def test_a_clip_is_the_stretch_asked_for_in_its_own_time(tmp_path: Path, start: float, end: float,
                                                         times: list[float], pictures: list[int]) -> None:
    session, images = painted_session()
    journal = session.write(tmp_path / "s.dgj", end=10.0)
    result = render_journal(journal, tmp_path / "clip.mp4", start=start, end=end)
    video = read_video(result.output)
    assert result.error is None
    assert video.times == pytest.approx(times, abs=0.0005)
    assert result.duration == pytest.approx(end - start)
    for frame, picture in zip(video.frames, pictures):
        assert psnr(frame, images[picture]) >= 35
    assert video.keyframe_times[0] == 0.0


def test_a_clip_reports_progress_to_its_end(tmp_path: Path) -> None:
    journal = typing_session(RawEncoder(), updates=40, interval=0.25).write(tmp_path / "s.dgj")
    reported: list[float] = []
    render_journal(journal, tmp_path / "clip.mp4", start=2.0, end=8.0, progress=reported.append)
    assert reported == sorted(reported) and len(set(reported)) == len(reported)
    assert reported[-1] == 1.0 and 0.2 < reported[len(reported) // 2] < 0.9


@pytest.mark.parametrize(("start", "end"), [(-1.0, 5.0), (5.0, 5.0), (5.0, 2.0)])
def test_a_clip_must_start_at_or_after_0_and_end_after_it_starts(tmp_path: Path, start: float, end: float) -> None:
    journal = painted_session()[0].write(tmp_path / "s.dgj", end=10.0)
    with pytest.raises(ValueError, match="a clip must start"):
        render_journal(journal, tmp_path / "clip.mp4", start=start, end=end)
    assert not (tmp_path / "clip.mp4").exists()


# ---------------------------------------------------------------- poster


def test_the_poster_is_the_first_picture_with_content(tmp_path: Path) -> None:
    session = Session(RawEncoder())
    session.start()
    session.paint(0.05, 0, 0, np.zeros((HEIGHT, WIDTH, 3), np.uint8))  # a black screen first: no content
    first, later = desktop_image(WIDTH, HEIGHT, seed=7), desktop_image(WIDTH, HEIGHT, seed=8)
    session.paint(1.0, 0, 0, first)
    session.paint(2.0, 0, 0, later)
    poster = tmp_path / "s.jpg"
    result = render_journal(session.write(tmp_path / "s.dgj"), tmp_path / "s.mp4", poster=poster)
    assert result.poster == poster
    picture = read_jpeg(poster)
    assert picture.shape == (HEIGHT, WIDTH, 3)
    assert psnr(picture, first) >= 30 and psnr(picture, first) > psnr(picture, later) + 5
    assert not list(tmp_path.glob("*.part"))


def test_without_any_content_the_poster_is_the_last_picture(tmp_path: Path) -> None:
    session = Session(RawEncoder())
    session.start()
    session.paint(0.5, 0, 0, np.full((HEIGHT, WIDTH, 3), (20, 90, 200), np.uint8))
    poster = tmp_path / "s.jpg"
    render_journal(session.write(tmp_path / "s.dgj"), tmp_path / "s.mp4", poster=poster)
    assert np.abs(read_jpeg(poster).astype(int) - (20, 90, 200)).mean() < 4


def test_no_poster_unless_asked(tmp_path: Path) -> None:
    result = render_journal(painted_session()[0].write(tmp_path / "s.dgj"), tmp_path / "s.mp4")
    assert result.poster is None and not list(tmp_path.glob("*.jpg"))


def test_a_wide_picture_is_scaled_down_to_the_poster_width(tmp_path: Path) -> None:
    picture = np.zeros((301, 1001, 3), np.uint8)
    picture[:, 500:] = 255
    write_jpeg(picture, tmp_path / "p.jpg", max_width=500)
    written = read_jpeg(tmp_path / "p.jpg")
    assert written.shape == (150, 500, 3)
    assert written[:, :240].max() < 20 and written[:, 260:].min() > 235
    with pytest.raises(ValueError, match="quality"):
        write_jpeg(picture, tmp_path / "q.jpg", quality=1)
