"""Masked regions on a real Xvnc desktop showing a card number and an address at a known place.

No supervisor ever receives those pixels — not in the live view, a wall tile, the player's video,
its poster or an exported clip — while the journal keeps them: a user a policy allows to
``unmask`` sees them after giving a reason, which is audited; one without ``unmask`` is refused.
Keys typed into the masked field, and a Luhn-valid card number typed anywhere, are journaled as
counts only; ``record_input: off`` keeps neither keys nor counts.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, KeyEvent, PointerEvent
from gateway.web.keys import METRICS, RECORDING_INDEX
from recorder.index import RecordingRow, VideoState
from recorder.journal import JournalReader
from tests.conftest import DESKTOP_HEIGHT, DESKTOP_PASSWORD, DESKTOP_WIDTH
from tests.functional.auth_helpers import AuthGateway, auth_gateway, cookie_session
from tests.functional.supervision_helpers import open_desktop
from tests.functional.test_live_view_functional import open_viewer, session_id_of, sign_in
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.functional

LOOPBACK = ["127.0.0.0/8", "::1/128"]
#: Where the xterm with the personal data is, and the mask over it (with a margin for its border).
X, Y, WIDTH, HEIGHT = 100, 90, 240, 70
USERS = {"alice": ["operators"], "bob": ["quiet"], "sam": ["supervisors"], "pia": ["privacy"]}
CHANGES: dict[str, Any] = {
    "targets": {"desk-01": {"max_sessions": None}},
    "policies": [
        {"name": "operators", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-*"]},
        {"name": "quiet", "groups": ["quiet"], "from": LOOPBACK, "targets": ["desk-*"], "record_input": "off"},
        {"name": "supervisors", "groups": ["supervisors"], "from": LOOPBACK, "targets": ["desk-01"],
         "watch": ["operators"], "recordings": "all"},
        {"name": "privacy", "groups": ["privacy"], "from": LOOPBACK, "targets": ["desk-01"], "recordings": "all",
         "unmask": True},
    ],
    "masks": [{"targets": ["desk-*"], "desktop": f"{DESKTOP_WIDTH}x{DESKTOP_HEIGHT}", "style": "black",
               "regions": [{"x": X, "y": Y, "width": WIDTH, "height": HEIGHT, "label": "card number, address"}]}],
}
CARD = "4111111111111111"  # Luhn-valid


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """A plain desktop with one white xterm at (110, 100) showing a card number and an address."""
    with XvncDesktop(tmp_path_factory.mktemp("crm"), width=DESKTOP_WIDTH, height=DESKTOP_HEIGHT,
                     password=DESKTOP_PASSWORD, window_manager=False, terminal=False) as xvnc:
        subprocess.run(["xsetroot", "-solid", "#3a6ea5"], env=xvnc.env, check=True, timeout=10)
        xterm = subprocess.Popen(
            ["xterm", "-geometry", "26x3+110+100", "-bg", "white", "-fg", "black", "-e", "sh", "-c",
             "printf '4111 1111 1111 1111\\n1-2-3 Chiyoda, Tokyo'; sleep 600"],
            env={**xvnc.env, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield xvnc
        finally:
            xterm.terminate()
            xterm.wait(timeout=10)


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(tmp_path, CHANGES, desktop_port=desktop.port, users=USERS) as gateway:
        yield gateway


def masked(picture: np.ndarray, inset: int = 0) -> np.ndarray:
    return picture[Y + inset:Y + HEIGHT - inset, X + inset:X + WIDTH - inset]


async def screen_with_the_personal_data(desktop: XvncDesktop) -> np.ndarray:
    """The desktop's own picture once the xterm shows its text (white background, black glyphs)."""
    async with asyncio.timeout(15):
        while True:
            picture = read_xwd(await asyncio.to_thread(take_screenshot, desktop))
            if shown(picture):
                return picture
            await asyncio.sleep(0.1)


async def csrf(http: aiohttp.ClientSession, gateway: AuthGateway) -> dict[str, str]:
    async with http.get(f"{gateway.url}/api/v1/session") as response:
        return {"X-CSRF-Token": (await response.json())["csrf_token"]}


