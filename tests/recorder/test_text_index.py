"""Screen text sealed at rest and still searchable: the blind index, its search, and text stored in clear before.

The database file is read as bytes: the text read off a screen and a terminal's output are in it only
sealed, while search finds them by substring (Japanese and English, any case) with their moments.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select

from base.db import Store
from recorder.index import RecordingIndex
from recorder.keyring import RecordingKeyring, new_key
from recorder.ocr import normalize_text
from recorder.screen_changes import Box
from recorder.screen_index import RecordingText, ScreenLine
from recorder.screen_search import BUCKET_SECONDS
from recorder.tables import recording_text, screen_text, text_tokens
from recorder.text_index import TextKeys, grams, query_grams, searchable
from tests.recorder.test_index import summary_of

STARTED = datetime(2026, 12, 7, 9, tzinfo=UTC)
LINES = ["お客様 山田 太郎 様", "Customer 4711 — Tokyo", "abc bcd", "電話 [phone_jp]"]


def sealing_keys(tmp_path: Path) -> TextKeys:
    return TextKeys.derive(secrets.token_bytes(32), RecordingKeyring.load(tmp_path / "keys"))


def found_text(*lines: str) -> RecordingText:
    return RecordingText(lines=[ScreenLine(1.0 + i, Box(10, 20 * i, 200, 16), normalize_text(line))
                                for i, line in enumerate(lines)],
                         findings=[], duration=60.0, wall_seconds=1.0, cpu_seconds=1.0, regions=len(lines))


def recording(number: int) -> str:
    return f"20261207T09000{number}Z-0000000{number}"


async def index_with(store: Store, keys: TextKeys, count: int = 3) -> tuple[RecordingIndex, list[str]]:
    index = RecordingIndex(store, keys)
    ids = []
    for number in range(count):
        summary = summary_of(recording(number), "alice", "desk-01", STARTED + timedelta(minutes=number), 60)
        await index.add(summary, sha256=None, node="gw-1")
        ids.append(summary.id)
    return index, ids


@given(st.text(min_size=1, max_size=40), st.data())
def test_a_text_holds_every_token_of_any_part_of_it(text: str, data: st.DataObject) -> None:
    line = searchable(text)
    if not line:
        return
    start = data.draw(st.integers(0, len(line) - 1))
    end = data.draw(st.integers(start + 1, len(line)))
    assert query_grams(line[start:end]) <= grams(line)


async def test_screen_and_terminal_text_are_sealed_yet_found_by_any_part(tmp_path: Path, store: Store) -> None:
    keys = sealing_keys(tmp_path)
    index, [desktop, other, terminal] = await index_with(store, keys)
    await index.texts.replace(desktop, found_text(*LINES))
    await index.texts.replace(other, found_text("nothing to see"))
    summary = dataclasses.replace(summary_of(terminal, "bob", "shell-01", STARTED, 30), protocol="ssh",
                                  screen_text="$ grep 山田 clients.csv\nyamada-taro,Shinjuku")
    await index.add(summary, sha256=None, node="gw-1")

    for text in ("山田太郎", "山田 太郎", "customer 4711", "CUSTOMER", "tokyo", "[phone_jp]", "客"):
        assert [row.id for row in await index.search(text=text)] == [desktop], text
    assert [row.id for row in await index.search(text="Shinjuku")] == [terminal]
    assert {row.id for row in await index.search(text="山田")} == {desktop, terminal}
    assert await index.search(text="佐藤") == []
    moments = await index.texts.moments([desktop, terminal], "4711")
    assert [moment.to_json() for moment in moments[desktop]] == [
        {"t": 2.0, "text": "Customer 4711 — Tokyo", "box": [10, 20, 200, 16]}]
    assert moments[terminal] == []

    await store.close()
    content = b"".join(path.read_bytes() for path in tmp_path.glob("deskgate.db*"))
    for clear in ("山田", "Customer", "4711", "Shinjuku", "nothing to see", "grep"):
        assert clear.encode() not in content, clear


async def test_pairs_present_but_apart_are_no_match_and_search_pages_on(tmp_path: Path, store: Store) -> None:
    """"abc bcd" holds every pair of "abcd" (ab, bc, cd): the database offers it, opening the text refuses it."""
    index, [apart, really, older] = await index_with(store, sealing_keys(tmp_path))
    await index.texts.replace(apart, found_text("abc bcd"))
    await index.texts.replace(really, found_text("xx ABCD yy"))
    await index.texts.replace(older, found_text("abcd"))
    newest_first = [older, really]  # summary_of's start times: the later number started later
    assert [row.id for row in await index.search(text="abcd")] == newest_first
    assert [row.id for row in await index.search(text="abcd", limit=1)] == [older]
    assert [row.id for row in await index.search(text="abcd", user="alice", limit=2)] == newest_first


async def test_encryption_off_keeps_text_clear_and_searchable_the_same_way(tmp_path: Path, store: Store) -> None:
    keys = TextKeys.derive(secrets.token_bytes(32),
                           RecordingKeyring.load(tmp_path / "keys", encrypt=False))
    index, [first, *_] = await index_with(store, keys)
    await index.texts.replace(first, found_text("customer 4711"))
    async with store.read() as connection:
        assert await connection.scalar(select(screen_text.c.text)) == "customer 4711"
    assert [row.id for row in await index.search(text="4711")] == [first]


async def test_text_stored_in_clear_before_is_sealed_and_indexed_once(tmp_path: Path, store: Store) -> None:
    keys = sealing_keys(tmp_path)
    index, [desktop, terminal, untouched] = await index_with(store, keys)
    async with store.transaction() as connection:  # as version 0003 stored them: clear, no tokens
        await connection.execute(insert(screen_text), [
            {"recording_id": desktop, "t": 1.0, "x": 0, "y": 0, "width": 9, "height": 9, "text": "customer 4711"}])
        await connection.execute(insert(recording_text), [{"recording_id": terminal, "text": "$ ls 山田"}])
    assert await index.search(text="4711") == []  # no tokens: not found until sealed

    assert await index.texts.seal_clear_rows() == 2
    assert await index.texts.seal_clear_rows() == 0
    assert [row.id for row in await index.search(text="4711")] == [desktop]
    assert [row.id for row in await index.search(text="山田")] == [terminal]
    async with store.read() as connection:
        stored = [*(await connection.execute(select(screen_text.c.text))).scalars(),
                  *(await connection.execute(select(recording_text.c.text))).scalars()]
        origins = set((await connection.execute(select(text_tokens.c.recording_id, text_tokens.c.origin))).all())
    assert all(text.startswith("dgt1.") for text in stored) and len(stored) == 2
    assert origins == {(desktop, "screen"), (terminal, "terminal")}
    assert untouched not in {recording_id for recording_id, _ in origins}


async def test_a_recording_whose_key_is_lost_is_passed_over_and_said(tmp_path: Path, store: Store,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    keys = sealing_keys(tmp_path)
    index, [lost, kept, _] = await index_with(store, keys)
    await index.texts.replace(lost, found_text("customer 4711"))
    new_key(tmp_path / "keys", "k1")
    rotated = TextKeys(keys.token_key, RecordingKeyring.load(tmp_path / "keys"))
    await RecordingIndex(store, rotated).texts.replace(kept, found_text("customer 4711 again"))
    shutil.move(tmp_path / "keys" / "k0.key", tmp_path / "k0.key.elsewhere")
    without_k0 = TextKeys(keys.token_key, RecordingKeyring.load(tmp_path / "keys"))
    assert [key.key_id for key in without_k0.keyring.keys] == ["k1"]  # k0 was never installed in this process
    found = await RecordingIndex(store, without_k0).search(text="4711")
    assert [row.id for row in found] == [kept]
    assert [record.__dict__["ctx"]["recording"] for record in caplog.records
            if record.getMessage() == "a recording's screen text cannot be searched"] == [lost]


class CountingKeys(TextKeys):
    """Counts the lines a search opens."""

    opened: ClassVar[list[int]] = []

    def open_all(self, recording_id: str, stored: Iterable[str]) -> list[str]:
        lines = super().open_all(recording_id, stored)
        CountingKeys.opened.append(len(lines))
        return lines


async def test_a_search_opens_only_the_minutes_that_hold_every_pair(tmp_path: Path, store: Store) -> None:
    keys = sealing_keys(tmp_path)
    counting = CountingKeys(keys.token_key, keys.keyring)
    index, [recording, *_] = await index_with(store, counting)
    minutes = {0: ["customer 4711", "受付"], 1: ["nothing here", "still nothing", "山田"],
               5: ["お客様 山田 太郎 様", "customer 4711 again"], 7: ["customer 47", "711"]}  # 7: the pairs, apart
    lines = [ScreenLine(minute * BUCKET_SECONDS + i, None, normalize_text(line))
             for minute, texts in minutes.items() for i, line in enumerate(texts)]
    await index.texts.replace(recording, RecordingText(lines, [], 600.0, 1.0, 1.0, 0))
    CountingKeys.opened.clear()
    moments = (await index.texts.moments([recording], "customer 4711"))[recording]
    assert [moment.t for moment in moments] == [0.0, 301.0]
    assert sum(CountingKeys.opened) == 2 + 2 + 2  # minutes 0, 5 and 7: 6 of the 9 lines
    CountingKeys.opened.clear()
    assert (await index.texts.moments([recording], "山田太郎"))[recording][0].t == 300.0
    assert sum(CountingKeys.opened) == 2  # minute 5 only: minute 1 has 山田 but not 田太 or 太郎
