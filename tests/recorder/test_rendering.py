"""A recording's video hides the personal data its screen text found, for the time it was on screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from base.db import Store
from recorder.index import RecordingIndex, VideoState
from recorder.masking import MaskRegion, TimedMask
from recorder.pii import digest_key
from recorder.rendering import found_masks, render_video
from recorder.screen_changes import BoxLimits
from recorder.screen_index import ScreenTextOptions, read_recording_text
from recorder.screen_search import ScreenTexts
from recorder.summary import summarize_journal
from recorder.worker import RenderPool
from tests.recorder.test_render import read_video
from tests.recorder.test_screen_text import WORDS, card_journal, fake_tesseract
from tests.text_keys import TEXT_KEYS


@pytest.fixture
async def pool() -> AsyncIterator[RenderPool]:
    pool = RenderPool(1)
    try:
        yield pool
    finally:
        await pool.close()


async def test_personal_data_found_on_screen_is_masked_while_it_was_visible(
        tmp_path: Path, store: Store, pool: RenderPool) -> None:
    journal = card_journal(tmp_path)
    index = RecordingIndex(store, TEXT_KEYS)
    summary = summarize_journal(journal)
    await index.add(summary, sha256=None, node="gw-1")

    plain = tmp_path / "plain" / journal.name
    plain.parent.mkdir()
    plain.write_bytes(journal.read_bytes())
    assert await render_video(index, pool, summary.id, plain)  # nothing found yet: the ink is in the video
    unmasked = read_video(plain.with_suffix(".mp4"))

    options = ScreenTextOptions(digest_key=digest_key(b"k" * 32), tesseract=fake_tesseract(tmp_path, WORDS),
                                limits=BoxLimits(context_x=0, context_y=0))
    await ScreenTexts(store, TEXT_KEYS).replace(summary.id, read_recording_text(journal, options))
    assert await found_masks(index, summary.id) == (
        TimedMask(MaskRegion(40, 2, 190, 12, "card"), 0.05, 9.0),
        TimedMask(MaskRegion(60, 32, 190, 10, "card"), 2.0, 5.0),
        TimedMask(MaskRegion(60, 32, 190, 10, "card"), 5.0, 9.0),
    )
    assert await render_video(index, pool, summary.id, journal)
    masked = read_video(journal.with_suffix(".mp4"))
    row = await index.get(summary.id)
    assert row is not None and row.video_state is VideoState.READY and row.video_path == str(journal.with_suffix(".mp4"))

    frames = list(zip(masked.times, unmasked.frames, masked.frames, strict=True))
    assert [t for t, _, _ in frames if t >= 5.0]
    for t, before, after in frames:
        if t > 0.1:  # the white stretch the fake OCR read a card number in, first found at 0.05: hidden throughout
            assert int(before[4:12, 44:226].min()) > 200 and int(after[4:12, 44:226].max()) <= 24
        if t >= 5.0:  # the line redrawn grey at 5.0 is hidden from then on
            assert int(before[34:40, 64:240].min()) > 100 and int(after[34:40, 64:240].max()) <= 24
