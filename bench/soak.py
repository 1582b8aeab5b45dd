"""Soak: many concurrent sessions through ``deskgate serve`` to real Xvnc desktops, for minutes.

``python -m bench.soak [--sessions 100] [--minutes 10] [--desktops 10]`` (not part of
``make test``; ``make soak`` runs the defaults). It starts TigerVNC desktops with an xterm
each, and ``deskgate serve`` — the real entry point, on free loopback ports — proxying
them, with one operator account per session. Each session logs in (password and TOTP),
opens its desktop over the WebSocket as noVNC does, asks for updates after every update
and types into the shared xterm now and then, so the desktops keep drawing. Meanwhile
other operators sign in and out every few seconds.

At the end every session is closed and the run checks, for each one, that the SHA-256
of the bytes the client received after the handshake equals that of the target's bytes
in its sealed recording; that the gateway logged no error; and it reports the gateway's
memory (PSS) per session and the sign-in latencies. It exits 1 if any check fails.

Live viewing by a supervisor and a configuration reload join the soak when the
gateway has them (issues 10 and 11).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pyotp
import yaml

from auth.totp import STEP_SECONDS
from bench.client import WebSocketTransport, connect_websocket
from bench.deployment import GROUP, BenchUser, add_users, http_session
from bench.processes import free_port, start_process, wait_for_port
from bench.report import percentile
from gateway.demo import XvncDesktop
from gateway.rfb.framing import ProtocolFailed, ServerMessageFramer, UpdateEnd
from gateway.rfb.handshake import ClientHandshake, HandshakeComplete
from gateway.rfb.messages import Encoding, FramebufferUpdateRequest, KeyEvent, PointerEvent, SetEncodings
from gateway.rfb_io import drive
from recorder.journal import JOURNAL_SUFFIX, JournalReader, RecordKind
from recorder.keyring import RecordingKeyring, install

DESKTOP_SIZE = (1024, 768)
ENCODINGS = (Encoding.TIGHT, Encoding.ZRLE, Encoding.HEXTILE, Encoding.COPY_RECT, Encoding.RAW,
             Encoding.DESKTOP_SIZE, Encoding.LAST_RECT)
TYPING_INTERVAL = 3.0  # seconds between one session's bursts of typing
SIGN_IN_INTERVAL = 5.0  # seconds between the extra operators' sign-ins
DRAIN_QUIET = 2.0  # seconds without data after which a closing session has received everything
ARRIVAL_INTERVAL = 0.1  # seconds between two operators opening their sessions
HANDSHAKE_TIMEOUT = 30.0
SEAL_TIMEOUT = 120.0
KEYSYM_RETURN = 0xFF0D
XTERM_SPOT = (200, 150)  # inside the demo desktop's xterm (100x30 characters at +20+20)


@dataclass(slots=True)
class SoakSession:
    """One operator's desktop session, and what its client received."""

    user: BenchUser
    target: str
    received: hashlib._Hash = field(default_factory=hashlib.sha256)
    received_bytes: int = 0
    updates: int = 0
    busy_answers: int = 0  # "busy, try again" answers to its sign-in
    error: str | None = None


def write_config(workdir: Path, http_port: int, metrics_port: int, desktops: dict[str, XvncDesktop]) -> Path:
    """``deskgate serve``'s configuration: the documented keys, loopback listeners, recording on."""
    config = {
        "listen": {"http": f"127.0.0.1:{http_port}", "metrics": f"127.0.0.1:{metrics_port}"},
        "network": {"allow": ["127.0.0.0/8"]},
        "auth": {"local": {"users_file": str(workdir / "users.yaml")}, "totp": {"required": True}},
        "storage": {"recordings": str(workdir / "recordings"), "database": f"sqlite:///{workdir / 'deskgate.db'}"},
        # Several operators share each desktop here (sessions / desktops): a target holds any number.
        "targets": {name: {"protocol": "vnc", "host": "127.0.0.1", "port": desktop.port,
                           "password_file": str(desktop.password_file), "max_sessions": None}
                    for name, desktop in desktops.items()},
        "policies": [{"name": "operators", "groups": [GROUP], "from": ["127.0.0.0/8"], "targets": ["soak-*"],
                      "clipboard": "off", "idle_timeout": "10m"}],
    }
    path = workdir / "deskgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def sign_in(http: aiohttp.ClientSession, url: str, user: BenchUser) -> int:
    """Sign in as a person would: with a fresh code, again after ``Retry-After`` when the gateway is busy.

    Returns how many times the gateway said it was busy first.
    """
    busy = 0
    while True:
        code = _fresh_code(user)
        if code is None:  # this step's code and the next one were used: wait
            await asyncio.sleep(1.0)
            continue
        body = {"username": user.name, "password": user.password, "totp": code}
        async with http.post(f"{url}/api/v1/login", json=body) as response:
            if response.status == 200:
                return busy
            if response.status not in (429, 503):
                raise PermissionError(f"sign-in of {user.name} refused: {response.status} {await response.text()}")
            busy += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "5")))


