"""User names: one key per person however it is typed, and names no directory may read differently refused."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from auth.names import COMPATIBILITY_FORM, CONTROL_OR_INVISIBLE, name_key, name_problem


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "Alice", " alice ", "ａｌｉｃｅ", "ＡＬＩＣＥ", "Ａlice",
                                      "ａｌｉｃｅ\u3000", "alİce", "ALİCE", "alıce", "ALI\u0307CE"])
def test_every_spelling_a_directory_folds_together_has_one_key(spelling: str) -> None:
    assert name_key(spelling) == "alice"


def test_the_key_folds_like_caseignorematch() -> None:
    assert name_key("Straße") == name_key("STRASSE") == "strasse"
    assert name_key("ｶﾀｶﾅ") == name_key("カタカナ")
    assert name_key("ﬁona") == "fiona"
    assert name_key("a  b\u2003c") == "a b c"  # runs of spaces count as one
    assert name_key("neil, j (ops)*") == "neil, j (ops)*"


@pytest.mark.parametrize("name", ["alice", "Alice", "neil, j (ops)*", "山田 太郎", "José", "Straße", "ωμέγα",
                                  "j.o'brien", "user@example.org", "alİce", "yıldız"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None
    assert name_problem(unicodedata.normalize("NFD", name)) is None  # decomposed accents are the same text


@pytest.mark.parametrize(("name", "problem"), [
    ("ａｌｉｃｅ", COMPATIBILITY_FORM), ("ＡＬＩＣＥ", COMPATIBILITY_FORM), ("ﬁona", COMPATIBILITY_FORM),
    ("ｶﾀｶﾅ", COMPATIBILITY_FORM), ("ali\u00a0ce", COMPATIBILITY_FORM), ("alice\u3000", COMPATIBILITY_FORM),
    ("alice\u200b", CONTROL_OR_INVISIBLE), ("ali\u00adce", CONTROL_OR_INVISIBLE), ("al\u034fice", CONTROL_OR_INVISIBLE),
    ("alice\ufe0f", CONTROL_OR_INVISIBLE), ("alice\u202e", CONTROL_OR_INVISIBLE), ("ali\tce", CONTROL_OR_INVISIBLE),
    ("alice\x00", CONTROL_OR_INVISIBLE), ("alice\ue000", CONTROL_OR_INVISIBLE), ("alice\U000e0041", CONTROL_OR_INVISIBLE),
    ("alice\U000e0100", CONTROL_OR_INVISIBLE), ("\u3164alice", CONTROL_OR_INVISIBLE),
])
def test_names_a_directory_could_read_as_another_are_refused(name: str, problem: str) -> None:
    assert name_problem(name) == problem


def test_every_accepted_character_has_a_key_stable_under_folding_and_case_mapping() -> None:
    # Directories lower- or upper-case with the simple mappings: whatever they reach must have the same key.
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        if name_problem(character) is None:
            key = name_key(character)
            assert name_key(key) == key
            assert name_key(character.upper()) == key == name_key(character.lower()), hex(code_point)
