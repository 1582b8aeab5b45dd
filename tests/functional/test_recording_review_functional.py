"""Reviewing a real recording: an operator types on a real TigerVNC desktop through the gateway; once
rendered, a supervisor reads what was typed, sees the poster, finds the session by part of the name,
source network and event, bookmarks a moment and exports a clip — all over the gateway's HTTP API,
with its session cookie and CSRF token, as the player does.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, KeyEvent, PointerEvent
from recorder.encrypted_files import read_export
from recorder.index import RecordingRow, VideoState
from recorder.keyring import installed
from tests.conftest import DESKTOP_HEIGHT, DESKTOP_PASSWORD, DESKTOP_WIDTH, GatewayUnderTest
from tests.functional.test_desktop_functional import open_desktop
from tests.functional.test_recording_functional import recording_when_rendered
from tests.functional.unmask_helpers import unmasked_typed
from tests.recorder.test_render import psnr
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.functional

BACKSPACE = 0xFF08


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """An office desktop (a plain background and an xterm): JPEG and H.264 keep it legible."""
    with XvncDesktop(tmp_path_factory.mktemp("office"), width=DESKTOP_WIDTH, height=DESKTOP_HEIGHT,
                     password=DESKTOP_PASSWORD) as xvnc:
        subprocess.run(["xsetroot", "-solid", "#3a6ea5"], env=xvnc.env, check=True, timeout=10)
        yield xvnc


async def press(client: Any, text: str) -> None:
    for char in text:
        keysym = ord(char) if len(char) == 1 else BACKSPACE
        await client.send(KeyEvent(True, keysym), KeyEvent(False, keysym))


async def type_a_session(gateway: GatewayUnderTest, http: aiohttp.ClientSession,
                         desktop: XvncDesktop) -> tuple[RecordingRow, np.ndarray]:
    """alice types "hi", pauses, types "there" and erases it; her rendered recording and the first screen."""
    assert (await gateway.login(http, "alice")).status == 200
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
    await client.capture([Encoding.ZRLE])
    screenshot = read_xwd(take_screenshot(desktop))
    await press(client, "hi")
    await asyncio.sleep(2.5)  # longer than the typed text's burst gap: a new entry
    await press(client, "there")
    await client.send(*(KeyEvent(down, BACKSPACE) for _ in range(7) for down in (True, False)))
    await asyncio.sleep(0.3)
    await client.ws.close()
    row = await recording_when_rendered(gateway, "alice")
    assert row.video_state == VideoState.READY
    return row, screenshot


async def supervisor(gateway: GatewayUnderTest) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    """sam's own HTTP session (cookies) and the CSRF header his page would send."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    assert (await gateway.login(http, "sam")).status == 200
    async with http.get(f"{gateway.url}/api/v1/session") as response:
        token = (await response.json())["csrf_token"]
    return http, {"X-CSRF-Token": token}


async def test_a_supervisor_reviews_a_real_recording(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession, desktop: XvncDesktop
) -> None:
    row, screenshot = await type_a_session(gateway, http, desktop)
    sam, csrf = await supervisor(gateway)
    base = f"{gateway.url}/api/v1/recordings/{row.id}"
    try:
        # What alice typed, from the journal, in two entries (the pause split them), erasures shown —
        # after sam gave a reason (typed text is shown only unmasked).
        async with sam.get(f"{base}/typed") as response:
            assert (await response.json())["withheld"] is True
        typed = await unmasked_typed(sam, gateway.url, row.id)
        assert typed["record_input"] == "full" and typed["recorded"]
        assert [entry["text"] for entry in typed["entries"]] == ["hi", "there" + "⌫" * 7]
        first, second = typed["entries"]
        assert 0 < first["t"] <= first["end"] < second["t"] - 2 < row.duration

        # The poster: the desktop as first shown, not black.
        async with sam.get(f"{base}/poster") as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
            poster_bytes = await response.read()
        with av.open(io.BytesIO(poster_bytes)) as container:
            poster = next(container.decode(video=0)).to_ndarray(format="rgb24")
        assert poster.shape == screenshot.shape and psnr(poster, screenshot) >= 30

        # Found by part of the name, the source network and an event it holds.
        for query in ("user_contains=LIC", "source=127.0.0.0/8", "event=session_start"):
            async with sam.get(f"{gateway.url}/api/v1/recordings?{query}") as response:
                assert [found["id"] for found in (await response.json())["recordings"]] == [row.id], query

        # A bookmark at the second entry, with the page's CSRF token (and refused without it).
        moment = {"t": second["t"], "note": "training: correcting a typo"}
        async with sam.post(f"{base}/bookmarks", json=moment) as response:
            assert response.status == 403
        async with sam.post(f"{base}/bookmarks", json=moment, headers=csrf) as response:
            assert response.status == 201
        async with sam.get(f"{gateway.url}/api/v1/bookmarks") as response:
            (mine,) = (await response.json())["bookmarks"]
        assert (mine["note"], mine["t"], mine["recording"]["user"]) == (moment["note"], second["t"], "alice")

        # A clip of the stretch with the typing, rendered by the gateway's workers: it opens on the
        # screen as it was when the typing began.
        start, end = first["t"], min(row.duration, second["end"] + 0.5)
        async with sam.post(f"{base}/clips", json={"from": start, "to": end}, headers=csrf) as response:
            assert response.status == 202, await response.text()
            clip = (await response.json())["clip"]
        async with asyncio.timeout(90):
            while clip["state"] not in ("ready", "failed"):
                await asyncio.sleep(0.2)
                async with sam.get(f"{base}/clips/{clip['id']}") as response:
                    clip = (await response.json())["clip"]
        assert clip["state"] == "ready", clip
        async with sam.get(f"{base}/clips/{clip['id']}/video") as response:
            assert response.status == 200
            data = await response.read()
        with av.open(io.BytesIO(data)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
            length = float(container.duration or 0) / 1e6
        assert length == pytest.approx(end - start, abs=0.05)
        assert psnr(frames[0], screenshot) >= 30
    finally:
        await sam.close()
    clip_file = Path(gateway.workdir / "recordings" / "clips" / f"{clip['id']}.mp4")
    assert read_export(clip_file, installed()) == data and clip_file.read_bytes()[:8] == b"DGEXPT\x00\x01"
