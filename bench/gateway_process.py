"""The gateway as its own process for the figures that read its CPU time and memory.

``python -m bench.gateway_process CONFIG [--no-record]`` does what ``deskgate serve --config
CONFIG`` does — :func:`gateway.web.app.start_gateway`, serve until SIGTERM or SIGINT — with
recording as the one switch, and prints ``{"url": ..., "recording_switch": ...}`` on stdout
once it listens (the config may ask for port 0). ``recording_switch`` is false while
``start_gateway`` has no ``record_sessions`` parameter: then ``--no-record`` changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import signal
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.logfmt import setup_logging
from gateway.web.app import start_gateway


def has_recording_switch() -> bool:
    """Whether this gateway can be started with recording off (``record_sessions``)."""
    return "record_sessions" in inspect.signature(start_gateway).parameters


async def serve(config_path: Path, record: bool) -> None:
    config = load_config(config_path)
    options: dict[str, Any] = {"record_sessions": record} if has_recording_switch() else {}
    gateway = await start_gateway(config, **options)
    print(json.dumps({"url": gateway.url, "recording_switch": has_recording_switch()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_process", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--no-record", action="store_true", help="serve without recording sessions")
    args = parser.parse_args()
    setup_logging("info")  # as `deskgate serve` does
    asyncio.run(serve(args.config, record=not args.no_record))


if __name__ == "__main__":
    main()
