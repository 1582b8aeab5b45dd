"""The gateway as its own process, so that its CPU time and memory can be read from /proc.

``python -m bench.gateway_process CONFIG [--recording on|off]`` does what ``deskgate serve
--config CONFIG`` does — :func:`gateway.web.app.start_gateway` on uvloop, serve until SIGTERM
or SIGINT — and prints ``{"url": ...}`` on stdout once it listens (the config may ask for port 0).

The gateway's recordings are this benchmark's own, handed to ``start_gateway`` (the product
has no switch for either):

- ``--recording on``: :func:`unindexed_recordings` journals and seals every session as in
  production, but neither indexes nor renders the sealed journal afterwards: both read the
  whole journal after the session, off the proxy, and would steal the core from the next run
  (rendering is its own figure);
- ``--recording off`` (the "recording on vs off" figure): :func:`discarding_recordings`
  gives every session a journal that keeps nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvloop

from gateway.config import load_config
from gateway.journals import RecordingContext, RecordingsFactory, SessionJournal
from gateway.logfmt import setup_logging
from gateway.policy import Policy
from gateway.recording_service import RecordingService, RecordingSettings
from gateway.rfb.input_presses import InputKind
from gateway.rfb.messages import ServerInit
from gateway.sessions import LiveSession
from gateway.web.app import freeze_start_up_heap, start_gateway, wait_for_stop_signal
from recorder.errors import RecordingWriteFailed
from recorder.records import TerminalSize


class DiscardingJournal:
    """A :class:`~gateway.journals.SessionJournal` that keeps nothing and never fails."""

    def __init__(self, recording_id: str) -> None:
        self.recording_id = recording_id
        self.failure: asyncio.Future[RecordingWriteFailed] = asyncio.get_running_loop().create_future()

    def server_data(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def client_data(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def input_counted(self, kind: InputKind, count: int = 1) -> None:
        pass

    def event(self, type: str, **fields: Any) -> None:
        pass

    async def backpressure(self) -> None:
        pass


class DiscardingRecordings:
    """Gives every session a :class:`DiscardingJournal`: the proxy without its journal."""

    async def start(self, live: LiveSession, screen: ServerInit | TerminalSize, policy: Policy) -> DiscardingJournal:
        return DiscardingJournal(f"discarded-{live.id}")

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        pass


class UnindexedRecordingService(RecordingService):
    """Journals and seals every session; leaves indexing and rendering to other figures."""

    def sealed(self, journal: Path) -> None:
        pass


@asynccontextmanager
async def discarding_recordings(context: RecordingContext) -> AsyncIterator[DiscardingRecordings]:
    yield DiscardingRecordings()


@asynccontextmanager
async def unindexed_recordings(context: RecordingContext) -> AsyncIterator[UnindexedRecordingService]:
    service = UnindexedRecordingService(RecordingSettings.from_config(context.config), context.metrics,
                                        context.index, context.audit, render_pool=None)
    try:
        yield service
    finally:
        await service.close()


async def serve(config_path: Path, recording: bool) -> None:
    recordings: RecordingsFactory = unindexed_recordings if recording else discarding_recordings
    gateway = await start_gateway(load_config(config_path), recordings=recordings)
    freeze_start_up_heap()  # as `deskgate serve` does
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
