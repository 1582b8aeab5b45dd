"""``deskgate connect URL --listen 127.0.0.1:5900``: a native VNC viewer on this machine opens a desktop.

Signs in to the gateway (``POST /api/v1/login``: user name, password and TOTP code, prompted, or
``--user``, ``--totp`` and the password on standard input), then bridges a loopback TCP port to
``/ws/vnc/{target}`` over WS or WSS (TLS verified; ``--ca-file`` for a private CA) with
:mod:`gateway.vnc_bridge`. The session is the same as in a browser: policy, recording, idle and
the supervisors' end apply; when the gateway ends it, the command prints why and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from gateway.errors import GatewayError
from gateway.vnc_bridge import BridgeEnded, check_loopback, run_bridge


class ConnectError(GatewayError):
    """``deskgate connect`` cannot sign in or open the desktop."""


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    connect_cmd = commands.add_parser("connect", help="bridge a local port to a desktop, for a native VNC viewer")
    connect_cmd.add_argument("url", help="the desktop's page, e.g. https://gateway.example/desktop/desk-01")
    connect_cmd.add_argument("--listen", default="127.0.0.1:5900", metavar="HOST:PORT",
                             help="loopback address the viewer connects to (default: 127.0.0.1:5900)")
    connect_cmd.add_argument("--user", help="user name (prompted when absent)")
    connect_cmd.add_argument("--totp", metavar="CODE", help="the TOTP code (prompted when absent)")
    connect_cmd.add_argument("--ca-file", type=Path, help="CA certificates that vouch for the gateway's TLS certificate")
    connect_cmd.set_defaults(handler=run)


def desktop_url(url: str) -> tuple[str, str]:
    """The gateway's base URL and the target of a desktop page's URL (…/desktop/NAME)."""
    parts = urlsplit(url)
    base_path, marker, target = parts.path.rstrip("/").rpartition("/desktop/")
    if parts.scheme not in ("http", "https") or not parts.netloc or not marker or not target or "/" in target:
        raise ConnectError(f"{url} is not a desktop's address; copy it from the portal, "
                           "e.g. https://gateway.example/desktop/desk-01")
    return f"{parts.scheme}://{parts.netloc}{base_path}", target


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConnectError(f"--listen {text}: give HOST:PORT, e.g. 127.0.0.1:5900")
    try:
        check_loopback(host)
    except ValueError as exc:
        raise ConnectError(str(exc)) from exc
    return host, int(port)


def _ask(prompt: str, secret: bool) -> str:
    """A line from the person (a prompt on a terminal) or from standard input (a script)."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt) if secret else input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise ConnectError(f"standard input ended before the {prompt.rstrip(': ').lower()}")
    return line.rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    base, target = desktop_url(args.url)
    host, port = listen_address(args.listen)
    user = args.user or _ask("User name: ", secret=False)
    password = _ask("Password: ", secret=True)
    code = args.totp or _ask("TOTP code: ", secret=True)
    context = ssl.create_default_context(cafile=str(args.ca_file) if args.ca_file else None)
    ended = asyncio.run(_connect(base, target, host, port, user, password, code, context))
    print(f"deskgate connect: the session ended ({ended.code}): {ended.reason}", file=sys.stderr)
    return 0 if ended.code in (1000, 4005) else 1


async def _connect(base: str, target: str, host: str, port: int, user: str, password: str, code: str,
                   context: ssl.SSLContext) -> BridgeEnded:
    cookie = await _login(base, user, password, code, context)
    ws_url = f"{'wss' if base.startswith('https') else 'ws'}{base[base.index(':'):]}/ws/vnc/{target}"
    origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"

    async def open_session() -> ClientConnection:
        return await connect(ws_url, subprotocols=[Subprotocol("binary")], origin=Origin(origin),
                             additional_headers={"Cookie": cookie}, ssl=context if ws_url.startswith("wss") else None,
                             max_size=None, compression=None)

    def listening(bound_host: str, bound_port: int) -> None:
        print(f"deskgate connect: {target} is at {bound_host}:{bound_port}; point your VNC viewer there "
              "(one viewer at a time)", flush=True)

    return await run_bridge(host, port, open_session, listening)


async def _login(base: str, user: str, password: str, code: str, context: ssl.SSLContext) -> str:
    """Sign in; returns the session cookie as a Cookie header."""
    jar = aiohttp.CookieJar(unsafe=True)  # the gateway may be addressed by IP
    async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=context)) as http:
        try:
            response = await http.post(f"{base}/api/v1/login",
                                       json={"username": user, "password": password, "totp": code})
        except aiohttp.ClientError as exc:
            raise ConnectError(f"cannot reach the gateway at {base}: {exc}") from exc
        if response.status != 200:
            try:
                detail = (await response.json()).get("error", response.reason)
            except (aiohttp.ContentTypeError, ValueError):
                detail = response.reason
            raise ConnectError(f"sign-in refused ({response.status}): {detail}")
        cookies = jar.filter_cookies(response.url)
        return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