async def rendered(gateway: AuthGateway, user: str) -> RecordingRow:
    index = gateway.gateway.app[RECORDING_INDEX]
    async with asyncio.timeout(90):
        while True:
            rows = await index.search(user=user, limit=1)
            if rows and rows[0].video_state in (VideoState.READY, VideoState.FAILED):
                assert rows[0].video_state == VideoState.READY
                return rows[0]
            await asyncio.sleep(0.1)


async def frames_of(http: aiohttp.ClientSession, url: str) -> list[np.ndarray]:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        data = await response.read()
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def hidden(picture: np.ndarray) -> bool:
    """The masked region is black (H.264 and JPEG: nearly; a few pixels' inset for their edge ringing)."""
    return int(masked(picture, inset=4).max()) <= 40


def shown(picture: np.ndarray) -> bool:
    """The xterm's white background and black text are visible in the region."""
    region = masked(picture, inset=4)
    return (region.min(axis=2) >= 200).any() and (region.max(axis=2) <= 80).any()


async def test_no_supervisor_receives_the_masked_pixels_and_unmasking_needs_a_reason(
        gateway: AuthGateway, desktop: XvncDesktop) -> None:
    original = await screen_with_the_personal_data(desktop)
    async with cookie_session() as operator, cookie_session() as sam, cookie_session() as pia:
        await sign_in(gateway, operator, "alice")
        client = await open_desktop(operator, gateway.url)
        await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
        assert shown(await client.capture([Encoding.ZRLE]))  # the operator sees everything: it is recorded
        await sign_in(gateway, sam, "sam")
        session_id = await session_id_of(gateway, sam, "alice")

        # The live view (lossless: exactly black there, exactly the desktop elsewhere) and a wall tile.
        viewer = await open_viewer(gateway, sam, session_id)
        for encodings in ([Encoding.ZRLE], [Encoding.RAW]):
            seen = await viewer.capture(encodings)
            assert not masked(seen).any(), encodings
            outside = np.ones(seen.shape[:2], bool)
            outside[Y:Y + HEIGHT, X:X + WIDTH] = False
            outside[-40:, -40:] = False  # where the cursor may be drawn
            assert np.array_equal(seen[outside], original[outside])
        await viewer.ws.close()
        tile = await open_viewer(gateway, sam, session_id, mode="tile")
        assert not masked(await tile.capture([Encoding.TIGHT, Encoding.ZRLE])).any()
        await tile.ws.close()
        await asyncio.sleep(1.2)  # a clip is at least 1 s long
        await client.ws.close()
        row = await rendered(gateway, "alice")
        base = f"{gateway.url}/api/v1/recordings/{row.id}"

        # The player's video, its poster and an exported clip: masked.
        video = await frames_of(sam, f"{base}/video")
        assert all(hidden(frame) for frame in video) and not hidden(original)
        assert abs(video[-1][:Y].astype(int) - original[:Y]).mean() < 8  # the rest of the screen is there
        poster = await frames_of(sam, f"{base}/poster")
        assert hidden(poster[0])
        async with sam.post(f"{base}/clips", json={"from": 0, "to": row.duration},
                            headers=await csrf(sam, gateway)) as response:
            assert response.status == 202, await response.text()
            clip = (await response.json())["clip"]
        async with asyncio.timeout(90):
            while clip["state"] not in ("ready", "failed"):
                await asyncio.sleep(0.2)
                async with sam.get(f"{base}/clips/{clip['id']}") as response:
                    clip = (await response.json())["clip"]
        assert all(hidden(frame) for frame in await frames_of(sam, f"{base}/clips/{clip['id']}/video"))
        events = await (await sam.get(f"{base}/events")).json()
        assert [e["sets"][0]["regions"][0]["label"] for e in events["events"] if e["type"] == "masks"] == [
            "card number, address"]
        assert events["may_unmask"] is False

        # Without unmask: refused (audited); with it, after a reason, the original pixels.
        async with sam.post(f"{base}/unmask", json={"reason": "complaint"}, headers=await csrf(sam, gateway)) as r:
            assert r.status == 403
        assert (await sam.get(f"{base}/video/unmasked?grant=1.{'0' * 64}")).status == 403
        await sign_in(gateway, pia, "pia")
        async with pia.post(f"{base}/unmask", json={"reason": "chargeback dispute 77"},
                            headers=await csrf(pia, gateway)) as response:
            assert response.status == 200, await response.text()
            grant = await response.json()
        unmasked = await frames_of(pia, f"{gateway.url}{grant['video']}")
        assert shown(unmasked[-1])
        assert (await pia.get(f"{base}/video/unmasked")).status == 403  # no grant, no video
    audit = [(e.user, e.action, e.outcome, e.reason) for e in await gateway.audit() if e.action == "recording.unmask"]
    assert audit == [("sam", "recording.unmask", "denied", "no policy lets this user unmask"),
                     ("pia", "recording.unmask", "allowed", "chargeback dispute 77")]


