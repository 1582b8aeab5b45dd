"""Reading a recording's screen text: where the desktop changed, what Tesseract's output means, each line kept
once per appearance, personal data replaced and timed from its first change to the one that took it away,
and the index's search by text with its moments.

Tesseract itself is replaced here by a script printing its TSV (the functional test runs the real one).
"""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest

from base.db import Store
from gateway.rfb.messages import PointerEvent
from recorder.index import RecordingIndex
from recorder.journal import JOURNAL_MAGIC, RecordKind, encode_json, encode_record
from recorder.ocr import MARGIN, OcrError, Tesseract, normalize_text
from recorder.pii import digest_key
from recorder.records import SessionEnd
from recorder.screen_changes import Box, BoxLimits, changed_boxes, screen_changes
from recorder.screen_index import ScreenLine, ScreenTextOptions, read_recording_text
from recorder.screen_search import ScreenTexts
from recorder.summary import summarize_journal
from recorder.writer import session_header
from tests.recorder.test_index import SAMPLES
from tests.recorder.test_render import ENCODERS, Session
from tests.text_keys import TEXT_KEYS

WHITE = np.full((240, 320, 3), 255, np.uint8)
TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"


def ink(width: int, height: int) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def mask_of(*boxes: Box, shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    mask = np.zeros(shape, np.bool_)
    for box in boxes:
        mask[box.y:box.bottom, box.x:box.right] = True
    return mask


# ---------------------------------------------------------------- where it changed


def test_words_on_one_line_make_one_box_widened_by_context_within_the_screen() -> None:
    limits = BoxLimits(context_x=20, context_y=2)
    [box] = changed_boxes(mask_of(Box(10, 50, 40, 12), Box(62, 50, 30, 12)), limits)
    assert box == Box(0, 48, 82 + 20 + 10, 16)


def test_lines_far_apart_make_boxes_of_their_own_and_specks_none() -> None:
    limits = BoxLimits(context_x=0, context_y=0)
    boxes = changed_boxes(mask_of(Box(10, 20, 50, 12), Box(10, 150, 50, 12), Box(200, 100, 2, 14)), limits)
    assert boxes == [Box(10, 20, 50, 12), Box(10, 150, 50, 12)]


def test_a_big_change_is_read_in_bounded_pieces() -> None:
    boxes = changed_boxes(mask_of(Box(0, 0, 320, 240)), BoxLimits(max_width=200, max_height=100))
    assert all(box.width <= 200 and box.height <= 100 for box in boxes)
    assert sum(box.width * box.height for box in boxes) == 320 * 240


def typing_journal(tmp_path: Path) -> Path:
    session = Session(ENCODERS["raw"]())
    session.start()
    session.paint(0.05, 0, 0, WHITE)
    session.paint(2.0, 20, 30, ink(60, 12))
    session.client(2.1, PointerEvent(0, 100, 100).encode())  # a pointer that only moves changes nothing
    session.paint(2.3, 90, 30, ink(40, 12))
    session.client(4.0, PointerEvent(0, 110, 100).encode())
    session.paint(5.0, 20, 150, ink(80, 12))
    session.paint(5.2, 20, 150, ink(80, 12))  # the same pixels again: no change
    return session.write(tmp_path / "typing.dgj", end=9.0)


def test_changes_are_looked_at_once_per_interval_at_the_time_of_the_picture(tmp_path: Path) -> None:
    limits = BoxLimits(context_x=0, context_y=0)
    changes = list(screen_changes(typing_journal(tmp_path), interval=1.0, limits=limits))
    # the look due at 5.0 comes with the next record (5.2), before it: the picture of 5.0; 5.2 repaints the same
    assert [(change.t, change.since) for change in changes] == [(0.05, 0.05), (2.3, 2.0), (5.0, 5.0)]
    assert changes[1].boxes == [Box(20, 30, 110, 12)]
    assert changes[2].boxes == [Box(20, 150, 80, 12)]
    assert changes[2].touches(Box(0, 140, 30, 20)) and not changes[2].touches(Box(20, 30, 110, 12))


# ---------------------------------------------------------------- Tesseract's output


def fake_tesseract(tmp_path: Path, rows: str, exit_code: int = 0) -> str:
    """A ``tesseract`` that prints ``rows`` (TSV, with PAGE for the page number) for each image listed."""
    (tmp_path / "rows.tsv").write_text(rows)
    script = tmp_path / "tesseract"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        printf '%s\\n' '{TSV_HEADER}'
        page=0
        while read -r image; do
          page=$((page + 1))
          sed "s/PAGE/$page/g" '{tmp_path / "rows.tsv"}'
        done < "$1"
        [ {exit_code} -eq 0 ] || echo "Error: could not read image" >&2
        exit {exit_code}
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


WORDS = "".join(f"5\tPAGE\t1\t1\t1\t{n}\t{left}\t{MARGIN + 2}\t30\t12\t{conf}\t{text}\n"
                for n, (left, conf, text) in enumerate([(MARGIN, 91, "card"), (MARGIN + 40, 90, "4111"),
                                                        (MARGIN + 80, 12, "~"), (MARGIN + 120, 88, "1111"),
                                                        (MARGIN + 160, 95, "1111"), (MARGIN + 200, 93, "1111")], 1))


def test_words_are_moved_from_each_crop_to_the_desktop_and_unsure_ones_dropped(tmp_path: Path) -> None:
    tesseract = Tesseract(binary=fake_tesseract(tmp_path, WORDS))
    first, second = tesseract.read([(WHITE, Box(0, 0, 300, 40)), (WHITE, Box(5, 100, 300, 40))])
    [line] = second
    assert [word.text for word in line.words] == ["card", "4111", "1111", "1111", "1111"]
    assert line.words[1].box == Box(5 + 40, 100 + 2, 30, 12)
    assert line.box == Box(5, 102, 230, 12)
    assert len(first) == 1


def test_a_failing_or_missing_tesseract_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(OcrError, match=r"\(exit 3\): Error: could not read image"):
        Tesseract(binary=fake_tesseract(tmp_path, "", exit_code=3)).read([(WHITE, Box(0, 0, 50, 20))])
    with pytest.raises(OcrError, match="install tesseract-ocr"):
        Tesseract(binary=str(tmp_path / "nowhere")).read([(WHITE, Box(0, 0, 50, 20))])


def test_languages_are_checked() -> None:
    with pytest.raises(ValueError, match="jpn\\+eng"):
        Tesseract("jpn; rm -rf /")


# ---------------------------------------------------------------- one recording read


def card_journal(tmp_path: Path) -> Path:
    """A line drawn at 2.0 and redrawn at 5.0 in the same place (the fake Tesseract reads a card number in both)."""
    session = Session(ENCODERS["raw"]())
    session.start()
    session.paint(0.05, 0, 0, WHITE)
    session.paint(2.0, 20, 30, ink(240, 12))
    session.paint(5.0, 20, 30, ink(240, 12) + 128)
    return session.write(tmp_path / "card.dgj", end=9.0)


def test_lines_are_kept_once_per_appearance_with_card_numbers_replaced_and_timed(tmp_path: Path) -> None:
    options = ScreenTextOptions(digest_key=digest_key(b"k" * 32), tesseract=fake_tesseract(tmp_path, WORDS),
                                limits=BoxLimits(context_x=0, context_y=0))
    found = read_recording_text(card_journal(tmp_path), options)
    assert found.error is None and found.regions == 3
    assert [(line.t, line.box, line.text) for line in found.lines] == [
        (0.05, Box(0, 2, 230, 12), "card [card]"),  # read off the whole desktop, first painted
        (2.0, Box(20, 32, 230, 10), "card [card]"),
        (5.0, Box(20, 32, 230, 10), "card [card]"),  # the same text again after its pixels changed: a new moment
    ]
    assert [(finding.start, finding.end, finding.region) for finding in found.findings] == [
        (0.05, 9.0, (40, 2, 190, 12)),  # never drawn over: to the end of the recording
        (2.0, 5.0, (60, 32, 190, 10)),  # until the change that drew over it
        (5.0, 9.0, (60, 32, 190, 10)),
    ]
    assert len({finding.digest for finding in found.findings}) == 1
    assert found.duration == 9.0 and found.cpu_seconds > 0


# ---------------------------------------------------------------- the index


async def test_search_by_text_on_screen_finds_recordings_and_their_moments(tmp_path: Path, store: Store) -> None:
    index = RecordingIndex(store, TEXT_KEYS)
    for summary in SAMPLES:
        await index.add(summary, sha256=None, node="gw-1")
    options = ScreenTextOptions(digest_key=digest_key(b"k" * 32), tesseract=fake_tesseract(tmp_path, WORDS),
                                limits=BoxLimits(context_x=0, context_y=0))
    found = read_recording_text(card_journal(tmp_path), options)
    found.lines.append(ScreenLine(7.5, Box(1, 2, 3, 4), normalize_text("お 客 様 山 田 太 郎 様")))
    texts = ScreenTexts(store, TEXT_KEYS)
    recording = SAMPLES[2].id
    await texts.replace(recording, found)
    await texts.replace(recording, found)  # read again: replaced, not doubled

    assert [row.id for row in await index.search(text="CARD [card")] == [recording]
    assert [row.id for row in await index.search(text="山田 太郎")] == [recording]
    assert await index.search(text="4111") == []
    moments = await texts.moments([recording, SAMPLES[0].id], "[card]")
    assert [moment.t for moment in moments[recording]] == [0.05, 2.0, 5.0]
    assert moments[SAMPLES[0].id] == []
    assert (await texts.moments([recording], "山田"))[recording][0].to_json() == {
        "t": 7.5, "text": "お客様山田太郎様", "box": [1, 2, 3, 4]}
    assert await texts.findings(recording) == found.findings


# ---------------------------------------------------------------- terminals


def terminal_journal(tmp_path: Path) -> Path:
    header = session_header(session_id="20261207T043000Z-0a1b2c3d", user="alice", source="127.0.0.1",
                            target="shell-01", started_epoch=1_765_000_000.0, width=100, height=30, pixel_format=None,
                            desktop_name=b"shell-01", policy="operators", record_input="counts",
                            clipboard="off", groups=frozenset({"operators"}), protocol="ssh")
    output = [(1.0, b"login ok\r\n"), (3.0, "カード 4111 1111 1111 1111\r\n山田".encode()[:-2]),
              (3.5, "山田".encode()[-2:] + b" \x1b[1m\xe6\xa7\x98\x1b[0m\r\n"), (5.0, b"$ exit\r\n")]
    records = [encode_record(RecordKind.HEADER, 0, encode_json(header.to_json()))]
    records += [encode_record(RecordKind.SERVER_DATA, round(t * 1e6), data) for t, data in output]
    end = SessionEnd(ended_epoch=1_765_000_006.0, reason="the shell ended")
    records.append(encode_record(RecordKind.END, 6_000_000, encode_json(end.to_json())))
    path = tmp_path / "terminal.dgj"
    path.write_bytes(JOURNAL_MAGIC + b"".join(records))
    return path


async def test_a_terminals_lines_have_the_time_they_were_written_and_no_card_number_is_kept(
        tmp_path: Path, store: Store) -> None:
    journal = terminal_journal(tmp_path)
    found = read_recording_text(journal, ScreenTextOptions(digest_key=digest_key(b"k" * 32),
                                                           tesseract=str(tmp_path / "never-run")))
    assert [(line.t, line.box, line.text) for line in found.lines] == [
        (1.0, None, "login ok"), (3.0, None, "カード [card]"), (3.0, None, "山田様"), (5.0, None, "$ exit")]
    assert [(finding.kind, finding.start, finding.region) for finding in found.findings] == [("card", 3.0, None)]
    index = RecordingIndex(store, TEXT_KEYS)
    summary = summarize_journal(journal)
    await index.add(summary, sha256=None, node="gw-1")
    await ScreenTexts(store, TEXT_KEYS).replace(summary.id, found)
    assert await index.search(text="4111") == []  # the terminal's text is indexed without it, too
    [row] = await index.search(text="カード [card]")
    moments = await ScreenTexts(store, TEXT_KEYS).moments([row.id], "山田")
    assert [moment.to_json() for moment in moments[row.id]] == [{"t": 3.0, "text": "山田様", "box": None}]
