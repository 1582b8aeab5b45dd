"""Personal data in text: card numbers (Luhn), My Numbers (check digit), Japanese phone numbers, configured
patterns; redaction, keyed digests that correlate equal values, and nothing of the value in a repr."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.ocr import normalize_text
from recorder.pii import (
    PiiDetector,
    PiiPattern,
    digest_key,
    luhn_valid,
    my_number_valid,
    nfkc,
    redact,
)

KEY = digest_key(b"k" * 32)
detector = PiiDetector(KEY)


def kinds(text: str, found: PiiDetector = detector) -> list[tuple[str, str]]:
    return [(match.kind, text[match.start:match.end]) for match in found.find(text)]


def luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it Luhn-valid."""
    return next(body + str(digit) for digit in range(10) if luhn_valid(body + str(digit)))


def my_number_complete(body: str) -> str:
    return next(body + str(digit) for digit in range(10) if my_number_valid(body + str(digit)))


@pytest.mark.parametrize("number", ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
                                    "3530111333300000", "4222222222222"])
def test_the_card_networks_test_numbers_pass_luhn(number: str) -> None:
    assert luhn_valid(number)
    assert not luhn_valid(number[:-1] + str((int(number[-1]) + 1) % 10))


def test_my_number_check_digit() -> None:
    assert my_number_valid("123456789018")  # the Digital Agency's example
    assert not my_number_valid("123456789012")
    assert not my_number_valid("12345678901")
    assert not my_number_valid("１２３４５６７８９０１８")  # full width: normalise first (nfkc)


@pytest.mark.parametrize("text, expected", [
    ("card 4111 1111 1111 1111 exp", [("card", "4111 1111 1111 1111")]),
    ("4111-1111-1111-1111", [("card", "4111-1111-1111-1111")]),
    ("no. 4111111111111111.", [("card", "4111111111111111")]),
    ("4111 1111 1111 1111 12", [("card", "4111 1111 1111 1111")]),  # a longer run: the valid whole groups
    ("4111 1111 1111 1112", []),  # not Luhn-valid
    ("378282246310005", [("card", "378282246310005")]),
    ("3782 822463 10005", [("card", "3782 822463 10005")]),
    ("03-5516-1592 2026-09-01 17:44", [("phone_jp", "03-5516-1592")]),  # 4-4-4-2 is no card, whatever Luhn says
    ("order 41111111111111110000 total", []),  # 20 digits in one group: not a card number
    ("customer 4711", []),
    ("My Number 1234 5678 9018", [("my_number", "1234 5678 9018")]),
    ("123456789012", []),  # wrong check digit, and not a phone number (no leading 0)
    ("tel 03-1234-5678", [("phone_jp", "03-1234-5678")]),
    ("携帯 090-1234-5678 まで", [("phone_jp", "090-1234-5678")]),
    ("0312345678", [("phone_jp", "0312345678")]),
    ("03-1234-56789", []),  # 11 digits but not a phone layout that ends in 4
    ("2026-12-07", []),
])
def test_what_is_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


def test_full_width_digits_are_found_once_normalised() -> None:
    assert kinds(nfkc("カード番号 ４１１１ １１１１ １１１１ １１１１")) == [("card", "4111 1111 1111 1111")]


def test_kinds_can_be_chosen_and_patterns_added() -> None:
    employee = PiiPattern.configured("employee_id", r"EMP-\d{6}")
    only = PiiDetector(KEY, kinds=["card"], patterns=[employee])
    assert kinds("EMP-123456 tel 03-1234-5678 card 4111111111111111", only) == [
        ("employee_id", "EMP-123456"), ("card", "4111111111111111")]


