"""Typed text rebuilt from key events: keysyms to characters and marks, entries by line and pause, limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.messages import ClientCutText, KeyEvent, PointerEvent, QEMUExtendedKeyEvent
from recorder.errors import JournalCorrupt
from recorder.keysyms import character
from recorder.typed_text import TypedEntry, TypedText, TypedTextBuilder, read_typed_text
from tests.recorder.test_index import client, end_record, event, journal_header, write_journal

KEYSYMDEF = Path(__file__).resolve().parents[2] / "gateway/web/static/novnc/core/input/keysymdef.js"
RETURN, TAB, BACKSPACE, SHIFT, CTRL, ALT = 0xFF0D, 0xFF09, 0xFF08, 0xFFE1, 0xFFE3, 0xFFE9


def typed(*keys: tuple[float, int] | tuple[float, int, bool], **limits: int | float) -> list[tuple[float, float, str]]:
    """Entries for presses (t, keysym) — each released at once — or explicit (t, keysym, down) events."""
    builder = TypedTextBuilder(**limits)  # type: ignore[arg-type]
    for key in keys:
        if len(key) == 3:
            builder.key(key[0], key[2], key[1])  # type: ignore[misc]
        else:
            builder.key(key[0], True, key[1])
            builder.key(key[0], False, key[1])
    return [(entry.t, entry.end, entry.text) for entry in builder.entries()]


def word(t: float, text: str, step: float = 0.1) -> list[tuple[float, int]]:
    return [(t + n * step, ord(char) if ord(char) <= 0xFF else 0x01000000 + ord(char)) for n, char in enumerate(text)]


# ---------------------------------------------------------------- keysyms


@pytest.mark.parametrize(("keysym", "text"), [
    (0x61, "a"), (0x41, "A"), (0x20, " "), (0x7E, "~"), (0xE9, "é"), (0xA5, "¥"), (0xDF, "ß"),
    (0x01003042, "あ"), (0x010065E5, "日"), (0x0101F600, "😀"),  # Unicode keysyms: 0x01000000 + code point
    (0x04B1, "ア"), (0x04A4, "、"), (0x06C1, "а"), (0x07E1, "α"), (0x20AC, "€"), (0x0AA9, "—"),  # legacy keysyms
    (0xFFB7, "7"), (0xFFAE, "."), (0xFFAB, "+"),  # the keypad
    (0x7F, None), (0x9F, None), (0x01000007, None), (0x0100D800, None), (0x01110000, None),  # controls, surrogates
    (RETURN, None), (SHIFT, None), (0xFFBE, None), (0, None),
])
def test_character_of_a_keysym(keysym: int, text: str | None) -> None:
    assert character(keysym) == text


def test_every_keysym_novnc_sends_for_a_character_types_that_character() -> None:
    """noVNC's own table (code point → keysym), read from the copy the gateway serves, is undone exactly."""
    pairs = re.findall(r"^\s+0x([0-9a-f]+): 0x([0-9a-f]+),", KEYSYMDEF.read_text(), re.MULTILINE)
    assert len(pairs) > 600
    for code_point, keysym in pairs:
        assert character(int(keysym, 16)) == chr(int(code_point, 16)), (code_point, keysym)


# ---------------------------------------------------------------- entries


def test_a_line_ends_at_return_with_its_mark() -> None:
    assert typed(*word(1.0, "yes"), (1.3, RETURN), *word(1.5, "no")) == [
        (1.0, 1.3, "yes⏎"), (1.5, 1.6, "no")]


def test_a_pause_longer_than_the_burst_gap_starts_a_new_entry() -> None:
    assert typed(*word(0.0, "ab"), *word(2.1, "cd"), *word(4.5, "ef", 0.5)) == [
        (0.0, 2.2, "abcd"), (4.5, 5.0, "ef")]
    assert typed(*word(0.0, "ab"), *word(2.0, "cd"), burst_gap=1.0) == [(0.0, 0.1, "ab"), (2.0, 2.1, "cd")]


