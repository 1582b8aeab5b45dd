"""Personal data in text: card numbers, Japanese My Numbers and phone numbers, and configured patterns.

:class:`PiiDetector` finds them in a piece of text (a line read off the screen, a line typed)
and returns where (character spans) and a keyed digest of each value: HMAC-SHA256 under a
key only the gateway holds, of the value normalised (NFKC; digits only for the numeric
kinds), so the same number seen twice gives the same digest and can be correlated without
ever being stored. :func:`redact` replaces the spans by ``[kind]``: the index keeps that,
never the digits.

Built-in kinds:

- ``card``: 13–19 digits whose Luhn check holds, written together or grouped as cards are
  (4-4-4-4, 4-4-4-4-3, 4-6-5, 4-6-4; single spaces or hyphens between the groups). Within a longer
  run of groups, the longest such stretch is taken (``4111 1111 1111 1111 12`` flags the first 16
  digits); other groupings — a phone number followed by a date — are not card numbers, which keeps
  the Luhn check's one-in-ten chance from flagging them.
- ``my_number``: 12 digits (``1234 5678 9012`` or ``1234-5678-9012`` too) whose last is the
  My Number check digit of the other 11.
- ``phone_jp``: a Japanese phone number: ``0`` and 10 or 11 digits in all, written together or in
  three groups ending in four digits (``03-1234-5678``, ``090-1234-5678``, ``0312345678``).

Configured patterns (``pii.patterns``: ``{kind, pattern}``) are regular expressions; their whole
match is the value. Where matches overlap, the earlier-starting (then the longer, then the
built-in) wins.

No I/O: text in, findings out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: The label the key is derived under from the recording key (so the digests are not the seals' HMACs).
DIGEST_KEY_LABEL = b"deskgate pii digest v1"
CARD, MY_NUMBER, PHONE_JP = "card", "my_number", "phone_jp"
BUILTIN_KINDS = (CARD, MY_NUMBER, PHONE_JP)
#: Configured patterns at most, and their length: each runs over every line of text indexed.
MAX_PATTERNS = 32
MAX_PATTERN_LENGTH = 500
KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")

#: How card numbers are grouped when they are: 4-4-4-4 (and 4-4-4-4-3 for 19 digits), American Express 4-6-5,
#: Diners Club 4-6-4. Any other grouping (a date and a time, a phone number and a date) is not a card number.
_CARD_LAYOUTS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)})
_DIGIT_RUN = re.compile(r"(?<![\d])\d+(?:[ \-]\d+)*(?![\d])")
_MY_NUMBER_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)  # for the first 11 digits, left to right
#: Not next to another digit, or to a separator and a digit: a part of a longer number is not one.
_ALONE_BEFORE, _ALONE_AFTER = r"(?<!\d)(?<!\d[ \-])", r"(?!\d)(?![ \-]\d)"
#: A phone number may stand beside other numbers with a space between (a table's next column), not a hyphen.
_PHONE_JP = re.compile(r"(?<!\d)(?<!\d-)(?:0\d{1,4}[ \-]\d{1,4}[ \-]\d{4}|0\d{9,10})(?!\d)(?!-\d)")


def luhn_valid(digits: str) -> bool:
    """Whether the digit string passes the Luhn check (the card networks' check digit)."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def my_number_valid(digits: str) -> bool:
    """Whether 12 digits form a My Number: the last is the check digit of the first 11."""
    if len(digits) != 12 or not digits.isdigit() or not digits.isascii():
        return False
    remainder = sum(int(d) * w for d, w in zip(digits[:11], _MY_NUMBER_WEIGHTS, strict=True)) % 11
    return int(digits[11]) == (0 if remainder <= 1 else 11 - remainder)


def digest_key(recording_key: bytes) -> bytes:
    """The key of the digests, derived from the gateway's recording key."""
    return hmac.new(recording_key, DIGEST_KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PiiPattern:
    """A kind of personal data found by a regular expression (and, for built-ins, a check of the value)."""

    kind: str
    regex: re.Pattern[str]
    check: Callable[[str], bool] | None = None  # on the normalised value; None: every match counts
    numeric: bool = False  # the value is its digits

    @classmethod
    def configured(cls, kind: str, pattern: str) -> PiiPattern:
        """A pattern from the config; ValueError says what is wrong with it."""
        if not KIND.fullmatch(kind):
            raise ValueError(f"{kind!r} is not a kind name; use lowercase letters, digits and _ (e.g. employee_id)")
        if kind in BUILTIN_KINDS:
            raise ValueError(f"{kind} is built in; choose another name for your pattern")
        if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise ValueError(f"a pattern must have 1 to {MAX_PATTERN_LENGTH} characters")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        if regex.fullmatch(""):
            raise ValueError(f"{pattern!r} matches empty text; it must match at least one character")
        return cls(kind, regex)


def _phone_digits_ok(digits: str) -> bool:
    return len(digits) in (10, 11)


BUILTIN_PATTERNS = {
    MY_NUMBER: PiiPattern(MY_NUMBER, re.compile(_ALONE_BEFORE + r"\d{4}[ \-]?\d{4}[ \-]?\d{4}" + _ALONE_AFTER),
                          my_number_valid, numeric=True),
    PHONE_JP: PiiPattern(PHONE_JP, _PHONE_JP, _phone_digits_ok, numeric=True),
}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """Personal data of ``kind`` at ``text[start:end]``; ``digest`` is the keyed hash of its normalised value."""

    kind: str
    start: int
    end: int
    digest: str

    def __repr__(self) -> str:  # never the value: a match may end up in a log line
        return f"PiiMatch({self.kind}, {self.start}:{self.end})"


class PiiDetector:
    """Finds ``kinds`` (built-in kinds by name) and ``patterns`` in text; digests under ``key``."""

    def __init__(self, key: bytes, *, kinds: Iterable[str] = BUILTIN_KINDS,
                 patterns: Sequence[PiiPattern] = ()) -> None:
        kinds = tuple(kinds)
        unknown = [kind for kind in kinds if kind not in BUILTIN_KINDS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a built-in kind; use {', '.join(BUILTIN_KINDS)}")
        if len(patterns) > MAX_PATTERNS:
            raise ValueError(f"at most {MAX_PATTERNS} patterns")
        self._key = key
        self._cards = CARD in kinds
        self._patterns = [BUILTIN_PATTERNS[kind] for kind in kinds if kind != CARD] + list(patterns)

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches in ``text``, in order (``text`` should be NFKC-normalised: see :func:`nfkc`)."""
        candidates: list[tuple[int, int, int, str, str]] = []  # start, -end, priority, kind, value
        if self._cards:
            candidates.extend((start, -end, 0, CARD, digits) for start, end, digits in _card_numbers(text))
        for priority, pattern in enumerate(self._patterns, start=1):
            for match in pattern.regex.finditer(text):
                if match.end() == match.start():
                    continue
                value = _normalised(match.group(), pattern.numeric)
                if pattern.check is None or pattern.check(value):
                    candidates.append((match.start(), -match.end(), priority, pattern.kind, value))
        found: list[PiiMatch] = []
        reached = 0
        for start, negative_end, _, kind, value in sorted(candidates):
            if start >= reached:
                found.append(PiiMatch(kind, start, -negative_end, self.digest(value)))
                reached = -negative_end
        return found

    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()


def redact(text: str, matches: Sequence[PiiMatch]) -> str:
    """``text`` with each match replaced by ``[kind]`` (``matches`` in order, not overlapping)."""
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.extend((text[position:match.start], f"[{match.kind}]"))
        position = match.end
    parts.append(text[position:])
    return "".join(parts)


def without_personal_data(text: str) -> str:
    """``text`` with the built-in kinds of personal data replaced by ``[kind]``: for text kept or logged whole."""
    return redact(text, _REDACTOR.find(text))


def nfkc(text: str) -> str:
    """Full-width digits and letters (what Japanese screens and OCR often give) as ASCII."""
    return unicodedata.normalize("NFKC", text)


def _normalised(value: str, numeric: bool) -> str:
    return "".join(ch for ch in value if ch.isdigit()) if numeric else "".join(value.split())


def _card_numbers(text: str) -> Iterable[tuple[int, int, str]]:
    """(start, end, digits) of each Luhn-valid card number: the longest valid stretch of whole groups in each run."""
    for run in _DIGIT_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in re.finditer(r"\d+", run.group())]
        first = 0
        while first < len(groups):
            best: tuple[int, int, str] | None = None
            for last in range(len(groups) - 1, first - 1, -1):
                stretch = groups[first:last + 1]
                digits = "".join(text[s:e] for s, e in stretch)
                if _card_layout([e - s for s, e in stretch]) and luhn_valid(digits):
                    best = (groups[first][0], groups[last][1], digits)
                    first = last + 1
                    break
            if best is None:
                first += 1
            else:
                yield best


def _card_layout(lengths: list[int]) -> bool:
    """Whether digit groups of these lengths are written as card numbers are: dates and phone numbers are not."""
    return (len(lengths) == 1 and 13 <= lengths[0] <= 19) or tuple(lengths) in _CARD_LAYOUTS


_REDACTOR = PiiDetector(bytes(32))  # only its spans are used, never its digests
Region = tuple[int, int, int, int]  # x, y, width, height in the desktop's pixels


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """Personal data of ``kind`` found in a recording, as the index keeps it: never the value, only its digest.

    On screen it was visible in ``region`` from ``start`` to ``end`` seconds into the recording
    (from the first change of that area before it was read, to the next change after); typed,
    ``region`` is None and ``start`` = ``end`` is when the line was typed.
    """

    kind: str
    digest: str
    start: float
    end: float
    region: Region | None
