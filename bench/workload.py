"""Record the workloads: scripted sessions on a real Xvnc, captured as a viewer sees them.

Two workloads (:data:`WORKLOADS`): ``office`` and ``callcenter`` (:mod:`bench.callcenter`, an
operator working calls in a CRM form in Chromium). For the office one, one Xvnc desktop runs a
scripted office session (xdotool typing in a terminal and in vi,
scrolling a long document in ``less``, opening and moving windows, a cycling background
colour and a fast-refreshing ``top``), while three capturing viewers, one per encoding
(ZRLE, Tight, Hextile), watch it at once — the desktop is shared — each asking for
incremental updates after every update like noVNC does. Each viewer's server messages
are saved with their times by :func:`bench.capture_file.write_capture`.

Run it alone with ``python -m bench.workload [--workload office|callcenter] [--out DIR]``;
``make bench`` runs it when a capture is missing. A capture's ``script`` names the workload
and its version, and for the call-center workload carries the script's measured mix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.callcenter import CallCenterScript
from bench.capture_file import Capture, CapturedMessage, write_capture
from gateway.demo import XvncDesktop
from gateway.rfb.framing import (
    ProtocolFailed,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateEnd,
)
from gateway.rfb.handshake import ClientHandshake, HandshakeComplete
from gateway.rfb.messages import (
    RGBX8888,
    Encoding,
    FramebufferUpdateRequest,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb_io import drive, over_streams

CAPTURE_DIR = Path(__file__).resolve().parent / "captures"
WORKLOAD_VERSIONS = {"office": "office-v1", "callcenter": "callcenter-v1"}
WIDTH, HEIGHT = 1280, 800
ENCODINGS: dict[str, int] = {"zrle": Encoding.ZRLE, "tight": Encoding.TIGHT, "hextile": Encoding.HEXTILE}
#: What noVNC sends after its preferred encoding (quality 6, compression 2 are its defaults),
#: less what the gateway cannot frame (Fence, ContinuousUpdates, ExtendedClipboard, ...).
NOVNC_PSEUDO_ENCODINGS = (
    Encoding.COPY_RECT, -32 + 6, -256 + 2, Encoding.DESKTOP_SIZE, Encoding.LAST_RECT,
    Encoding.EXTENDED_DESKTOP_SIZE, Encoding.DESKTOP_NAME, Encoding.CURSOR,
)  # fmt: skip
_READ_SIZE = 1 << 16
_X_CLIENT_TIMEOUT = 10.0


def capture_path(encoding: str, directory: Path = CAPTURE_DIR, workload: str = "office") -> Path:
    return directory / f"{workload}-{encoding}.rfbcap.xz"


class CapturingViewer:
    """A viewer on Xvnc that records every server message after the handshake, with its time."""

    def __init__(self, encoding: str, port: int, password: str, script: str) -> None:
        self.encoding = encoding
        self.script = script
        self._port = port
        self._password = password
        self.encodings = (ENCODINGS[encoding], *NOVNC_PSEUDO_ENCODINGS)
        self.messages: list[CapturedMessage] = []
        self.server_init: ServerInit | None = None

    async def run(self, started: asyncio.Event, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        try:
            init, trailing = await self._handshake(reader, writer)
            self.server_init = init
            framer = ServerMessageFramer(RGBX8888, init.width, init.height, encodings=self.encodings)
            writer.write(SetPixelFormat(RGBX8888).encode() + SetEncodings(self.encodings).encode())
            full = FramebufferUpdateRequest(False, 0, 0, init.width, init.height)
            incremental = FramebufferUpdateRequest(True, 0, 0, init.width, init.height).encode()
            writer.write(full.encode())
            origin = time.monotonic()
            started.set()
            pending = bytearray()
            data = trailing
            while True:
                framer.receive_data(data)
                for event in framer.events_received():
                    if isinstance(event, ProtocolFailed):
                        raise event.error
                    pending += event.raw
                    if isinstance(event, UpdateEnd | ServerMessageReceived):
                        self.messages.append(CapturedMessage(time.monotonic() - origin, bytes(pending)))
                        pending.clear()
                    if isinstance(event, UpdateEnd):
                        writer.write(incremental)
                read = asyncio.ensure_future(reader.read(_READ_SIZE))
                stopping = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    return
                stopping.cancel()
                data = read.result()
                if not data:
                    raise ConnectionError(f"Xvnc closed the {self.encoding} viewer's connection")
        finally:
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[ServerInit, bytes]:
        handshake = ClientHandshake(password=self._password.encode())
        complete = await drive(handshake, *over_streams(reader, writer, _READ_SIZE), 10, until=HandshakeComplete)
        return complete.server_init, complete.trailing_data

    def capture(self) -> Capture:
        assert self.server_init is not None
        return Capture(self.encoding, self.encodings, self.server_init, tuple(self.messages), self.script)


class OfficeScript:
    """About 40 s of office work on an X display, driven by xdotool; every step is bounded in time."""

    def __init__(self, desktop: XvncDesktop, workdir: Path) -> None:
        self._env = {**os.environ, **desktop.env}
        self._workdir = workdir
        self._spawned: list[subprocess.Popen[bytes]] = []
        self.mix: dict[str, float] = {}

    def prepare(self) -> None:
        """Nothing to start before the capture: the demo desktop's terminal is there."""

    def close(self) -> None:
        self._stop_spawned()

    def run(self) -> None:
        try:
            self._settle()
            self._type_in_terminal()
            self._edit_in_vi()
            self._scroll_document()
            self._open_and_move_windows()
            self._changing_image()
            self._wander_with_pointer()
            self._close_windows()
        finally:
            self._stop_spawned()

    # -- steps

    def _settle(self) -> None:
        self._x("xsetroot", "-solid", "#3a6ea5")
        time.sleep(1.5)

    def _type_in_terminal(self) -> None:
        self._x("xdotool", "search", "--name", "deskgate demo", "windowactivate", "--sync")
        for line in ("ls -l /usr/share/doc | head -25", "date; uptime", "df -h | head -8",
                     "echo 'ticket 4711: customer called about invoice 2024-118, resolved'"):
            self._type(line + "\n", delay_ms=45)
            time.sleep(0.4)

    def _edit_in_vi(self) -> None:
        notes = self._workdir / "notes.txt"
        editor = self._open_terminal("90x30+360+140", "vi", str(notes))
        self._x("xdotool", "windowactivate", "--sync", str(editor))
        time.sleep(0.5)
        self._type("i", delay_ms=50)
        self._type("Call summary\n\nThe customer reports that the last invoice lists a service twice. "
                   "Checked the contract: one line is a duplicate.\nAction: credit note, follow-up on Friday.\n",
                   delay_ms=40)
        self._key("Escape")
        self._type(":wq\n", delay_ms=80)
        time.sleep(0.5)

    def _scroll_document(self) -> None:
        pager = self._open_terminal("100x45+120+30", "less", "/usr/share/common-licenses/GPL-3")
        self._x("xdotool", "windowactivate", "--sync", str(pager))
        time.sleep(0.5)
        for _ in range(14):
            self._key("space")
            time.sleep(0.45)
        for _ in range(20):
            self._key("Down")
            time.sleep(0.08)
        self._key("q")
        time.sleep(0.5)

    def _open_and_move_windows(self) -> None:
        self._spawn("xclock", "-update", "1", "-geometry", "160x160+1080+40")
        self._spawn("xlogo", "-geometry", "200x200+60+520")
        logo = self._find_window("--name", "^xlogo$")  # Xaw clients do not set _NET_WM_PID
        time.sleep(1.0)
        for step in range(30):
            self._x("xdotool", "windowmove", str(logo), str(60 + step * 25), str(520 - step * 12))
            time.sleep(0.08)
        self._x("xdotool", "search", "--name", "deskgate demo", "windowactivate", "--sync")
        time.sleep(0.8)
        self._x("xdotool", "windowactivate", "--sync", str(logo))
        time.sleep(0.8)

    def _changing_image(self) -> None:
        for colour in ("#3a6ea5", "#a53a3a", "#3aa55a", "#a5a53a", "#6e3aa5", "#3aa5a5", "#202020", "#3a6ea5"):
            self._x("xsetroot", "-solid", colour)
            time.sleep(0.4)
        top = self._open_terminal("100x35+160+80", "top", "-d", "0.2")
        self._x("xdotool", "windowactivate", "--sync", str(top))
        time.sleep(6.0)
        self._key("q")

    def _wander_with_pointer(self) -> None:
        for step in range(40):
            self._x("xdotool", "mousemove", str(100 + step * 28), str(100 + (step * 37) % 600))
            time.sleep(0.05)

    def _close_windows(self) -> None:
        self._stop_spawned()
        time.sleep(2.0)

    # -- helpers

    def _x(self, *command: str) -> None:
        subprocess.run(command, env=self._env, check=True, timeout=_X_CLIENT_TIMEOUT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _type(self, text: str, delay_ms: int) -> None:
        subprocess.run(["xdotool", "type", "--delay", str(delay_ms), "--", text], env=self._env, check=True,
                       timeout=_X_CLIENT_TIMEOUT + len(text) * delay_ms / 1000, stdout=subprocess.DEVNULL)

    def _key(self, key: str) -> None:
        self._x("xdotool", "key", key)

    def _spawn(self, *command: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self._spawned.append(process)
        return process

    def _open_terminal(self, geometry: str, *command: str) -> int:
        xterm = self._spawn("xterm", "-geometry", geometry, "-fa", "DejaVu Sans Mono", "-fs", "10", "-e", *command)
        return self._find_window("--pid", str(xterm.pid))

    def _find_window(self, *criteria: str) -> int:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", *criteria],
                               env=self._env, check=True, timeout=_X_CLIENT_TIMEOUT, capture_output=True)
        return int(found.stdout.split()[0])

    def _stop_spawned(self) -> None:
        for process in reversed(self._spawned):
            _terminate(process)
        self._spawned.clear()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def _desktop(workdir: Path, password: str) -> Iterator[XvncDesktop]:
    desktop = XvncDesktop(workdir, width=WIDTH, height=HEIGHT, password=password)
    desktop.start()
    try:
        yield desktop
    finally:
        desktop.stop()


async def capture_workload(workload: str, out_dir: Path = CAPTURE_DIR) -> dict[str, Path]:
    """Run ``workload``'s script once on a fresh Xvnc and write one capture per encoding; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    password = "bench-vnc"
    with tempfile.TemporaryDirectory(prefix="deskgate-capture-") as tmp, _desktop(Path(tmp), password) as desktop:
        script = CallCenterScript(desktop, Path(tmp)) if workload == "callcenter" else OfficeScript(desktop, Path(tmp))
        try:
            await asyncio.to_thread(script.prepare)
            version = WORKLOAD_VERSIONS[workload]
            viewers = [CapturingViewer(name, desktop.port, password, version) for name in ENCODINGS]
            stop = asyncio.Event()
            started = [asyncio.Event() for _ in viewers]
            async with asyncio.TaskGroup() as tasks:
                for viewer, event in zip(viewers, started):
                    tasks.create_task(viewer.run(event, stop))
                try:
                    async with asyncio.timeout(15):
                        await asyncio.gather(*(event.wait() for event in started))
                    async with asyncio.timeout(300):
                        await asyncio.to_thread(script.run)
                finally:
                    stop.set()
        finally:
            await asyncio.to_thread(script.close)
        if script.mix:
            version = json.dumps({"workload": version, "mix": {key: round(value, 2)
                                                                for key, value in sorted(script.mix.items())}})
        paths = {}
        for viewer in viewers:
            viewer.script = version
            path = capture_path(viewer.encoding, out_dir, workload)
            write_capture(path, viewer.capture())
            paths[viewer.encoding] = path
        return paths


async def capture_office_workload(out_dir: Path = CAPTURE_DIR) -> dict[str, Path]:
    """The office workload's captures (see :func:`capture_workload`)."""
    return await capture_workload("office", out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CAPTURE_DIR,
                        help=f"where to write captures (default {CAPTURE_DIR})")
    parser.add_argument("--workload", choices=sorted(WORKLOAD_VERSIONS), default="office")
    args = parser.parse_args()
    for encoding, path in asyncio.run(capture_workload(args.workload, args.out)).items():
        print(f"{encoding}: {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
