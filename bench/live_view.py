"""What watching costs: the gateway's CPU per live view and per wall tile, and the latency a live view adds.

``python -m bench.live_view [--sessions 4] [--samples 240] [--period 0.1]`` starts ``--sessions``
bare Xvnc desktops and the gateway in its own process (recording on, as in production), signs
in one operator per desktop (a noVNC-like client through ``/ws/vnc``: Tight, asks for the next
update after each one) and a supervisor who may watch them. Then, in three phases with the same
workload — every ``--period`` seconds one desktop in turn changes colour (``xsetroot -solid``,
a whole-screen update) — it reads the gateway process's CPU time (/proc: user + system):

- ``unwatched``: the operators only;
- ``live``: each session also watched by a live view (``/ws/live/{id}``, paced at 100 ms);
- ``tile``: each session watched as a wall tile (``?mode=tile``: one update per 2 s, JPEG quality 1).

The CPU a view adds is (phase − unwatched) / sessions, per second, and the phase's ratio to
unwatched. The latency a live view adds is, per colour change, the time the live viewer got
the new colour minus the time the operator's own client got it (both through the gateway):
median and p95 over every change of the ``live`` phase. CPU time, not wall time, is the
figure to trust on a shared machine; the latencies move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np
import yaml

from auth.local import LocalUserStore
from bench.client import WebSocketTransport, connect_websocket
from bench.deployment import BenchUser, add_users, http_session, log_in, write_config
from bench.processes import ManagedProcess, start_gateway_process
from gateway.demo import XvncDesktop
from gateway.rfb.framing import ProtocolFailed, RectangleReceived, ServerMessageFramer, UpdateEnd
from gateway.rfb.handshake import ClientHandshake, HandshakeComplete
from gateway.rfb.messages import RGBX8888, Encoding, FramebufferUpdateRequest, SetEncodings, SetPixelFormat
from gateway.rfb_io import drive
from recorder.decoders import DecoderState, decode_rectangle
from recorder.framebuffer import Framebuffer

WIDTH, HEIGHT = 640, 400
ENCODINGS = (Encoding.TIGHT, Encoding.ZRLE, Encoding.HEXTILE, Encoding.RAW, -32 + 6, -256 + 2)  # noVNC's


class Client:
    """A noVNC-like RFB client over a WebSocket: asks for the next update after each, and reports colour changes."""

    def __init__(self, transport: WebSocketTransport, on_colour: Callable[[int, float], None]) -> None:
        self.transport = transport
        self.on_colour = on_colour
        self.colour = -1

    async def run(self) -> None:
        transport = self.transport
        complete = await drive(ClientHandshake(), transport.receive, transport.send, 15.0, until=HandshakeComplete)
        init = complete.server_init
        framer = ServerMessageFramer(init.pixel_format, init.width, init.height)
        framer.set_pixel_format(RGBX8888)
        framer.set_encodings(ENCODINGS)
        state, framebuffer = DecoderState(RGBX8888), Framebuffer(init.width, init.height)
        request = FramebufferUpdateRequest(True, 0, 0, init.width, init.height).encode()
        await transport.send(SetPixelFormat(RGBX8888).encode() + SetEncodings(ENCODINGS).encode()
                             + FramebufferUpdateRequest(False, 0, 0, init.width, init.height).encode())
        framer.receive_data(complete.trailing_data)
        while True:
            for event in framer.events_received():
                if isinstance(event, RectangleReceived):
                    decode_rectangle(state, framebuffer, event.rect, event.payload)
                elif isinstance(event, UpdateEnd):
                    red, green, blue = (int(value) for value in framebuffer.pixels[HEIGHT // 2, WIDTH // 2])
                    colour = red << 16 | green << 8 | blue
                    if colour != self.colour:
                        self.colour = colour
                        self.on_colour(colour, time.perf_counter())
                    await transport.send(request)
                elif isinstance(event, ProtocolFailed):
                    raise event.error
            data = await transport.receive()
            if not data:
                return
            framer.receive_data(data)


def colour_of(sample: int) -> int:
    """A distinct colour per sample of the run (never the black of a fresh desktop)."""
    return 0x402000 + sample * 0x0107


async def set_colour(desktop: XvncDesktop, colour: int) -> None:
    process = await asyncio.create_subprocess_exec("xsetroot", "-solid", f"#{colour:06x}", env=desktop.env)
    await process.wait()


class Arrivals:
    """When each colour reached each client, by (client kind, desktop index)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, int], dict[int, float]] = {}

    def recorder(self, kind: str, index: int) -> Callable[[int, float], None]:
        seen = self.times.setdefault((kind, index), {})

        def record(colour: int, at: float) -> None:
            seen.setdefault(colour, at)
        return record


