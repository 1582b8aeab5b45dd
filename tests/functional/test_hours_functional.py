"""A policy's time window on a real gateway and a real Xvnc desktop, on an injected clock: warned, then ended."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.session_watch import CloseCode
from tests.functional.auth_helpers import AuthGateway, Clock, auth_gateway, cookie_session
from tests.functional.supervision_helpers import EventStream, closed_with, open_desktop

pytestmark = pytest.mark.functional

TOKYO = ZoneInfo("Asia/Tokyo")
OFFICE = {"policies": [{"name": "office", "groups": ["operators"], "from": ["127.0.0.0/8", "::1/128"],
                        "targets": ["desk-*"], "hours": "Mon-Fri 08:00-20:00", "timezone": "Asia/Tokyo",
                        "hours_warning": "5m"}]}


def tokyo(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO).timestamp()


async def sign_in(gateway: AuthGateway, http: aiohttp.ClientSession) -> None:
    response = await gateway.login(http, "alice")
    assert response.status == 200, await response.text()


async def test_a_session_is_warned_then_ended_when_its_window_closes(tmp_path: Path, desktop: XvncDesktop) -> None:
    clock = Clock()
    clock.now = tokyo("2026-12-07T19:54:00")  # a Monday, six minutes before closing
    async with auth_gateway(tmp_path, OFFICE, desktop_port=desktop.port, clock=clock) as gateway, \
            cookie_session() as alice:
        await sign_in(gateway, alice)
        notices = await EventStream.open(alice, gateway.url)
        assert (await notices.next()).event == "hello"
        client = await open_desktop(alice, gateway.url)

        clock.advance(90)  # 19:55:30: inside the five minutes' warning
        notice = await notices.next_notice()
        assert (notice["type"], notice["closing_epoch"], notice["target"]) == \
            ("window_closing", tokyo("2026-12-07T20:00:00"), "desk-01")

        clock.advance(300)  # 20:00:30
        closed = await closed_with(client, within=10)
        assert (closed.code, closed.reason) == (CloseCode.OUTSIDE_HOURS, "outside working hours")

        refused = await alice.get(f"{gateway.url}/api/v1/targets")
        assert (await refused.json())["targets"] == []
        assert await gateway.metric(alice, "deskgate_window_warnings_total ") == 1
        notices.close()

    closes = [(event.outcome, event.reason) for event in await gateway.audit() if event.action == "session.close"]
    assert closes == [("outside_hours", "outside working hours")]


async def test_outside_its_hours_a_desktop_is_refused_with_when_it_opens(tmp_path: Path, desktop: XvncDesktop) -> None:
    clock = Clock()
    clock.now = tokyo("2026-12-11T21:00:00")  # a Friday evening
    async with auth_gateway(tmp_path, OFFICE, desktop_port=desktop.port, clock=clock) as gateway, \
            cookie_session() as alice:
        await sign_in(gateway, alice)
        response = await alice.get(f"{gateway.url}/ws/vnc/desk-01", headers={"Origin": gateway.url})
        assert response.status == 403
        assert (await response.json())["error"] == (
            "desk-01 is outside its working hours: no policy allows alice (groups: operators) from 127.0.0.1 to "
            "desk-01 now: policy 'office' is outside hours Mon-Fri 08:00-20:00 Asia/Tokyo; opens next Mon 08:00")
