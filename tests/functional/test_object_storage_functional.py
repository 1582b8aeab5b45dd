"""Two ``deskgate serve`` nodes on one PostgreSQL and one bucket (moto's S3 server, standing in for AWS
S3 or MinIO), with a ``deskgate worker`` beside node B; and a bucket that stops answering.

A session through node A is uploaded, indexed and rendered by the worker and played through node B
(the journal B serves is byte-identical to the one A wrote). Node A killed with SIGKILL mid-session
leaves the recording in the bucket up to its last segment; the worker finalizes and seals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import load_config
from gateway.desktop import CloseCode
from gateway.rfb.errors import TargetUnavailable
from gateway.rfb.messages import KeyEvent
from gateway.web.app import start_gateway
from recorder.encrypted_files import EXPORT_MAGIC, read_export
from recorder.journal import recording_path
from recorder.keyring import RecordingKeyring
from recorder.storage import S3Storage, segments
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)
from tests.functional.auth_helpers import (
    ROOT,
    AuthGateway,
    Clock,
    add_local_users,
    cookie_session,
    deskgate,
    free_port,
    restore_logging,  # noqa: F401  (a fixture)
    wait_ready,
    write_config,
)
from tests.functional.supervision_helpers import LOOPBACK, POLICIES, USERS, closed_with, open_desktop
from tests.functional.test_supervision_postgres_functional import clean_database, sign_in  # noqa: F401
from tests.rfbclient import RFBClosed
from tests.s3_server import S3Server, own_s3_server, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.functional

MARKER = "Zq7BUCKETkx9"
REVIEWERS = {"name": "reviewers", "groups": ["reviewers"], "from": LOOPBACK, "targets": ["desk-01"],
             "recordings": "all"}


@contextlib.contextmanager
def deskgate_process(command: str, config_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``deskgate COMMAND --config config_path`` as a child process, stopped (SIGTERM) at the end."""
    with open(config_path.with_suffix(".log"), "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", command, "--config", str(config_path)],
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


async def recordings_on(http: aiohttp.ClientSession, url: str) -> dict[str, dict[str, Any]]:
    response = await http.get(f"{url}/api/v1/recordings")
    assert response.status == 200, await response.text()
    return {recording["id"]: recording for recording in (await response.json())["recordings"]}


async def wait_for_recording(http: aiohttp.ClientSession, url: str, recording_id: str, video: str,
                             within: float = 40) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            found = (await recordings_on(http, url)).get(recording_id)
            if found is not None and found["video"] == video:
                return found
            await asyncio.sleep(0.25)


async def new_recording(bucket: S3Storage, known: set[str], segment_count: int = 1) -> str:
    """The id of a recording not in ``known`` once it has ``segment_count`` segments in the bucket."""
    async with asyncio.timeout(20):
        while True:
            ids = {key.split("/")[0] for key in await bucket.list("")} - known
            for recording_id in ids:
                if len(await segments(bucket, recording_id)) >= segment_count:
                    return recording_id
            await asyncio.sleep(0.1)


def decrypted(stored: bytes, keyring: RecordingKeyring) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export"
        path.write_bytes(stored)
        return read_export(path, keyring)


