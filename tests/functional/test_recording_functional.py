"""Every desktop session through the gateway is recorded on the server, indexed, sealed and rendered.

A real session against TigerVNC for each encoding: the journal replays to exactly the
server's own screenshot (before H.264), the gateway's rendered video ends on a frame
within 35 dB PSNR of it, the recording is searchable from the API and the CLI, and
``deskgate recordings verify`` tells an intact journal from a changed one.

The desktop here is an office one (openbox, an xterm with text, a plain background)
rather than the suite's one-pixel plaid: H.264 in yuv420p, which every browser plays,
halves the colour resolution, and that alone caps a one-pixel colour pattern at about
24 dB whatever the quality setting (measured: 23.6 dB at CRF 23, 23.7 dB at CRF 12).
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, KeyEvent, PointerEvent
from gateway.web.keys import AUDIT, RECORDING_INDEX
from recorder.encrypted_files import read_export
from recorder.index import RecordingRow, VideoState
from recorder.journal import JournalReader, RecordKind
from recorder.keyring import installed
from recorder.records import SessionHeader
from recorder.render import SessionReplay
from tests.conftest import (
    DESKTOP_HEIGHT,
    DESKTOP_PASSWORD,
    DESKTOP_WIDTH,
    GatewayUnderTest,
)
from tests.functional.test_desktop_functional import open_desktop
from tests.recorder.test_render import psnr, yuv_to_rgb
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.functional

RENDER_WAIT = 90.0  # the first render also starts a worker process


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """An office desktop: openbox, an xterm that has printed some text, a plain blue background."""
    with XvncDesktop(tmp_path_factory.mktemp("office"), width=DESKTOP_WIDTH, height=DESKTOP_HEIGHT,
                     password=DESKTOP_PASSWORD) as xvnc:
        subprocess.run(["xsetroot", "-solid", "#3a6ea5"], env=xvnc.env, check=True, timeout=10)
        subprocess.run(["xdotool", "search", "--sync", "--class", "xterm", "windowactivate", "--sync",
                        "type", "--delay", "5", "echo 'Order 4711: card ending 0042, 221B Baker Street'\n"],
                       env=xvnc.env, check=True, timeout=30)
        yield xvnc


async def recording_when_rendered(gateway: GatewayUnderTest, user: str) -> RecordingRow:
    """The user's newest recording once its video is rendered (or its rendering failed)."""
    index = gateway.gateway.app[RECORDING_INDEX]
    async with asyncio.timeout(RENDER_WAIT):
        while True:
            rows = await index.search(user=user, target="desk-01", limit=1)
            if rows and rows[0].video_state in (VideoState.READY, VideoState.FAILED):
                return rows[0]
            await asyncio.sleep(0.1)


async def record_a_session(gateway: GatewayUnderTest, http: aiohttp.ClientSession, encoding: Encoding) -> RecordingRow:
    """alice opens desk-01, receives one whole screen in ``encoding`` and leaves; her recording, rendered."""
    await gateway.login(http, "alice")
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.capture([encoding])
    await client.ws.close()
    return await recording_when_rendered(gateway, "alice")


def replayed_framebuffer(journal: Path) -> np.ndarray:
    """The desktop as the journal rebuilds it, without the locally drawn cursor."""
    reader = JournalReader(journal)
    replay = SessionReplay(SessionHeader.from_json(reader.header))
    for record in reader:
        replay.apply(record)
    assert reader.torn_at is None and reader.end is not None
    return replay.framebuffer.pixels.copy()


def last_video_frame(path: Path) -> np.ndarray:
    with av.open(io.BytesIO(read_export(path, installed()))) as container:  # encrypted at rest
        frames = [yuv_to_rgb(frame) for frame in container.decode(container.streams.video[0])]
    return frames[-1]


