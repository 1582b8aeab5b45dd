"""``deskgate recordings render`` and ``verify``: one recording, found by id, on this node's storage."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gateway.config import Config
from recorder.errors import IntegrityError, RecordingError
from recorder.journal import recording_path
from recorder.render import render_journal
from recorder.seal import read_key, verify_journal

PROGRESS_WIDTH = 40


def _journal(config: Config, recording_id: str) -> Path | None:
    """The journal of ``recording_id``, or None (with a message) when the id is malformed or unknown."""
    try:
        path = recording_path(config.storage.recordings, recording_id)
    except ValueError:
        print(f"deskgate: {recording_id!r} is not a recording id (e.g. 20261125T080000Z-1a2b3c4d); "
              "see deskgate recordings list", file=sys.stderr)
        return None
    if not path.is_file():
        print(f"deskgate: no recording {recording_id} under {config.storage.recordings}", file=sys.stderr)
        return None
    return path


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn only when it moves."""

    def __init__(self) -> None:
        self._shown = -1
        self._started = time.monotonic()

    def __call__(self, fraction: float) -> None:
        filled = int(fraction * PROGRESS_WIDTH)
        percent = int(fraction * 100)
        if percent == self._shown:
            return
        self._shown = percent
        bar = "#" * filled + "-" * (PROGRESS_WIDTH - filled)
        print(f"\rrendering [{bar}] {percent:3d}%  {time.monotonic() - self._started:5.1f} s",
              end="", file=sys.stderr, flush=True)


def render_command(config: Config, recording_id: str, output: Path) -> int:
    """Render one recording to an MP4 file, with a progress bar and the realtime factor at the end."""
    journal = _journal(config, recording_id)
    if journal is None:
        return 1
    if output.suffix.lower() != ".mp4":
        print(f"deskgate: -o {output}: the video is H.264 in MP4; name the file *.mp4", file=sys.stderr)
        return 1
    try:
        result = render_journal(journal, output, progress=_ProgressBar())
    except RecordingError as exc:
        print(f"\ndeskgate: cannot render {recording_id}: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    print(f"{output}: {result.duration:.1f} s of video, {result.frames} frames, rendered in "
          f"{result.wall_seconds:.1f} s ({result.realtime_factor:.1f}x realtime)")
    if result.error is not None:
        print(f"deskgate: the video stops early: {result.error}", file=sys.stderr)
        return 1
    return 0


def verify_command(config: Config, recording_id: str) -> int:
    """Check one recording against its seal: exit 0 when intact, 1 saying why when not."""
    journal = _journal(config, recording_id)
    if journal is None:
        return 1
    key = read_key(config.storage.recording_key_file)
    try:
        verify_journal(journal, key)
    except IntegrityError as exc:
        print(f"{recording_id}: FAILED: {exc}")
        return 1
    print(f"{recording_id}: OK (sealed with this gateway's recording key; content and size match)")
    return 0