def _fresh_code(user: BenchUser) -> str | None:
    """An unused code of the current time step or the next: it stays valid the longest while the gateway is busy."""
    step = max(user.last_step + 1, int(time.time()) // STEP_SECONDS)
    if step > int(time.time()) // STEP_SECONDS + 1:
        return None
    user.last_step = step
    return pyotp.TOTP(user.totp_secret, interval=STEP_SECONDS).at(step * STEP_SECONDS)


async def run_session(session: SoakSession, http: aiohttp.ClientSession, url: str, until: float) -> None:
    """Sign in, open the desktop, follow its updates and type now and then until ``until``."""
    try:
        session.busy_answers = await sign_in(http, url, session.user)
        transport = await connect_websocket(http, f"{url.replace('http', 'ws', 1)}/ws/vnc/{session.target}",
                                            origin=url)
    except Exception as exc:  # reported per session at the end
        session.error = f"{type(exc).__name__}: {exc}"
        return
    try:
        complete = await drive(ClientHandshake(password=None), transport.receive, transport.send, HANDSHAKE_TIMEOUT,
                               until=HandshakeComplete)
        init = complete.server_init
        framer = ServerMessageFramer(init.pixel_format, init.width, init.height, encodings=ENCODINGS)
        await transport.send(SetEncodings(ENCODINGS).encode()
                             + FramebufferUpdateRequest(False, 0, 0, init.width, init.height).encode())
        typing = asyncio.create_task(_type_now_and_then(transport, until))
        try:
            await _follow(session, transport, framer, complete.trailing_data, init.width, init.height, until)
        finally:
            typing.cancel()
    except Exception as exc:  # reported per session at the end
        session.error = f"{type(exc).__name__}: {exc}"
    finally:
        await transport.close()


async def _follow(session: SoakSession, transport: WebSocketTransport, framer: ServerMessageFramer, data: bytes,
                  width: int, height: int, until: float) -> None:
    """Hash every byte received; after each whole update, ask for the next one (incremental).

    At ``until`` it stops asking and reads on until the gateway has been quiet for
    :data:`DRAIN_QUIET` seconds, so that nothing the gateway forwarded (and journaled) is
    left unread when the session closes.
    """
    while True:
        session.received.update(data)
        session.received_bytes += len(data)
        framer.receive_data(data)
        for event in framer.events_received():
            if isinstance(event, ProtocolFailed):
                raise event.error
            if isinstance(event, UpdateEnd):
                session.updates += 1
                if time.monotonic() < until:
                    await transport.send(FramebufferUpdateRequest(True, 0, 0, width, height).encode())
        try:
            async with asyncio.timeout(max(until - time.monotonic(), 0.0) + DRAIN_QUIET):
                data = await transport.receive()
        except TimeoutError:
            return
        if not data:
            raise ConnectionError("the gateway closed the session")


async def _type_now_and_then(transport: WebSocketTransport, until: float) -> None:
    """``ls`` and Return into the desktop's xterm every few seconds: the screen keeps changing."""
    x, y = XTERM_SPOT  # a click gives the xterm the focus
    await transport.send(PointerEvent(1, x, y).encode() + PointerEvent(0, x, y).encode())
    while time.monotonic() < until:
        await asyncio.sleep(TYPING_INTERVAL)
        for keysym in (ord("l"), ord("s"), KEYSYM_RETURN):
            await transport.send(KeyEvent(True, keysym).encode() + KeyEvent(False, keysym).encode())


async def sign_ins(users: list[BenchUser], url: str, until: float, latencies: list[float]) -> None:
    """Other operators sign in (and out) every few seconds while the sessions run."""
    for user in itertools.cycle(users):
        if time.monotonic() >= until:
            return
        async with http_session() as http:
            started = time.perf_counter()
            await sign_in(http, url, user)
            latencies.append(time.perf_counter() - started)
            async with http.post(f"{url}/api/v1/logout") as response:
                response.release()
        await asyncio.sleep(SIGN_IN_INTERVAL)


def recorded_target_bytes(recordings: Path) -> dict[str, tuple[str, int]]:
    """Per user: SHA-256 and length of the target's bytes in their (one) sealed recording."""
    found: dict[str, tuple[str, int]] = {}
    install(RecordingKeyring.load(recordings.parent / "var" / "recording-keys", create=False))  # encrypted at rest
    for path in recordings.rglob(f"*{JOURNAL_SUFFIX}"):
        reader = JournalReader(path)
        digest, size = hashlib.sha256(), 0
        for record in reader:
            if record.kind == RecordKind.SERVER_DATA:
                digest.update(record.payload)
                size += len(record.payload)
        if reader.end is None:
            raise RuntimeError(f"{path} has no END record: the session was not finished")
        found[str(reader.header["user"])] = (digest.hexdigest(), size)
    return found


async def wait_for_seals(recordings: Path, count: int) -> None:
    async with asyncio.timeout(SEAL_TIMEOUT):
        while len(list(recordings.rglob(f"*{JOURNAL_SUFFIX}.seal"))) < count:
            await asyncio.sleep(0.5)


async def soak(workdir: Path, sessions: int, minutes: float, desktop_count: int) -> dict[str, object]:
    async with contextlib.AsyncExitStack() as stack:
        desktops = {}
        for index in range(desktop_count):
            desktop = XvncDesktop(workdir / f"desktop-{index}", width=DESKTOP_SIZE[0], height=DESKTOP_SIZE[1],
                                  password=f"soak-pass-{index}")
            await asyncio.to_thread(stack.enter_context, desktop)
            desktops[f"soak-{index:02d}"] = desktop
        http_port, metrics_port = free_port(), free_port()
        config = write_config(workdir, http_port, metrics_port, desktops)
        operators = add_users(workdir, sessions + 8)
        log_path = workdir / "gateway.log"
        gateway, _ = await start_process("deskgate serve", [sys.executable, "-m", "gateway.cli", "serve",
                                                            "--config", str(config)], log_path)
        stack.push_async_callback(gateway.stop)
        await wait_for_port(gateway, http_port)
        url = f"http://127.0.0.1:{http_port}"
        idle_memory = gateway.memory_bytes()

        until = time.monotonic() + minutes * 60
        targets = list(desktops)
        runs = [SoakSession(user, targets[index % len(targets)]) for index, user in enumerate(operators[:sessions])]
        latencies: list[float] = []
        clients = [await stack.enter_async_context(http_session()) for _ in runs]
        print(f"soak: {sessions} sessions to {desktop_count} desktops for {minutes:g} min", flush=True)
        tasks = []
        for run, http in zip(runs, clients):  # a shift starting: operators arrive over a few seconds
            tasks.append(asyncio.create_task(run_session(run, http, url, until)))
            await asyncio.sleep(ARRIVAL_INTERVAL)
        extra = asyncio.create_task(sign_ins(operators[sessions:], url, until, latencies))
        await asyncio.sleep(min(30.0, minutes * 30))  # all open and drawing
        busy_memory = gateway.memory_bytes()
        await asyncio.gather(*tasks)
        extra.cancel()
        sign_in_error = None
        try:
            await extra
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # reported with the other failures
            sign_in_error = f"{type(exc).__name__}: {exc}"
        gateway.check_alive()
        await wait_for_seals(workdir / "recordings", sessions)
        recorded = recorded_target_bytes(workdir / "recordings")
        log_text = log_path.read_text(errors="replace")

    mismatched = [run.user.name for run in runs if run.error is None
                  and recorded.get(run.user.name) != (run.received.hexdigest(), run.received_bytes)]
    failed = {run.user.name: run.error for run in runs if run.error is not None}
    if sign_in_error is not None:
        failed["(sign-ins meanwhile)"] = sign_in_error
    errors = [line for line in log_text.splitlines() if " level=error " in f" {line} " or "Traceback" in line]
    return {
        "sessions": sessions, "desktops": desktop_count, "minutes": minutes,
        "received_mb": round(sum(run.received_bytes for run in runs) / 1e6, 1),
        "updates": sum(run.updates for run in runs),
        "recordings_matching": sessions - len(mismatched) - len(failed),
        "mismatched": mismatched, "failed_sessions": failed, "log_errors": errors[:20],
        "pss_per_session_mb": round((busy_memory - idle_memory) / sessions / 1e6, 2),
        "busy_answers_at_arrival": sum(run.busy_answers for run in runs),
        "sign_ins": len(latencies),
        "sign_in_p50_ms": round(percentile([s * 1000 for s in latencies], 50), 1) if latencies else None,
        "sign_in_p99_ms": round(percentile([s * 1000 for s in latencies], 99), 1) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--desktops", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskgate-soak-") as tmp:
        result = asyncio.run(soak(Path(tmp), args.sessions, args.minutes, args.desktops))
    print(json.dumps(result, indent=2))
    ok = not result["mismatched"] and not result["failed_sessions"] and not result["log_errors"]
    print("soak: OK" if ok else "soak: FAILED", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
