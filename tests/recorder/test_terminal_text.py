"""Screen text of terminal output: escape sequences and controls dropped, UTF-8 whole across chunks, bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recorder.terminal_text import ScreenText


def text_of(*chunks: bytes, limit: int = 1 << 20) -> str:
    screen = ScreenText(limit)
    for chunk in chunks:
        screen.feed(chunk)
    return screen.text()


def test_colours_titles_charsets_and_carriage_returns_are_dropped() -> None:
    output = (b"\x1b]0;root@vm: ~\x07\x1b[?2004h\x1b[01;32mroot@vm\x1b[00m:~# ls\r\n"
              b"\x1b(B\x1b[0mfile.txt  \x1b[1;34mdir\x1b[0m\r\n\x1bP1$r0m\x1b\\done\tok\r\n")
    assert text_of(output) == "root@vm:~# ls\nfile.txt  dir\ndone ok"


def test_japanese_split_between_chunks_stays_whole() -> None:
    data = "日本語のテキスト\r\n".encode()
    assert text_of(data[:4], data[4:5], data[5:]) == "日本語のテキスト"


def test_the_text_stops_at_its_limit() -> None:
    assert text_of(b"0123456789" * 10, limit=25) == "0123456789012345678901234"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=200), st.data())
def test_plain_text_survives_any_chunking(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=6)))
    chunks = [encoded[start:end] for start, end in zip([0, *cuts], [*cuts, len(encoded)])]
    assert text_of(*chunks) == text.rstrip()  # no line breaks in the alphabet: one line


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_output_gives_text_without_escapes_or_controls(chunks: list[bytes]) -> None:
    text = text_of(*chunks, limit=500)
    assert len(text) <= 500
    assert not any(char < " " and char != "\n" for char in text)
