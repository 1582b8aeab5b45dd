"""``python -m bench.terminal``: terminal sessions through the gateway against a direct asyncssh client.

Both paths reach the same real OpenSSH ``sshd`` (:mod:`tests.sshd_server`) with a PTY of
the same size. Through the gateway, the client is a terminal WebSocket
(``/ws/ssh/shell-01``) to an in-process gateway that records the session (journal, fsync,
seal) as in production; directly, the client is an asyncssh connection.

- throughput: ``cat`` of a file of ``--megabytes`` MiB of printable text, until a marker after it;
- echo latency: in ``cat`` (the PTY echoes each key), one key sent, its echo awaited, ``--keys`` times.

CPU time is this process's (gateway and client share it through the gateway): the difference
between the two rows is what the gateway costs. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncssh

from tests.functional.auth_helpers import PASSWORD, cookie_session
from tests.functional.terminal_helpers import open_terminal, terminal_gateway
from tests.sshd_server import SshdServer

MARKER = b"BENCH-DONE-42"
#: The shell computes the marker, so the echoed command line never matches it.
MARKER_COMMAND = b"echo BENCH-DONE-$((6*7))\n"


@dataclass(frozen=True, slots=True)
class Figures:
    path: str
    megabytes_per_second: float
    cpu_seconds_per_megabyte: float
    echo_median_ms: float
    echo_p95_ms: float


Send = Callable[[bytes], Awaitable[None]]
Receive = Callable[[], Awaitable[bytes]]


async def read_until(receive: Receive, needle: bytes, tail: bytes = b"") -> tuple[int, bytes]:
    """Bytes read until ``needle`` appears, and what follows it in the last read."""
    total, window = 0, tail
    while needle not in window:
        data = await receive()
        total += len(data)
        window = (window + data)[-(len(needle) + len(data)):]
    return total, window.split(needle, 1)[1]


async def measure(path: str, send: Send, receive: Receive, big_file: Path, keys: int) -> Figures:
    await send(b"stty -echoctl\n" + MARKER_COMMAND)
    await read_until(receive, MARKER)
    size = big_file.stat().st_size
    wall, cpu = time.perf_counter(), time.process_time()
    await send(f"cat {big_file}; ".encode() + MARKER_COMMAND)
    received, _ = await read_until(receive, MARKER)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert received >= size, f"{path}: {received} bytes for a {size}-byte file"
    megabytes = size / (1 << 20)
    await send(b"cat\n")
    await asyncio.sleep(0.5)  # cat is reading its terminal
    delays = []
    for _ in range(keys):
        started = time.perf_counter()
        await send(b"x")
        await read_until(receive, b"x")
        delays.append((time.perf_counter() - started) * 1000)
    await send(b"\x03")
    delays.sort()
    return Figures(path, megabytes / wall, cpu / megabytes, statistics.median(delays),
                   delays[int(len(delays) * 0.95) - 1])


async def direct(sshd: SshdServer, big_file: Path, keys: int) -> Figures:
    async with asyncssh.connect("127.0.0.1", sshd.port, username=sshd.username, client_keys=[str(sshd.client_key)],
                                known_hosts=str(sshd.known_hosts), config=[], agent_path=None) as connection:
        process = await connection.create_process(term_type="xterm-256color", term_size=(100, 30), encoding=None,
                                                  stderr=asyncssh.STDOUT)

        async def send(data: bytes) -> None:
            process.stdin.write(data)
            await process.stdin.drain()

        async def receive() -> bytes:
            return bytes(await process.stdout.read(64 * 1024))

        return await measure("direct asyncssh", send, receive, big_file, keys)


async def through_gateway(sshd: SshdServer, workdir: Path, big_file: Path, keys: int) -> Figures:
    async with terminal_gateway(sshd, workdir) as gateway, cookie_session() as http:
        response = await gateway.login(http, "alice", PASSWORD)
        assert response.status == 200, await response.text()
        ws = await open_terminal(http, gateway, "shell-01")

        async def send(data: bytes) -> None:
            await ws.send_bytes(data)

        async def receive() -> bytes:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"the terminal closed: {message.data} {message.extra}")
            return bytes(message.data)

        figures = await measure("through the gateway (recorded)", send, receive, big_file, keys)
        await ws.close()
        return figures


async def run(megabytes: int, keys: int) -> list[Figures]:
    with tempfile.TemporaryDirectory(prefix="deskgate-bench-terminal-") as directory:
        root = Path(directory)
        big_file = root / "big.txt"
        line_bytes = 76 * 3 // 4
        with big_file.open("wb") as out:  # printable lines: what a log or a listing looks like
            for _ in range(megabytes * (1 << 20) // 77):
                out.write(base64.b64encode(os.urandom(line_bytes)) + b"\n")
        with SshdServer(root / "sshd") as sshd:
            return [await direct(sshd, big_file, keys), await through_gateway(sshd, root / "gateway", big_file, keys)]


def table(rows: list[Figures]) -> str:
    lines = ["| path | cat throughput (MiB/s) | CPU s per MiB (this process) | key echo median (ms) | "
             "key echo p95 (ms) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {row.path} | {row.megabytes_per_second:.1f} | {row.cpu_seconds_per_megabyte:.3f} | "
              f"{row.echo_median_ms:.2f} | {row.echo_p95_ms:.2f} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="size of the file cat prints (MiB)")
    parser.add_argument("--keys", type=int, default=300, help="keystrokes whose echo is timed")
    options = parser.parse_args()
    print(table(asyncio.run(run(options.megabytes, options.keys))))


if __name__ == "__main__":
    main()
