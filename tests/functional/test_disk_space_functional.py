"""A disk that warns before it fails: gauges of free space, and new desktops refused below ``storage.min_free``.

The nearly-full disk is injected (the gateway's disk-usage function) where the test must free
it again; the gauges and a ``min_free`` share no real disk meets are read from the test's real disk.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.demo import XvncDesktop
from gateway.desktop import CloseCode
from gateway.disk_space import NEARLY_FULL, Usage
from gateway.rfb.messages import Encoding, KeyEvent
from gateway.web.keys import DISK_SPACE
from tests.functional.auth_helpers import AuthGateway, auth_gateway
from tests.functional.test_access_functional import connect, free_again, open_desktop, signed_in
from tests.rfbclient import RFBClosed

pytestmark = [pytest.mark.functional, pytest.mark.timeout(60)]

GiB = 2**30


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(tmp_path, {"storage": {"min_free": "2GiB"}}, desktop_port=desktop.port) as gateway:
        yield gateway


async def set_free(gateway: AuthGateway, free: int) -> None:
    disk_space = gateway.gateway.app[DISK_SPACE]
    disk_space.usage = lambda path: Usage(total=100 * GiB, used=100 * GiB - free, free=free)
    await disk_space.refresh(gateway.config)


async def test_new_desktops_are_refused_while_live_ones_go_on(gateway: AuthGateway) -> None:
    async with await signed_in(gateway, "alice") as http:
        live = await open_desktop(http, gateway.url)
        await set_free(gateway, GiB)  # below min_free (2GiB): nearly full

        check = await http.get(f"{gateway.url}/api/v1/targets/desk-01/check")
        assert (check.status, (await check.json())["error"]) == (503, NEARLY_FULL)
        late = await connect(http, gateway.url)  # a page past its check: refused after the upgrade, with the reason
        with pytest.raises(RFBClosed) as closed:
            await late.handshake()
        assert (closed.value.code, closed.value.reason) == (CloseCode.DISK_FULL, NEARLY_FULL)

        await live.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))  # the live session still works
        assert (await live.capture([Encoding.RAW])).size > 0
        assert await gateway.metric(http, 'deskgate_sessions_refused_total{reason="disk_full"}') == 2.0
        assert await gateway.metric(http, 'deskgate_disk_free_bytes{volume="recordings"}') == GiB
        assert await gateway.metric(http, 'deskgate_disk_min_free_bytes{volume="recordings"}') == 2 * GiB

        await live.ws.close()
        await set_free(gateway, 3 * GiB)  # space freed: new desktops open again
        await free_again(http, gateway.url)
    refusals = [(e.user, e.target, e.reason, e.detail["volumes"]) for e in await gateway.audit()
                if e.action == "session.open" and e.outcome == "disk_full"]
    assert refusals == [("alice", "desk-01", NEARLY_FULL, "database, recordings")] * 2


async def test_gauges_read_the_real_disk_and_a_share_refuses(tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, {"storage": {"min_free": "99.99%"}}, desktop_port=desktop.port) as gateway:
        total = shutil.disk_usage(tmp_path).total
        async with await signed_in(gateway, "alice") as http:
            for volume in ("recordings", "database"):  # the recordings' directory does not exist yet: its parent's
                assert await gateway.metric(http, f'deskgate_disk_size_bytes{{volume="{volume}"}}') == total
                free = await gateway.metric(http, f'deskgate_disk_free_bytes{{volume="{volume}"}}')
                assert free is not None and 0 < free < total
                assert await gateway.metric(http, f'deskgate_disk_min_free_bytes{{volume="{volume}"}}') == int(
                    total * 0.9999)
            check = await http.get(f"{gateway.url}/api/v1/targets/desk-01/check")
            assert (check.status, (await check.json())["error"]) == (503, NEARLY_FULL)
