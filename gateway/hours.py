"""Time windows of a policy: ``hours: "Mon-Fri 08:00-20:00; Sat 09:00-13:00"`` in a ``timezone``.

A window is one or more ranges, separated by ``;`` in one string (or given as a YAML list of
strings). A range is ``[DAYS] HH:MM-HH:MM``: ``DAYS`` is a comma list of days (``Mon``) and
day spans (``Mon-Fri``, ``Fri-Mon`` wraps round the week); without days it holds every day.
Times are the zone's wall clock, ``00:00`` to ``24:00``. A range whose end is not after its
start runs past midnight into the next day: ``Sat 22:00-06:00`` is Saturday 22:00 to Sunday
06:00. Ranges that touch or overlap form one open stretch.

Wall-clock times are turned into instants through :mod:`zoneinfo`, so a zone's daylight
saving shifts are honoured: 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer,
and a range is an hour shorter or longer on the night the clocks change. This module does no
I/O beyond looking up zone data; every parse error is a :class:`ValueError` with a hint.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HINT = 'use e.g. "Mon-Fri 08:00-20:00", "Sat,Sun 09:00-13:00" or "Fri 22:00-06:00"; separate ranges with ";"'
RANGE = re.compile(r"(?:(?P<days>[A-Za-z][A-Za-z,\- ]*?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})")
DAY_SPAN = re.compile(r"([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?")
#: How many days ahead a window is searched for its next opening or closing (a week and a day covers every range).
HORIZON_DAYS = 8
MAX_TEXT = 1000
DEFAULT_WARNING = 300.0


@dataclass(frozen=True, slots=True)
class HourRange:
    """One range: on ``days`` (0 = Monday) from ``start`` to ``end``, minutes after midnight (past 1440: next day)."""

    days: frozenset[int]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """When a policy applies: its ranges in one zone; ``text`` is how the configuration wrote them."""

    text: str
    ranges: tuple[HourRange, ...]
    zone: ZoneInfo
    #: How long before the window closes a running session's operator is warned (seconds).
    warning: float = DEFAULT_WARNING

    def __str__(self) -> str:
        return f"{self.text} {self.zone.key}"

    def is_open(self, at: float) -> bool:
        """Whether the instant ``at`` (epoch seconds) falls inside one of the ranges."""
        today = self._date(at)
        return any(start <= at < end for start, end in self._occurrences(today - timedelta(days=1), 2))

    def next_opening(self, at: float) -> float | None:
        """The first instant after ``at`` at which a range starts (None: the window never opens)."""
        starts = [start for start, _ in self._occurrences(self._date(at), HORIZON_DAYS) if start > at]
        return min(starts, default=None)

    def closing(self, at: float) -> float | None:
        """When the open stretch holding ``at`` ends (None: not open now, or open all the time)."""
        occurrences = list(self._occurrences(self._date(at) - timedelta(days=1), HORIZON_DAYS + 1))
        end = at
        while True:
            ends = [stop for start, stop in occurrences if start <= end < stop]
            if not ends:
                return None if end == at else end
            end = max(ends)
            if end >= occurrences[-1][0]:  # open as far ahead as we look: it never closes
                return None

    def local_time(self, at: float) -> str:
        """``at`` on this window's wall clock, as a person reads it: ``Mon 08:00``."""
        moment = datetime.fromtimestamp(at, self.zone)
        return f"{DAYS[moment.weekday()]} {moment:%H:%M}"

    def _date(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.zone).date()

    def _occurrences(self, first: date, days: int) -> Iterator[tuple[float, float]]:
        """Every range's (start, end) instants on the ``days`` dates from ``first``, sorted by start."""
        found = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            for hours in self.ranges:
                if day.weekday() in hours.days:
                    found.append((self._instant(day, hours.start), self._instant(day, hours.end)))
        return iter(sorted(found))

    def _instant(self, day: date, minutes: int) -> float:
        day += timedelta(days=minutes // 1440)
        minutes %= 1440
        return datetime.combine(day, time(minutes // 60, minutes % 60), self.zone).timestamp()


def parse_hours(ranges: list[str] | str, zone: ZoneInfo, warning: float = DEFAULT_WARNING) -> TimeWindow:
    """The window of ``ranges`` (a string with ``;`` between ranges, or a list) in ``zone``; ValueError if malformed."""
    items = ranges if isinstance(ranges, list) else ranges.split(";")
    parsed: list[HourRange] = []
    for item in items:
        if not item.strip():
            raise ValueError(f"an empty range in {_quote(ranges)}; {HINT}")
        parsed.append(_parse_range(item))
    text = "; ".join(" ".join(item.split()) for item in items)
    return TimeWindow(text, tuple(parsed), zone, warning)


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_range(text: str) -> HourRange:
    if len(text) > MAX_TEXT:
        raise ValueError(f"a range of {len(text)} characters is not a time range; {HINT}")
    match = RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{_quote(text.strip())} is not a time range; {HINT}")
    days = _parse_days(match.group("days")) if match.group("days") else frozenset(range(7))
    start, end = _minutes(match.group("start"), allow_24=False), _minutes(match.group("end"), allow_24=True)
    if start == end or (start == 0 and end == 0):
        raise ValueError(f"{_quote(text.strip())} is empty; for a whole day write 00:00-24:00")
    if end < start:
        end += 1440  # past midnight, into the next day
    return HourRange(days, start, end)


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        match = DAY_SPAN.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"{_quote(part.strip())} is not a day or span of days; use Mon..Sun, Mon-Fri or Mon,Wed")
        first = _day(match.group(1))
        last = _day(match.group(2)) if match.group(2) else first
        days.update((first + offset) % 7 for offset in range((last - first) % 7 + 1))
    return frozenset(days)


def _day(text: str) -> int:
    name = text.capitalize()
    if name not in DAYS:
        raise ValueError(f"{text!r} is not a day; use one of {', '.join(DAYS)}")
    return DAYS.index(name)


def _minutes(text: str, *, allow_24: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        limit = "00:00 to 24:00" if allow_24 else "00:00 to 23:59"
        raise ValueError(f"{text!r} is not a time of day; use {limit}")
    return hours * 60 + minutes


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Asia/Tokyo``); ValueError naming the problem when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone; use an IANA name such as Asia/Tokyo or Europe/Berlin") from None


def local_zone() -> ZoneInfo:
    """The gateway's own zone: ``TZ`` when it names a zone, else what ``/etc/localtime`` links to, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")
