"""UTC times as the journal and the database spell them, and ISO-8601 input from people."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def isoformat_utc(moment: datetime) -> str:
    """``2026-11-25T08:00:00.123456Z``: the journal's spelling of a UTC time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO-8601 date or time (UTC unless it says otherwise); raises ValueError with a hint.

    A bare date is the start of that day, or with ``end_of_day`` the start of the next one,
    so that ``until=2026-11-25`` includes the whole 25th.
    """
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if end_of_day and _is_bare_date(text):
            moment += timedelta(days=1)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a date at the end of the calendar, moved past it
        raise ValueError(f"{text!r} is not an ISO-8601 date or time "
                         "(e.g. 2026-11-25 or 2026-11-25T08:00:00Z)") from None


def _is_bare_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