def test_corrections_show_as_marks_not_applied() -> None:
    assert typed(*word(0.0, "teh"), (0.3, BACKSPACE), (0.4, BACKSPACE), *word(0.5, "he"), (0.7, TAB),
                 (0.8, 0xFF51), (0.9, 0xFFFF), (1.0, 0xFF1B)) == [(0.0, 1.0, "teh⌫⌫he⇥←⌦⎋")]


def test_shift_types_the_shifted_keysym_and_shows_nothing_itself() -> None:
    assert typed((0.0, SHIFT, True), (0.1, 0x48), (0.2, SHIFT, False), (0.3, 0x69)) == [(0.1, 0.3, "Hi")]


def test_shortcuts_are_named_and_do_not_type_their_letter() -> None:
    keys = [(0.0, CTRL, True), (0.1, 0x63), (0.2, 0x76), (0.3, CTRL, False), (0.4, 0x78),
            (0.5, ALT, True), (0.6, 0xFFC1), (0.7, ALT, False), (0.8, 0xFFC1),
            (0.9, CTRL, True), (1.0, RETURN), (1.05, 0x20), (1.1, CTRL, False)]
    assert typed(*keys) == [(0.1, 1.05, "‹Ctrl+C›‹Ctrl+V›x‹Alt+F4›‹F4›‹Ctrl+⏎›‹Ctrl+Space›")]


def test_altgr_sent_as_ctrl_alt_still_types_its_character() -> None:
    keys = [(0.0, CTRL, True), (0.0, ALT, True), (0.1, 0x40), (0.2, 0x20AC), (0.3, 0x71), (0.4, ALT, False),
            (0.4, CTRL, False)]
    assert typed(*keys) == [(0.1, 0.3, "@€‹Ctrl+Alt+Q›")]


def test_key_repeat_types_each_press_and_releases_type_nothing() -> None:
    assert typed((0.0, 0x61, True), (0.5, 0x61, True), (0.53, 0x61, True), (0.6, 0x61, False)) == [
        (0.0, 0.53, "aaa")]


def test_unicode_keysyms_show_as_japanese_and_the_input_method_keys_by_their_key_caps() -> None:
    """Composed text (Unicode keysyms) as the characters; converting on the desktop's IME as its keys."""
    nihon = [(0.0, ord(char)) for char in "nihon"]
    assert typed(*word(0.0, "山田太郎 東京都"), (0.9, RETURN)) == [(0.0, 0.9, "山田太郎 東京都⏎")]
    assert typed((0.0, 0xFF2A), *nihon, (0.1, 0xFF23), (0.2, RETURN), (0.3, 0xFF22), (0.4, 0xFF30)) == [
        (0.0, 0.2, "‹半角/全角›nihon‹変換›⏎"), (0.3, 0.4, "‹無変換›‹英数›")]


def test_unknown_keys_type_nothing() -> None:
    assert typed((0.0, 0xFF50), (0.1, 0xFF63), (0.2, 0xFF13)) == []  # Home, Insert, Pause


def test_long_entries_are_split_and_the_total_is_bounded() -> None:
    assert typed(*word(0.0, "abcdefg", 0.01), max_entry_chars=3) == [
        (0.0, 0.02, "abc"), (0.03, 0.05, "def"), (0.06, 0.06, "g")]
    builder = TypedTextBuilder(max_chars=5)
    for t, keysym in word(0.0, "abcdefgh"):
        builder.key(t, True, keysym)
    assert [entry.text for entry in builder.entries()] == ["abcde"] and builder.truncated


def test_limits_must_be_positive() -> None:
    for limits in ({"burst_gap": 0}, {"max_entry_chars": 0}, {"max_chars": 0}):
        with pytest.raises(ValueError):
            TypedTextBuilder(**limits)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.integers(0, 0x0111_0000), st.booleans()), max_size=200))
