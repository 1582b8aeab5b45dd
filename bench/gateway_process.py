"""The gateway as its own process, so that its CPU time and memory can be read from /proc.

``python -m bench.gateway_process CONFIG [--recording on|off]`` does what ``deskgate serve
--config CONFIG`` does — :func:`gateway.web.app.start_gateway` on uvloop, serve until SIGTERM
or SIGINT — and prints ``{"url": ...}`` on stdout once it listens (the config may ask for port 0).

Two substitutions, in this benchmark process only (the product has no switch for either):

- every session is journaled and sealed as in production, but the sealed journal is
  neither indexed nor rendered afterwards: both read the whole journal after the session,
  off the proxy, and would steal the core from the next run (rendering is its own figure);
- ``--recording off`` (the "recording on vs off" figure) replaces the session's
  :class:`~gateway.recording.SessionRecorder` with :class:`DiscardingRecorder`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, cast
from unittest import mock

import uvloop

from gateway.config import load_config
from gateway.logfmt import setup_logging
from gateway.policy import Policy
from gateway.recording import SealedRecording, SessionRecorder
from gateway.recording_service import RecordingService
from gateway.rfb.messages import ServerInit
from gateway.sessions import LiveSession
from gateway.web import recording_keys
from gateway.web.app import start_gateway, wait_for_stop_signal
from recorder.errors import RecordingWriteFailed


class DiscardingRecorder:
    """The :class:`~gateway.recording.SessionRecorder` interface, keeping nothing."""

    def __init__(self, path: Path, session_id: str) -> None:
        self.path = path
        self.session_id = session_id
        self.failure: asyncio.Future[RecordingWriteFailed] = asyncio.get_running_loop().create_future()

    def server_data(self, data: bytes) -> None:
        pass

    def client_data(self, data: bytes) -> None:
        pass

    def input_counted(self, kind: str, count: int = 1) -> None:
        pass

    def event(self, type: str, **fields: Any) -> None:
        pass

    async def backpressure(self) -> None:
        pass

    async def close(self, reason: str) -> SealedRecording:
        return SealedRecording(self.path, self.session_id, 0, reason, sealed=False, failure=None)


class UnindexedRecordingService(RecordingService):
    """Journals and seals every session; leaves indexing and rendering to other figures."""

    async def finished(self, live: LiveSession, sealed: SealedRecording) -> None:
        pass


class DiscardingRecordingService(UnindexedRecordingService):
    """Gives every session a :class:`DiscardingRecorder`: the proxy without its journal."""

    async def start(self, live: LiveSession, server_init: ServerInit, policy: Policy) -> SessionRecorder:
        live.recording_id = None
        # Duck-typed: the desktop session calls only what DiscardingRecorder has.
        return cast(SessionRecorder, DiscardingRecorder(self.settings.root / "discarded", live.id))


async def serve(config_path: Path, recording: bool) -> None:
    service = UnindexedRecordingService if recording else DiscardingRecordingService
    with mock.patch.object(recording_keys, "RecordingService", service):  # built when the app starts
        gateway = await start_gateway(load_config(config_path))
    print(json.dumps({"url": gateway.url}), flush=True)
    try:
        await wait_for_stop_signal()
    finally:
        await gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_process", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--recording", choices=["on", "off"], default="on")
    args = parser.parse_args()
    setup_logging("warning")  # `deskgate serve` logs at info: one line per session would be noise here
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the loop `deskgate serve` runs on
        runner.run(serve(args.config, recording=args.recording == "on"))


if __name__ == "__main__":
    main()