async def run_phase(desktops: list[XvncDesktop], gateway: ManagedProcess, samples: int, period: float,
                    first_sample: int) -> tuple[float, float, list[tuple[int, int, float]]]:
    """Change colours on schedule; returns the gateway's CPU seconds, the wall seconds, and the changes:
    (desktop, colour, when the X server had made it)."""
    changes = []
    cpu, wall = gateway.cpu_seconds(), time.perf_counter()
    start = time.perf_counter()
    for sample in range(first_sample, first_sample + samples):
        index = sample % len(desktops)
        colour = colour_of(sample)
        await set_colour(desktops[index], colour)  # xsetroot exits after XCloseDisplay, which waits for the server
        changes.append((index, colour, time.perf_counter()))
        await asyncio.sleep(max(0.0, start + (sample - first_sample + 1) * period - time.perf_counter()))
    await asyncio.sleep(2.5)  # the last tiles' updates
    return gateway.cpu_seconds() - cpu, time.perf_counter() - wall, changes


def percentile(values: list[float], fraction: float) -> float:
    return float(np.percentile(values, fraction * 100))


async def bench(sessions: int, samples: int, period: float, workdir: Path) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        desktops = [stack.enter_context(XvncDesktop(workdir / f"xvnc-{index}", width=WIDTH, height=HEIGHT,
                                                    window_manager=False, terminal=False))
                    for index in range(sessions)]
        config_path = write_config(workdir, {f"bench-{index:02d}": desktop.port for index, desktop in enumerate(desktops)})
        config = yaml.safe_load(config_path.read_text())
        config["policies"].append({"name": "supervisors", "groups": ["supervisors"], "from": ["127.0.0.0/8"],
                                   "targets": ["bench-00"], "watch": ["operators"]})
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        operators = add_users(workdir, sessions)
        supervisor = BenchUser("supervisor", operators[0].password, "")
        supervisor.totp_secret = LocalUserStore(workdir / "users.yaml").add_user(
            supervisor.name, supervisor.password, ["supervisors"])
        gateway, url = await start_gateway_process(config_path, workdir / "gateway.log")
        ws_url = url.replace("http", "ws", 1)
        arrivals = Arrivals()
        tasks: list[asyncio.Task[None]] = []
        https: list[aiohttp.ClientSession] = []
        try:
            for index, operator in enumerate(operators):
                http = http_session()
                https.append(http)
                await log_in(http, url, operator, await _code(operator))
                transport = await connect_websocket(http, f"{ws_url}/ws/vnc/bench-{index:02d}", origin=url)
                tasks.append(asyncio.create_task(Client(transport, arrivals.recorder("operator", index)).run()))
            watcher = http_session()
            https.append(watcher)
            await log_in(watcher, url, supervisor, await _code(supervisor))
            async with watcher.get(f"{url}/api/v1/sessions") as response:
                listed = (await response.json())["sessions"]
            ids = {int(entry["target"].rsplit("-", 1)[1]): entry["id"] for entry in listed}
            await asyncio.sleep(2.0)

            results: dict[str, float] = {}
            cpu_per_second: dict[str, float] = {}
            for phase_number, phase in enumerate(("unwatched", "live", "tile")):
                views: list[asyncio.Task[None]] = []
                for index in range(sessions) if phase != "unwatched" else ():
                    transport = await connect_websocket(watcher, f"{ws_url}/ws/live/{ids[index]}?mode={phase}",
                                                        origin=url)
                    views.append(asyncio.create_task(Client(transport, arrivals.recorder(phase, index)).run()))
                await asyncio.sleep(2.5)  # the views' first full updates, outside the measure
                cpu, wall, changes = await run_phase(desktops, gateway, samples, period, phase_number * samples + 1)
                cpu_per_second[phase] = cpu / wall
                if phase == "live":
                    pairs = [(arrivals.times[("operator", index)].get(colour), arrivals.times[("live", index)].get(colour),
                              changed) for index, colour, changed in changes]
                    whole = [(seen - changed, viewed - changed) for seen, viewed, changed in pairs
                             if seen is not None and viewed is not None]
                    results["latency_samples"] = len(whole)
                    for name, values in (("operator", [o for o, _ in whole]), ("viewer", [v for _, v in whole]),
                                         ("added", [v - o for o, v in whole])):
                        results[f"{name}_latency_p50_ms"] = statistics.median(values) * 1000
                        results[f"{name}_latency_p95_ms"] = percentile(values, 0.95) * 1000
                for view in views:
                    view.cancel()
                await asyncio.gather(*views, return_exceptions=True)
                await asyncio.sleep(1.0)
            base = cpu_per_second["unwatched"]
            results["unwatched_cpu_percent"] = base * 100
            for phase in ("live", "tile"):
                results[f"{phase}_cpu_percent"] = cpu_per_second[phase] * 100
                results[f"{phase}_cpu_percent_per_view"] = (cpu_per_second[phase] - base) * 100 / sessions
                results[f"{phase}_ratio"] = cpu_per_second[phase] / base if base else float("nan")
            return results
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for http in https:
                await http.close()
            await gateway.stop()


