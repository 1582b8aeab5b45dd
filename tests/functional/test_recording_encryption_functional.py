"""Recordings encrypted at rest, through the whole gateway against a real Xvnc desktop.

A marker is shown on the desktop (an X client draws it), typed into its xterm with key
events, and pasted from the browser (classic cut text, which a plaintext journal would
hold verbatim). The decrypted journal holds all of it — so the raw-file check below could
find it — yet no file in the recordings directory (journal, seal, video, poster) holds the
marker, its key events, or even the user's name. Playback (video with Range, typed text)
and ``deskgate recordings verify`` work on the encrypted recording.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import av
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import ClientCutText, Encoding, KeyEvent
from recorder.journal import JournalReader, RecordKind
from tests.conftest import start_test_gateway
from tests.functional.test_desktop_functional import open_desktop
from tests.functional.test_recording_functional import recording_when_rendered
from tests.functional.unmask_helpers import unmasked_typed

pytestmark = [pytest.mark.functional, pytest.mark.timeout(180)]

MARKER = "Zq7MARKERkx9"


def key_events(text: str) -> list[KeyEvent]:
    return [KeyEvent(down, ord(char)) for char in text for down in (True, False)]


async def test_no_plaintext_of_a_session_reaches_the_recordings_directory(
    tmp_path: Path, desktop: XvncDesktop, http: aiohttp.ClientSession
) -> None:
    gateway = await start_test_gateway(tmp_path, desktop.port, clipboard="both")
    shown = subprocess.Popen(["xmessage", "-geometry", "+300+200", MARKER], env={**os.environ, **desktop.env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert (await gateway.login(http, "alice")).status == 200
        client = await open_desktop(http, gateway)
        await client.handshake()
        typed = key_events(MARKER)
        await client.send(*typed)
        await client.send(ClientCutText(MARKER.encode()))
        await asyncio.sleep(0.3)  # the xterm echoes the keys; xmessage is up
        await client.capture([Encoding.ZRLE])
        await client.ws.close()
        row = await recording_when_rendered(gateway, "alice")

        journal = Path(row.path)
        reader = JournalReader(journal)
        assert reader.encrypted and reader.header["user"] == "alice"
        sent = b"".join(record.payload for record in reader if record.kind == RecordKind.CLIENT_DATA)
        typed_bytes = b"".join(event.encode() for event in typed[:4])
        assert MARKER.encode() in sent and typed_bytes in sent  # what a plaintext journal would give away

        files = [path for path in (tmp_path / "recordings").rglob("*") if path.is_file()]
        assert {path.suffix for path in files} >= {".dgj", ".seal", ".mp4", ".jpg"}
        for path in files:
            raw = path.read_bytes()
            for secret in (MARKER.encode(), MARKER.encode("utf-16-le"), typed_bytes, b"alice", b"desk-01"):
                assert secret not in raw, f"{path.name} holds {secret!r} in clear"

        # Playback decrypts transparently for a supervisor: the video (also by Range), poster, typed text.
        await http.post(f"{gateway.url}/logout")
        http.cookie_jar.clear()
        assert (await gateway.login(http, "sam")).status == 200
        base = f"{gateway.url}/api/v1/recordings/{row.id}"
        async with http.get(f"{base}/video") as response:
            assert response.status == 200
            video = await response.read()
        with av.open(io.BytesIO(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 1
        async with http.get(f"{base}/video", headers={"Range": "bytes=4-11"}) as response:
            assert response.status == 206 and await response.read() == b"ftypisom"
        assert MARKER in json.dumps(await unmasked_typed(http, gateway.url, row.id))  # shown after a reason
        async with http.get(f"{base}/poster") as response:
            assert response.status == 200 and (await response.read()).startswith(b"\xff\xd8")

        verified = subprocess.run([sys.executable, "-m", "gateway.cli", "recordings", "verify", row.id,
                                   "--config", str(tmp_path / "deskgate.yaml")],
                                  capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        shown.terminate()
        shown.wait(timeout=10)
        await gateway.gateway.stop()