def deskgate(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("encoding", [Encoding.ZRLE, Encoding.HEXTILE, Encoding.RAW, Encoding.TIGHT],
                         ids=lambda e: e.name)
async def test_a_session_is_recorded_and_its_video_ends_on_the_desktop(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession, desktop: XvncDesktop, encoding: Encoding
) -> None:
    assert (await gateway.login(http, "alice")).status == 200
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
    await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))  # shift: input, but nothing on screen
    await client.capture([encoding])
    screenshot = read_xwd(take_screenshot(desktop))
    await client.ws.close()

    row = await recording_when_rendered(gateway, "alice")
    assert row.video_state == VideoState.READY
    assert (row.user, row.target, row.protocol, row.source) == ("alice", "desk-01", "vnc", "127.0.0.1")
    assert row.end_reason == "the browser closed the session"
    assert row.keys == 1 and row.duration > 0 and row.bytes > DESKTOP_WIDTH * DESKTOP_HEIGHT // 100
    assert row.sha256 is not None and len(row.sha256) == 64  # the seal's digest, indexed

    journal = Path(row.path)
    assert journal.is_relative_to(gateway.workdir / "recordings")
    # Lossless encodings replay to the server's own screen, pixel for pixel.
    pixels = replayed_framebuffer(journal)
    mismatched = int(np.count_nonzero((pixels != screenshot).any(axis=2)))
    assert mismatched == 0, f"{mismatched} replayed pixels differ from the server's screenshot"
    assert row.video_path is not None
    assert psnr(last_video_frame(Path(row.video_path)), screenshot) >= 35


async def test_the_journal_holds_no_secret_and_the_session_is_audited(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    row = await record_a_session(gateway, http, Encoding.ZRLE)

    journal = Path(row.path)
    data = journal.read_bytes()
    assert b"s3cret-vnc" not in data and b"RFB 003" not in data  # the handshakes are never journaled
    reader = JournalReader(journal)
    assert reader.header["user"] == "alice" and reader.header["target"] == "desk-01"
    kinds = {record.kind for record in reader}
    assert {RecordKind.SERVER_DATA, RecordKind.CLIENT_DATA, RecordKind.EVENT, RecordKind.END} <= kinds

    events = await gateway.gateway.app[AUDIT].list(user="alice", limit=None)
    actions = [(event.action, event.outcome) for event in events]
    assert ("session.open", "allowed") in actions and ("session.close", "closed") in actions
    closed = next(event for event in events if event.action == "session.close")
    assert closed.detail["recording"] == row.id


async def test_recordings_are_listed_and_verified_by_the_cli(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    row = await record_a_session(gateway, http, Encoding.ZRLE)
    config = gateway.workdir / "deskgate.yaml"

    listed = deskgate("recordings", "list", "--user", "alice", "--json", config=config)
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [entry["id"] for entry in entries] == [row.id]
    assert {"id", "user", "target", "protocol", "started", "ended", "bytes", "path"} <= set(entries[0])
    assert deskgate("recordings", "list", "--user", "bob", "--json", config=config).stdout == ""

    intact = deskgate("recordings", "verify", row.id, config=config)
    assert intact.returncode == 0, intact.stdout + intact.stderr

    journal = Path(row.path)
    data = bytearray(journal.read_bytes())
    data[len(data) // 2] ^= 0x01
    journal.write_bytes(bytes(data))
    tampered = deskgate("recordings", "verify", row.id, config=config)
    assert tampered.returncode == 1
    assert "changed" in tampered.stdout

    unknown = deskgate("recordings", "verify", "../../etc/passwd", config=config)
    assert unknown.returncode == 1 and "not a recording id" in unknown.stderr


async def test_render_on_demand_prints_the_realtime_factor(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    row = await record_a_session(gateway, http, Encoding.HEXTILE)
    output = tmp_path / "out.mp4"
    rendered = deskgate("recordings", "render", row.id, "-o", str(output), config=gateway.workdir / "deskgate.yaml")
    assert rendered.returncode == 0, rendered.stderr
    assert "100%" in rendered.stderr and "x realtime" in rendered.stdout
    assert output.stat().st_size > 0