async def _code(user: BenchUser) -> str:
    while (code := user.next_code()) is None:
        await asyncio.sleep(1.0)
    return code


def report(results: dict[str, float], sessions: int, samples: int, period: float) -> str:
    return "\n".join([
        f"{sessions} sessions, {samples} colour changes per phase, one every {period * 1000:.0f} ms",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| gateway CPU, operators only | {results['unwatched_cpu_percent']:.1f} % of a core |",
        f"| gateway CPU, each session also watched live | {results['live_cpu_percent']:.1f} % "
        f"({results['live_ratio']:.2f}× unwatched) |",
        f"| CPU per live view | {results['live_cpu_percent_per_view']:.2f} % of a core |",
        f"| gateway CPU, each session also a wall tile | {results['tile_cpu_percent']:.1f} % "
        f"({results['tile_ratio']:.2f}× unwatched) |",
        f"| CPU per wall tile | {results['tile_cpu_percent_per_view']:.2f} % of a core |",
        f"| screen change → operator's client, p50 / p95 | {results['operator_latency_p50_ms']:.1f} / "
        f"{results['operator_latency_p95_ms']:.1f} ms |",
        f"| screen change → live viewer, p50 / p95 | {results['viewer_latency_p50_ms']:.1f} / "
        f"{results['viewer_latency_p95_ms']:.1f} ms |",
        f"| added latency (viewer − operator, per change), p50 / p95 | {results['added_latency_p50_ms']:.1f} / "
        f"{results['added_latency_p95_ms']:.1f} ms |",
        f"| latency samples | {results['latency_samples']:.0f} |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_view", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--samples", type=int, default=240, help="colour changes per phase (at least 200)")
    parser.add_argument("--period", type=float, default=0.1, help="seconds between two colour changes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskgate-live-bench-") as workdir:
        results = asyncio.run(bench(args.sessions, args.samples, args.period, Path(workdir)))
    print(report(results, args.sessions, args.samples, args.period))


if __name__ == "__main__":
    main()
