"""Policy time windows: parsing ``hours``, and matching on a given instant across midnight, weekdays and zones."""

from __future__ import annotations

from datetime import datetime
from ipaddress import ip_address
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.identity import Identity
from base.errors import ConfigError
from gateway.config import load_config
from gateway.hours import parse_hours
from gateway.policy import Policy, PolicySet

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo) -> float:
    """An instant given on ``zone``'s wall clock (2026-12-07 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize(("hours", "days", "start", "end"), [
    ("Mon-Fri 08:00-20:00", {0, 1, 2, 3, 4}, 480, 1200),
    ("Mon,Wed,Fri 9:30-12:00", {0, 2, 4}, 570, 720),
    ("Fri-Mon 10:00-11:00", {4, 5, 6, 0}, 600, 660),
    ("sat 22:00-06:00", {5}, 1320, 1800),
    ("00:00-24:00", set(range(7)), 0, 1440),
    ("Sun 18:00-00:00", {6}, 1080, 1440),
])
def test_a_range_is_days_and_minutes(hours: str, days: set[int], start: int, end: int) -> None:
    (parsed,) = parse_hours(hours, TOKYO).ranges
    assert (parsed.days, parsed.start, parsed.end) == (frozenset(days), start, end)


def test_several_ranges_in_one_string_or_a_list() -> None:
    text = parse_hours("Mon-Fri 08:00-20:00; Sat 09:00-13:00", TOKYO)
    listed = parse_hours(["Mon-Fri 08:00-20:00", "Sat  09:00-13:00"], TOKYO)
    assert text.ranges == listed.ranges
    assert str(listed) == "Mon-Fri 08:00-20:00; Sat 09:00-13:00 Asia/Tokyo"


@pytest.mark.parametrize(("hours", "message"), [
    ("Mon-Fri", "is not a time range"),
    ("Mon-Fri 08:00", "is not a time range"),
    ("Mon-Fry 08:00-20:00", "'Fry' is not a day"),
    ("Monday 08:00-20:00", "is not a day or span of days"),
    ("Mon 08:60-20:00", "'08:60' is not a time of day"),
    ("Mon 24:00-02:00", "'24:00' is not a time of day; use 00:00 to 23:59"),
    ("Mon 08:00-08:00", "is empty"),
    ("Mon 08:00-20:00;", "an empty range"),
])
def test_malformed_hours_say_what_is_wrong(hours: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hours(hours, TOKYO)


# (hours, zone, local wall time, open?) — 2026-12-07 is a Monday; Berlin and New York switch to summer time
# on 2027-03-28 and 2027-03-14, back on 2027-10-31 and 2027-11-07.
@pytest.mark.parametrize(("hours", "zone", "local", "is_open"), [
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-07T08:00", True),
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-07T07:59:59", False),
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-07T20:00", False),
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-12T10:00", False),  # Saturday
    ("Sat 22:00-06:00", TOKYO, "2026-12-12T23:00", True),  # Saturday night
    ("Sat 22:00-06:00", TOKYO, "2026-12-13T05:59", True),  # Sunday morning: still Saturday's range
    ("Sat 22:00-06:00", TOKYO, "2026-12-13T22:30", False),  # Sunday night
    ("Sat 22:00-06:00", TOKYO, "2026-12-12T05:00", False),  # Saturday morning: Friday has no range
    ("Sun 22:00-02:00", TOKYO, "2026-12-07T01:00", True),  # across the week's end into Monday
    ("Fri-Mon 10:00-11:00", TOKYO, "2026-12-09T10:30", False),  # Wednesday
    ("Fri-Mon 10:00-11:00", TOKYO, "2026-12-13T10:30", True),  # Sunday
    ("Mon-Fri 08:00-20:00", BERLIN, "2027-01-11T08:30", True),  # winter (UTC+1)
    ("Mon-Fri 08:00-20:00", BERLIN, "2027-07-12T08:30", True),  # summer (UTC+2): still 08:30 on the wall
    ("Mon-Fri 08:00-20:00", BERLIN, "2027-07-12T07:30", False),
    ("Mon-Fri 08:00-20:00", NEW_YORK, "2027-03-15T08:00", True),  # the Monday after the switch
    ("Mon-Fri 08:00-20:00", NEW_YORK, "2027-03-15T07:59", False),
])
def test_open_on_the_wall_clock_of_its_zone(hours: str, zone: ZoneInfo, local: str, is_open: bool) -> None:
    assert parse_hours(hours, zone).is_open(at(local, zone)) is is_open


def test_the_same_instant_in_summer_and_winter() -> None:
    """07:30 UTC is 08:30 in Berlin in winter (open) but 09:30 in summer; 06:30 UTC opens the summer day."""
    window = parse_hours("Mon-Fri 08:00-09:00", BERLIN)
    utc = ZoneInfo("UTC")
    assert window.is_open(at("2027-01-11T07:30", utc))
    assert not window.is_open(at("2027-07-12T07:30", utc))
    assert window.is_open(at("2027-07-12T06:30", utc))


def test_a_range_over_the_night_the_clocks_change_lasts_an_hour_less() -> None:
    window = parse_hours("Sat 22:00-06:00", BERLIN)  # 2027-03-27/28: 02:00 becomes 03:00
    opening = at("2027-03-27T22:00", BERLIN)
    assert window.closing(opening) == opening + 7 * 3600


@pytest.mark.parametrize(("hours", "zone", "local", "opens"), [
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-11T21:00", "2026-12-14T08:00"),  # Friday night: next Monday
    ("Mon-Fri 08:00-20:00", TOKYO, "2026-12-07T07:00", "2026-12-07T08:00"),
    ("Sat 22:00-06:00", TOKYO, "2026-12-13T07:00", "2026-12-19T22:00"),
    ("Mon-Fri 09:00-17:00", NEW_YORK, "2027-03-13T12:00", "2027-03-15T09:00"),  # across the switch to summer
])
def test_next_opening(hours: str, zone: ZoneInfo, local: str, opens: str) -> None:
    assert parse_hours(hours, zone).next_opening(at(local, zone)) == at(opens, zone)


@pytest.mark.parametrize(("hours", "local", "closes"), [
    ("Mon-Fri 08:00-20:00", "2026-12-07T09:00", "2026-12-07T20:00"),
    ("Mon-Fri 08:00-12:00; Mon-Fri 12:00-18:00", "2026-12-07T09:00", "2026-12-07T18:00"),  # touching: one stretch
    ("Sat 22:00-06:00; Sun 06:00-08:00", "2026-12-12T23:00", "2026-12-13T08:00"),
    ("Mon-Fri 00:00-24:00", "2026-12-09T12:00", "2026-12-12T00:00"),
])
def test_closing_is_the_end_of_the_open_stretch(hours: str, local: str, closes: str) -> None:
    assert parse_hours(hours, TOKYO).closing(at(local, TOKYO)) == at(closes, TOKYO)


def test_a_window_that_never_closes_or_is_closed_has_no_closing() -> None:
    assert parse_hours("00:00-24:00", TOKYO).closing(at("2026-12-07T09:00", TOKYO)) is None
    assert parse_hours("Mon 08:00-09:00", TOKYO).closing(at("2026-12-07T10:00", TOKYO)) is None


ALICE = Identity("alice", frozenset({"operators"}), False, "local")
OFFICE = Policy("office", ("operators",), (), ("desk-*",), hours=parse_hours("Mon-Fri 08:00-20:00", TOKYO))


def test_outside_its_hours_a_policy_does_not_match_and_says_when_it_opens() -> None:
    policies = PolicySet([OFFICE])
    assert policies.decide(ALICE, ip_address("127.0.0.1"), "desk-01", at("2026-12-07T09:00", TOKYO)).allowed
    decision = policies.decide(ALICE, ip_address("127.0.0.1"), "desk-01", at("2026-12-11T21:00", TOKYO))
    assert not decision.allowed and decision.outside_hours
    assert decision.reason.endswith(
        "now: policy 'office' is outside hours Mon-Fri 08:00-20:00 Asia/Tokyo; opens next Mon 08:00")
    assert policies.explain(ALICE, ip_address("127.0.0.1"), "desk-01", at("2026-12-11T21:00", TOKYO)) == [
        "1. policy 'office': no match: outside hours Mon-Fri 08:00-20:00 Asia/Tokyo; opens next Mon 08:00",
        "no policy matches: deny",
    ]


def test_a_denial_for_other_reasons_is_not_outside_hours() -> None:
    bob = Identity("bob", frozenset({"guests"}), False, "local")
    decision = PolicySet([OFFICE]).decide(bob, ip_address("127.0.0.1"), "desk-01", at("2026-12-11T21:00", TOKYO))
    assert not decision.outside_hours


def write_config(tmp_path: Path, policy_lines: str) -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text("targets:\n  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}\n"
                    "policies:\n  - name: office\n    groups: [operators]\n    targets: [desk-01]\n" + policy_lines)
    return path


def test_the_config_reads_hours_and_timezone(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '    hours: ["Mon-Fri 08:00-20:00", "Sat 22:00-06:00"]\n'
                                                "    timezone: America/New_York\n"))
    hours = config.policies[0].hours
    assert hours is not None and str(hours) == "Mon-Fri 08:00-20:00; Sat 22:00-06:00 America/New_York"


@pytest.mark.parametrize(("lines", "error"), [
    ('    hours: "Mon-Fri 08:00-20:61"\n', "deskgate.yaml:7: policies[0].hours: '20:61' is not a time of day"),
    ('    hours: "Mon-Fri 08:00-20:00"\n    timezone: Mars/Olympus\n',
     "deskgate.yaml:8: policies[0].timezone: 'Mars/Olympus' is not a time zone"),
    ("    timezone: Asia/Tokyo\n", "deskgate.yaml:7: policies[0].timezone: applies only to hours"),
    ("    hours: []\n", "deskgate.yaml:7: policies[0].hours: is empty"),
])
def test_config_errors_name_file_line_and_key(tmp_path: Path, lines: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, lines))
    assert error in str(caught.value)


@given(st.one_of(
    st.text(max_size=60),
    st.text(alphabet="MonTueWdhFriSatu-,; 0123456789:", max_size=60),
    st.lists(st.text(alphabet="MonFriSat-, 0123456789:", max_size=20), max_size=3),
))
def test_the_parser_only_ever_raises_value_error(text: str | list[str]) -> None:
    try:
        window = parse_hours(text, TOKYO)
    except ValueError:
        return
    instant = at("2026-12-07T12:00", TOKYO)
    window.is_open(instant)
    window.next_opening(instant)
    window.closing(instant)
