"""The clipboard policy against a real Xvnc desktop, through the Extended Clipboard and classic cut text alike.

An RFB client plays the browser; ``xclip`` plays a program on the desktop that copies, or
pastes. For each mode (off, to-remote, to-local, both) each direction either carries the text
(Japanese over the Extended Clipboard, Latin-1 over classic cut text) or is dropped by the
gateway, counted in ``deskgate_clipboard_blocked_total``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.clipboard import (
    EXTENDED_CLIPBOARD_ENCODING,
    ClipboardAction,
    ClipboardFormat,
    ExtendedClientCutText,
    ExtendedServerCutText,
)
from gateway.rfb.framing import ServerMessageReceived
from gateway.rfb.messages import ClientCutText, Encoding, ServerCutText, SetEncodings
from gateway.web.keys import METRICS
from tests.conftest import GatewayUnderTest, start_test_gateway
from tests.functional.supervision_helpers import open_desktop
from tests.rfbclient import WebSocketRFBClient

pytestmark = pytest.mark.functional

JAPANESE = "顧客: 山田太郎 東京都"
LATIN1 = "Café Ñandú"
MODES = ("off", "to-remote", "to-local", "both")


def xclip(desktop: XvncDesktop, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["xclip", "-selection", "clipboard", *args], input=stdin, capture_output=True,
                            env={**os.environ, **desktop.env}, timeout=10)
    return result.stdout


def blocked(gateway: GatewayUnderTest, direction: str) -> float:
    value = gateway.gateway.app[METRICS].registry.get_sample_value(
        "deskgate_clipboard_blocked_total", {"direction": direction})
    return value or 0.0


def sessions_ended(gateway: GatewayUnderTest) -> float:
    """Sessions the gateway has ended: counted after the desktop's place was given back."""
    value = gateway.gateway.app[METRICS].registry.get_sample_value("deskgate_session_duration_seconds_count")
    return value or 0.0


async def wait_for(condition: object, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def server_clipboard(client: WebSocketRFBClient, kind: type, limit: float = 10.0) -> object:
    """The next ServerCutText or Extended Clipboard message of the target, skipping updates."""
    async with asyncio.timeout(limit):
        while True:
            event = await client.next_event(limit)
            if isinstance(event, ServerMessageReceived) and isinstance(event.message, kind):
                return event.message


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def open_session(gateway: GatewayUnderTest, http: aiohttp.ClientSession, extended: bool) -> WebSocketRFBClient:
    client = await open_desktop(http, gateway.url)
    encodings = (Encoding.RAW, EXTENDED_CLIPBOARD_ENCODING) if extended else (Encoding.RAW,)
    await client.send(SetEncodings(encodings))
    if extended:  # the target's caps always cross; ours answer them
        caps = await server_clipboard(client, ExtendedServerCutText)
        assert caps.action == ClipboardAction.CAPS  # type: ignore[attr-defined]
        actions = ClipboardAction.REQUEST | ClipboardAction.PEEK | ClipboardAction.NOTIFY | ClipboardAction.PROVIDE
        await client.send(ExtendedClientCutText.caps(actions, {ClipboardFormat.TEXT: 1 << 20}))  # type: ignore[arg-type]
    return client


@pytest.mark.parametrize("mode", MODES)
async def test_each_direction_is_carried_or_blocked_as_the_policy_says(
    tmp_path: Path, desktop: XvncDesktop, http_session: aiohttp.ClientSession, mode: str
) -> None:
    gateway = await start_test_gateway(tmp_path, desktop.port, clipboard=mode)
    try:
        assert (await gateway.login(http_session, "alice")).status == 200
        for number, extended in enumerate((True, False), start=1):  # one after the other (max_sessions: 1)
            client = await open_session(gateway, http_session, extended)
            try:
                await both_directions(gateway, client, desktop, mode, extended)
            finally:
                await client.ws.close()
                # aiohttp answers the browser's close at once; the desktop's place is free once the gateway has
                # ended the session (opening the next one before that is refused: already open, 4013).
                await wait_for(lambda ended=number: sessions_ended(gateway) >= ended)
    finally:
        await gateway.gateway.stop()


async def both_directions(gateway: GatewayUnderTest, client: WebSocketRFBClient, desktop: XvncDesktop, mode: str,
                          extended: bool) -> None:
    text = JAPANESE if extended else LATIN1
    before_local = blocked(gateway, "to_local")
    # Copied on the desktop: does it reach the browser?
    copier = subprocess.Popen(["xclip", "-quiet", "-selection", "clipboard"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **desktop.env, "LANG": "C.UTF-8"})
    assert copier.stdin is not None
    copier.stdin.write(text.encode("utf-8"))
    copier.stdin.close()
    try:
        if mode in ("to-local", "both"):
            if extended:
                provide = await server_clipboard(client, ExtendedServerCutText)
                if provide.action == ClipboardAction.NOTIFY:  # type: ignore[attr-defined]
                    await client.send(ExtendedClientCutText.announce(ClipboardAction.REQUEST))  # type: ignore[arg-type]
                    provide = await server_clipboard(client, ExtendedServerCutText)
                # (TigerVNC provides small text at once, unasked)
                assert provide.text == text  # type: ignore[attr-defined]
            else:
                cut = await server_clipboard(client, ServerCutText)
                assert cut.text == text.encode("latin-1")  # type: ignore[attr-defined]
        else:
            await wait_for(lambda: blocked(gateway, "to_local") > before_local)
    finally:
        copier.terminate()
        copier.wait(timeout=10)

    # Pasted from the browser: does it reach the desktop's clipboard?
    before = blocked(gateway, "to_remote")
    if extended:
        await client.send(ExtendedClientCutText.announce(ClipboardAction.NOTIFY))  # type: ignore[arg-type]
    else:
        await client.send(ClientCutText(text.encode("latin-1")))
    if mode in ("to-remote", "both"):
        pasted = asyncio.create_task(asyncio.to_thread(xclip, desktop, "-o"))
        if extended:  # the desktop asks for the data it was told of
            request = await server_clipboard(client, ExtendedServerCutText)
            while request.action == ClipboardAction.NOTIFY:  # type: ignore[attr-defined]  (its owner left)
                request = await server_clipboard(client, ExtendedServerCutText)
            assert request.action == ClipboardAction.REQUEST  # type: ignore[attr-defined]
            await client.send(ExtendedClientCutText.provide_text(text))  # type: ignore[arg-type]
        assert (await pasted).decode("utf-8") == text
    else:
        await wait_for(lambda: blocked(gateway, "to_remote") > before)
        assert xclip(desktop, "-o").decode("utf-8", "replace") != text