def test_any_key_sequence_gives_entries_in_bounds(keys: list[tuple[float, int, bool]]) -> None:
    builder = TypedTextBuilder(max_entry_chars=20, max_chars=300)
    for t, keysym, down in sorted(keys):
        builder.key(t, down, keysym)
    entries = builder.entries()
    assert sum(len(entry.text) for entry in entries) <= 300
    # A shortcut's name (‹Ctrl+Alt+⌦›, 12 characters) is never cut: an entry holds at most one more.
    assert all(entry.t <= entry.end and 0 < len(entry.text) <= 20 + 20 for entry in entries)
    assert [entry.t for entry in entries] == sorted(entry.t for entry in entries)


# ---------------------------------------------------------------- journals


def key_messages(*presses: tuple[int, bool]) -> list[KeyEvent]:
    return [KeyEvent(down, keysym) for keysym, down in presses]


def test_a_journal_with_full_input_gives_its_typed_text(tmp_path: Path) -> None:
    """Golden: key events spread over records (one split mid-message), between other input."""
    hello = KeyEvent(True, 0x68).encode() + KeyEvent(False, 0x68).encode() + KeyEvent(True, 0x69).encode()
    records = [
        event(0.0, "session_start"),
        client(1.0, PointerEvent(1, 5, 5), PointerEvent(0, 5, 5)),
        (client(2.0)[0], 2.0, hello[:5]), (client(2.0)[0], 2.25, hello[5:]),
        client(2.5, KeyEvent(False, 0x69), QEMUExtendedKeyEvent(True, 0xFF0D, 0x1C)),
        client(3.0, ClientCutText(b"pasted, not typed")),
        client(9.0, *key_messages((0xFFE3, True), (0x73, True), (0x73, False), (0xFFE3, False))),
        client(9.5, KeyEvent(True, 0x01003042), KeyEvent(True, 0x04B1)),
        end_record(10.0),
    ]
    result = read_typed_text(write_journal(tmp_path, records))
    assert result == TypedText("full", (TypedEntry(2.25, 2.5, "hi⏎"), TypedEntry(9.0, 9.5, "‹Ctrl+S›あア")))
    assert result.to_json() == {
        "record_input": "full", "recorded": True, "truncated": False, "error": None,
        "entries": [{"t": 2.25, "end": 2.5, "text": "hi⏎"}, {"t": 9.0, "end": 9.5, "text": "‹Ctrl+S›あア"}],
    }


def test_a_journal_that_kept_only_counts_says_so(tmp_path: Path) -> None:
    path = write_journal(tmp_path, [client(1.0, KeyEvent(True, 0x61)), end_record(2.0)],
                         journal_header(record_input="counts"))
    result = read_typed_text(path)
    assert result == TypedText("counts") and not result.recorded
    assert result.to_json()["recorded"] is False


def test_unreadable_client_data_stops_with_the_text_so_far(tmp_path: Path) -> None:
    records = [client(1.0, KeyEvent(True, 0x61)), (client(2.0)[0], 2.0, b"\xee\x00garbage"),
               client(3.0, KeyEvent(True, 0x62))]
    result = read_typed_text(write_journal(tmp_path, records))
    assert result.entries == (TypedEntry(1.0, 1.0, "a"),)
    assert result.error is not None and "from 2.000 s on" in result.error


def test_the_limit_on_characters_marks_the_text_truncated(tmp_path: Path) -> None:
    records = [client(1.0, *(KeyEvent(True, 0x61) for _ in range(50)))]
    result = read_typed_text(write_journal(tmp_path, records), max_chars=10)
    assert result.truncated and sum(len(entry.text) for entry in result.entries) == 10


def test_a_file_that_is_no_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.dgj"
    path.write_bytes(b"not a journal at all")
    with pytest.raises(JournalCorrupt):
        read_typed_text(path)