async def test_any_node_serves_any_recording_and_recovers_a_dead_nodes(
        tmp_path: Path, clean_database: str, desktop: Any, s3_server: S3Server,  # noqa: F811
        restore_logging: None) -> None:  # noqa: F811
    storage = {**s3_server.config(prefix=tmp_path.name), "database": clean_database, "segment_interval": 0.5,
               "upload_deadline": "10s", "job_lease": "2s", "workers": False}
    ports = {name: free_port() for name in ("a", "b")}
    paths = {}
    for name in ("a", "b", "worker"):
        paths[name] = write_config(tmp_path, {
            "policies": [*POLICIES["policies"], REVIEWERS], "storage": {**storage, "spool": f"spool-{name}"},
            "audit": {"node": f"node-{name}"},
            "listen": {"http": f"127.0.0.1:{ports.get(name, free_port())}", "metrics": f"127.0.0.1:{free_port()}"},
        }, desktop.port, name=f"node-{name}.yaml")
    config_a = load_config(paths["a"])
    secrets = add_local_users(config_a, {**USERS, "rita": ["reviewers"]})
    codes = AuthGateway(None, config_a, Clock(), secrets)  # type: ignore[arg-type]  # only for TOTP codes
    a, b = f"http://127.0.0.1:{ports['a']}", f"http://127.0.0.1:{ports['b']}"
    bucket = await S3Storage.open(s3_server.location(prefix=tmp_path.name))
    try:
        with deskgate_process("serve", paths["a"]) as node_a, deskgate_process("serve", paths["b"]), \
                deskgate_process("worker", paths["worker"]):
            await asyncio.gather(wait_ready(a), wait_ready(b))
            async with cookie_session() as alice, cookie_session() as bob, cookie_session() as rita:
                await sign_in(alice, a, codes, "alice")
                rita_token = await sign_in(rita, b, codes, "rita")

                # A session through node A, played through node B.
                desktop_a = await open_desktop(alice, a)
                typed = [KeyEvent(down, ord(char)) for char in MARKER for down in (True, False)]
                await desktop_a.send(*typed)  # journaled (record_input: full), encrypted
                first = await new_recording(bucket, set())
                await asyncio.sleep(1.5)  # long enough for a clip of a second
                await desktop_a.ws.close()
                found = await wait_for_recording(rita, b, first, "ready")
                assert found["user"] == "alice"
                written_by_a = recording_path(tmp_path / "spool-a", first).read_bytes()
                served_by_b = await (await rita.get(f"{b}/api/v1/recordings/{first}/journal")).read()
                assert served_by_b == written_by_a
                keyring = RecordingKeyring.load(tmp_path / "var" / "recording-keys", create=False)  # every node's
                stored = await bucket.read(f"{first}/video.mp4")
                video = await rita.get(f"{b}/api/v1/recordings/{first}/video")
                assert stored.startswith(EXPORT_MAGIC)  # encrypted at rest, decrypted when served
                assert video.status == 200 and await video.read() == decrypted(stored, keyring)
                typed_bytes = b"".join(event.encode() for event in typed[:4])
                for key in await bucket.list(f"{first}/"):  # nothing readable in the bucket: no user, no target,
                    raw = await bucket.read(key)  # nothing typed or pasted
                    for secret in (b"alice", b"desk-01", MARKER.encode(), typed_bytes):
                        assert secret not in raw, (key, secret)
                ranged = await rita.get(f"{b}/api/v1/recordings/{first}/video", headers={"Range": "bytes=4-11"})
                assert ranged.status == 206 and await ranged.read() == b"ftypisom"
                # A clip exported through node B is downloaded through node A (web sessions are in the database).
                exported = await rita.post(f"{b}/api/v1/recordings/{first}/clips", json={"from": 0, "to": 1},
                                           headers={"Origin": b, "X-CSRF-Token": rita_token})
                assert exported.status == 202, await exported.text()
                clip = (await exported.json())["clip"]["id"]
                async with asyncio.timeout(20):
                    while (await (await rita.get(f"{b}/api/v1/recordings/{first}/clips/{clip}")).json())[
                            "clip"]["state"] != "ready":
                        await asyncio.sleep(0.2)
                clip_video = await rita.get(f"{a}/api/v1/recordings/{first}/clips/{clip}/video")
                assert clip_video.status == 200
                assert await clip_video.read() == decrypted(await bucket.read(f"{first}/clip-{clip}.mp4"), keyring)

                # Node A dies mid-session: what reached the bucket is recovered by the worker beside node B.
                await sign_in(bob, a, codes, "bob", steps=1)
                desktop_b = await open_desktop(bob, a)
                second = await new_recording(bucket, {first}, segment_count=2)
                in_bucket = b"".join([await bucket.read(key) for key in await segments(bucket, second)])
                os.killpg(node_a.pid, signal.SIGKILL)
                node_a.wait(timeout=10)
                with contextlib.suppress(RFBClosed, aiohttp.ClientError):
                    await closed_with(desktop_b, within=5)
                recovered = await wait_for_recording(rita, b, second, "ready")
                assert recovered["end_reason"] == "gateway crashed"
                journal = await (await rita.get(f"{b}/api/v1/recordings/{second}/journal")).read()
                assert journal.startswith(in_bucket)
                assert await deskgate("recordings", "verify", second, "--config", str(paths["b"])) == 0
    finally:
        await bucket.close()


async def test_a_bucket_that_stops_answering_ends_live_and_new_sessions(
        tmp_path: Path, desktop: Any, own_s3_server: S3Server) -> None:  # noqa: F811
    deadline = 2.0
    config = load_config(write_config(tmp_path, {
        "policies": POLICIES["policies"],
        "storage": {**own_s3_server.config(), "segment_interval": 0.5, "upload_deadline": deadline},
    }, desktop.port))
    secrets = add_local_users(config, USERS)
    running = await start_gateway(config)
    gateway = AuthGateway(running, config, Clock(), secrets)
    try:
        async with cookie_session() as alice, cookie_session() as bob:
            await sign_in(alice, gateway.url, gateway, "alice")
            await sign_in(bob, gateway.url, gateway, "bob")
            live = await open_desktop(alice, gateway.url)
            own_s3_server.stop()
            closed = await closed_with(live, within=deadline + 3)
            assert closed.code == CloseCode.RECORDING_FAILED
            assert "could not be uploaded to object storage" in closed.reason
            loop = asyncio.get_running_loop()
            asked = loop.time()
            with pytest.raises(TargetUnavailable, match="recording storage is not available"):
                await open_desktop(bob, gateway.url)  # refused in the handshake, with the reason
            assert loop.time() - asked < deadline + 3
    finally:
        await running.stop()