@pytest.mark.parametrize("kind, pattern, error", [
    ("Employee", r"\d+", "not a kind name"),
    ("card", r"\d+", "built in"),
    ("x", r"(", "not a regular expression"),
    ("x", r"\d*", "matches empty text"),
    ("x", "", "1 to 500"),
])
def test_bad_patterns_are_refused_with_the_reason(kind: str, pattern: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        PiiPattern.configured(kind, pattern)


def test_overlapping_matches_keep_the_card_number() -> None:
    phone_like = PiiDetector(KEY, patterns=[PiiPattern.configured("digits", r"\d{4}")])
    assert kinds("4111 1111 1111 1111", phone_like) == [("card", "4111 1111 1111 1111")]


def test_redaction_keeps_the_line_without_the_value() -> None:
    text = "card 4111 1111 1111 1111 tel 03-1234-5678"
    assert redact(text, detector.find(text)) == "card [card] tel [phone_jp]"


def test_equal_values_have_equal_digests_however_written_and_only_under_the_same_key() -> None:
    [spaced] = detector.find("4111 1111 1111 1111")
    [plain] = detector.find("4111111111111111")
    [other] = detector.find("5555555555554444")
    [elsewhere] = PiiDetector(digest_key(b"o" * 32)).find("4111111111111111")
    assert spaced.digest == plain.digest != other.digest
    assert elsewhere.digest != plain.digest
    assert len(plain.digest) == 64 and "4111" not in plain.digest
    assert "4111" not in repr(plain)


LAYOUTS = [(13,), (14,), (15,), (16,), (17,), (18,), (19,), (4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)]


@given(layout=st.sampled_from(LAYOUTS), data=st.data(), separator=st.sampled_from([" ", "-"]),
       before=st.sampled_from(["", "card ", "番号："]), after=st.sampled_from(["", " exp", "。"]))
def test_every_luhn_valid_card_number_written_as_cards_are_is_found(
        layout: tuple[int, ...], data: st.DataObject, separator: str, before: str, after: str) -> None:
    number = luhn_complete(data.draw(st.text("0123456789", min_size=sum(layout) - 1, max_size=sum(layout) - 1)))
    starts = [sum(layout[:index]) for index in range(len(layout))]
    written = separator.join(number[start:start + length] for start, length in zip(starts, layout, strict=True))
    text = before + written + after
    found = detector.find(text)
    assert [(match.kind, text[match.start:match.end]) for match in found][:1] == [("card", written)]
    assert not any(char.isdigit() for char in redact(text, found))


@given(st.lists(st.text("0123456789", min_size=1, max_size=4), min_size=2, max_size=6))
def test_phone_numbers_dates_and_times_in_a_row_are_not_card_numbers(groups: list[str]) -> None:
    lengths = tuple(len(group) for group in groups)
    stretches = {lengths[start:end] for start in range(len(lengths)) for end in range(start + 1, len(lengths) + 1)}
    if not stretches & {(4, 4, 4, 4), (4, 4, 4, 4, 3)}:  # a card may be any stretch of groups written as cards are
        assert "card" not in [match.kind for match in detector.find(" ".join(groups))]


@given(st.text("0123456789", min_size=13, max_size=19))
def test_a_digit_run_that_fails_luhn_is_never_a_card(digits: str) -> None:
    if not luhn_valid(digits):
        assert "card" not in [match.kind for match in detector.find(digits)]


@given(st.text("0123456789", min_size=11, max_size=11))
def test_every_my_number_is_found(body: str) -> None:
    number = my_number_complete(body)
    text = f"個人番号 {number[:4]} {number[4:8]} {number[8:]}"
    assert ("my_number", text[5:]) in kinds(text) or ("card", text[5:]) in kinds(text)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_text_gives_ordered_non_overlapping_matches(text: str) -> None:
    matches = detector.find(text)
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:], strict=False))
    assert all(0 <= match.start < match.end <= len(text) for match in matches)


@pytest.mark.parametrize("read, normal", [
    ("山 田 太 郎 様", "山田太郎様"),
    ("お 客 様 番 号 4711", "お客様番号 4711"),
    ("customer  4711   ordered", "customer 4711 ordered"),
    ("ＡＢＣ　１２３", "ABC 123"),
    ("カ ス タ マ ー ー", "カスタマーー"),
])
def test_cjk_spacing_is_normalised_as_tesseract_writes_it(read: str, normal: str) -> None:
    assert normalize_text(read) == normal


@given(st.lists(st.sampled_from(["山", "田", "太", "郎", "様", "ア", "か"]), min_size=1, max_size=12))
def test_spaces_between_cjk_characters_never_survive(characters: list[str]) -> None:
    assert normalize_text(" ".join(characters)) == "".join(characters)


@given(st.lists(st.text("abcxyz0123", min_size=1, max_size=6), min_size=1, max_size=6))
def test_spaces_between_latin_words_stay(words: list[str]) -> None:
    assert normalize_text(" ".join(words)) == " ".join(words)
