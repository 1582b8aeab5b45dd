"""Fail-closed and crash-safe recording, through the whole gateway, with real failures.

- Recording storage that cannot hold a journal: the desktop is refused, the operator
  is told why, and the refusal is counted and audited.
- A disk that fills up mid-session (a 1 MiB tmpfs mounted over the recordings in a
  private mount namespace of a ``deskgate serve`` process): the session ends within a
  flush interval with a clear reason, and ``recording_failures_total{reason="disk_full"}``.
- ``kill -9`` of a ``deskgate serve`` process during a session: the next start finalizes
  the journal ("gateway crashed", ended at its last record), indexes, seals and renders it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from auth.local import LocalUserStore
from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, KeyEvent
from gateway.web.keys import AUDIT
from recorder.batches import BATCH_LENGTH
from recorder.journal import JournalReader, RecordKind
from recorder.keyring import RecordingKeyring
from recorder.seal import seal_path
from tests.conftest import (
    GatewayUnderTest,
    User,
    start_test_gateway,
    write_gateway_config,
)
from tests.functional.test_desktop_functional import open_desktop
from tests.rfbclient import RFBClosed

pytestmark = [pytest.mark.functional, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_unwritable_recording_storage_refuses_the_desktop(
    tmp_path: Path, desktop: XvncDesktop, http: aiohttp.ClientSession
) -> None:
    write_gateway_config(tmp_path, desktop.port)
    (tmp_path / "recordings").write_text("a file where the recordings directory should be\n")
    under_test = await start_test_gateway(tmp_path, desktop.port)
    try:
        await under_test.login(http, "alice")
        client = await open_desktop(http, under_test)
        with pytest.raises(Exception, match="recording storage is not writable"):
            await client.handshake()
        with pytest.raises(RFBClosed) as closed:
            await client._receive()
        assert closed.value.code == 4011
        metrics = await (await http.get(under_test.gateway.metrics_url)).text()
        assert 'deskgate_recording_failures_total{reason="create_failed"} 1.0' in metrics
        assert 'deskgate_sessions_total{outcome="recording_failed",protocol="vnc"} 1.0' in metrics
        events = await under_test.gateway.app[AUDIT].list(user="alice", limit=None)
        assert ("recording.start", "failure") in [(event.action, event.outcome) for event in events]
    finally:
        await under_test.gateway.stop()


@dataclass(frozen=True)
class RemoteGateway:
    url: str


class GatewayProcess:
    """``deskgate serve`` in a child process (optionally with a tmpfs over its recordings)."""

    def __init__(self, workdir: Path, desktop_port: int) -> None:
        self.workdir = workdir
        self.port, self.metrics_port = free_port(), free_port()
        config = write_gateway_config(workdir, desktop_port)
        text = config.read_text()
        text = text.replace('http: "127.0.0.1:0"', f'http: "127.0.0.1:{self.port}"')
        text = text.replace('metrics: "127.0.0.1:0"', f'metrics: "127.0.0.1:{self.metrics_port}"')
        # min_free 0: these disks are to fill mid-session (the refusal of new sessions is tested apart)
        config.write_text(text.replace('database: "sqlite:///deskgate.db"',
                                       'database: "sqlite:///deskgate.db", fsync_interval: "250ms", min_free: 0'))
        self.config = config
        store = LocalUserStore(workdir / "users.yaml")
        password = "alice-correct-horse-battery"
        self.alice = User("alice", password, store.add_user("alice", password, ["operators"], False), ("operators",))
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, tmpfs: str | None = None) -> None:
        command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config)]
        if tmpfs is not None:
            recordings = self.workdir / "recordings"
            recordings.mkdir(exist_ok=True)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f'mount -t tmpfs -o {tmpfs} tmpfs "$0" && exec "$@"', str(recordings), *command]
        log = open(self.workdir / f"gateway-{time.monotonic_ns()}.log", "wb")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                assert self.process.poll() is None, f"the gateway exited with {self.process.returncode}"
                try:
                    if (await http.get(f"{self.url}/readyz")).status == 200:
                        return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def gateway_view(self) -> GatewayUnderTest:
        """What the in-process tests' helpers need: the URL and the users."""
        return GatewayUnderTest(RemoteGateway(self.url), self.workdir, {"alice": self.alice})  # type: ignore[arg-type]

    def recordings(self) -> list[dict[str, object]]:
        listed = subprocess.run([sys.executable, "-m", "gateway.cli", "recordings", "list", "--json",
                                 "--config", str(self.config)], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert listed.returncode == 0, listed.stderr
        return [json.loads(line) for line in listed.stdout.splitlines()]


@asynccontextmanager
async def gateway_process(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(tmp_path, desktop.port)
    try:
        yield process
    finally:
        process.kill(signal.SIGTERM)


async def test_a_full_disk_ends_the_session_with_a_reason(
    tmp_path: Path, desktop: XvncDesktop, http: aiohttp.ClientSession
) -> None:
    async with gateway_process(tmp_path, desktop) as gateway:
        await gateway.start(tmpfs="size=1m")
        view = gateway.gateway_view()
        assert (await view.login(http, "alice")).status == 200
        client = await open_desktop(http, view)
        await client.handshake()
        started = time.monotonic()
        with pytest.raises(RFBClosed) as closed:
            while True:  # a whole Raw screen is 3 MiB: the first flush cannot fit
                await client.capture([Encoding.RAW])
        assert time.monotonic() - started < 10
        assert closed.value.code == 4011
        assert "recording storage is full" in closed.value.reason
        metrics = await (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text()
        assert 'deskgate_recording_failures_total{reason="disk_full"} 1.0' in metrics


async def test_a_killed_gateway_leaves_a_journal_the_next_start_finishes(
    tmp_path: Path, desktop: XvncDesktop, http: aiohttp.ClientSession
) -> None:
    async with gateway_process(tmp_path, desktop) as gateway:
        await gateway.start()
        view = gateway.gateway_view()
        assert (await view.login(http, "alice")).status == 200
        client = await open_desktop(http, view)
        await client.handshake()
        await client.capture([Encoding.ZRLE])
        await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))
        await asyncio.sleep(1.0)  # several fsync intervals
        gateway.kill(signal.SIGKILL)

        journals = sorted((tmp_path / "recordings").rglob("*.dgj"))
        assert len(journals) == 1 and not seal_path(journals[0]).exists()
        keyring = RecordingKeyring.load(tmp_path / "var" / "recording-keys", create=False)  # the gateway made it
        reader = JournalReader(journals[0], keyring=keyring)
        records = list(reader)
        assert reader.encrypted and reader.end is None  # no END: the process died mid-session
        assert any(record.kind == RecordKind.SERVER_DATA for record in records)
        assert b"alice" not in journals[0].read_bytes()  # the HEADER is encrypted too
        torn_at = journals[0].stat().st_size
        with open(journals[0], "ab") as file:  # a batch the kill cut short
            file.write(BATCH_LENGTH.pack(4096) + os.urandom(1000))

        await gateway.start()  # recovery runs before the gateway is ready
        reader = JournalReader(journals[0], keyring=keyring)
        records = list(reader)
        assert reader.end is not None and reader.end["reason"] == "gateway crashed" and reader.end["crashed"]
        assert reader.end["torn_at"] == torn_at and reader.encrypted
        assert reader.end["ended_epoch"] == pytest.approx(reader.header["started_epoch"]
                                                          + records[-2].offset_us / 1e6, abs=0.001)
        assert seal_path(journals[0]).exists()

        async with asyncio.timeout(90):  # indexed, then rendered in a worker
            while True:
                listed = gateway.recordings()
                if listed and listed[0].get("video") in ("ready", "failed"):
                    break
                await asyncio.sleep(0.5)
        assert listed[0]["end_reason"] == "gateway crashed"
        assert listed[0]["video"] == "ready"
        verified = subprocess.run([sys.executable, "-m", "gateway.cli", "recordings", "verify", str(listed[0]["id"]),
                                   "--config", str(gateway.config)], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