async def type_text(client: Any, text: str) -> None:
    await client.send(*(KeyEvent(down, ord(char)) for char in text for down in (True, False)))


async def test_a_card_number_and_keys_in_a_masked_field_are_kept_as_counts_only(
        gateway: AuthGateway, desktop: XvncDesktop) -> None:
    async with cookie_session() as operator, cookie_session() as pia:
        await sign_in(gateway, operator, "alice")
        client = await open_desktop(operator, gateway.url)  # (it presses Shift once)
        await type_text(client, CARD + "\r789\r")
        await client.send(PointerEvent(0, X + 20, Y + 20), PointerEvent(1, X + 20, Y + 20), PointerEvent(0, X + 20, Y + 20))
        await type_text(client, "secret")
        await client.send(PointerEvent(1, 600, 600), PointerEvent(0, 600, 600))
        await type_text(client, "ok")
        await asyncio.sleep(0.3)
        await client.ws.close()
        row = await rendered(gateway, "alice")
        journal = journal_records(Path(row.path))
        for char in CARD + "secret":
            assert KeyEvent(True, ord(char)).encode() not in journal, char
        assert KeyEvent(True, ord("7")).encode() in journal and KeyEvent(True, ord("k")).encode() in journal
        assert row.keys == 1 + len(CARD) + 1 + 3 + 1 + len("secret") + len("ok")  # every press still counted
        metrics = gateway.gateway.app[METRICS]
        assert metrics.keys_withheld_total.labels(why="card_number")._value.get() == len(CARD)
        assert metrics.keys_withheld_total.labels(why="masked_region")._value.get() == len("secret")

        await sign_in(gateway, pia, "pia")
        base = f"{gateway.url}/api/v1/recordings/{row.id}"
        async with pia.post(f"{base}/unmask", json={"reason": "quality check"},
                            headers=await csrf(pia, gateway)) as response:
            grant = await response.json()
        typed = await (await pia.get(f"{gateway.url}{grant['typed']}")).json()
        text = "".join(entry["text"] for entry in typed["entries"])
        assert "789" in text and "ok" in text and "4111" not in text and "secret" not in text


def journal_records(path: Path) -> bytes:
    """Every record's payload, decrypted (the journal is encrypted at rest): what the journal keeps."""
    return b"".join(record.payload for record in JournalReader(path))


async def test_record_input_off_keeps_neither_keys_nor_counts(gateway: AuthGateway, desktop: XvncDesktop) -> None:
    async with cookie_session() as operator:
        await sign_in(gateway, operator, "bob")
        client = await open_desktop(operator, gateway.url)
        await type_text(client, "hello")
        await client.send(PointerEvent(1, 500, 500), PointerEvent(0, 500, 500))
        await asyncio.sleep(0.3)
        await client.ws.close()
        row = await rendered(gateway, "bob")
    journal = journal_records(Path(row.path))
    assert KeyEvent(True, ord("h")).encode() not in journal and b'"keys"' not in journal
    assert (row.keys, row.clicks) == (0, 0)
