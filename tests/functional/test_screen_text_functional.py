"""What was on screen, searchable; personal data flagged, never kept in clear — through the whole gateway.

A small real Xvnc desktop shows, during a recorded session, an English phrase, a Japanese name and a
Luhn-valid card number in an xterm (Noto CJK); the operator also types another card number. After the
session the recording is indexed, its ``ocr`` job reads the changed regions with Tesseract in a worker
process, and:

- the recordings search by text finds the recording, with the moment the text appeared (±2 s), for the
  English phrase and for the Japanese name (a substring, as written with or without a space);
- the card number shown is a ``card`` finding with its region (where the xterm showed it) and time; the
  typed one is journaled only as a count (a Luhn-valid run, ``deskgate_keys_withheld_total``), so only its
  echo on screen is a finding; ``deskgate_pii_detected_total{kind="card"}`` counts both;
- the video is rendered again once they are found, with the card number blacked out while it was shown;
- neither number is anywhere in the database file's bytes or in a log line, not even after a supervisor
  searched for one (the audit keeps the search as ``[card]``);
- the lines read off the screen are sealed: the phrases are in no table but the audit of the searches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.logfmt import KeyValueFormatter
from gateway.rfb.framing import UpdateEnd
from gateway.rfb.messages import Encoding, FramebufferUpdateRequest, KeyEvent, PointerEvent
from gateway.web.keys import RECORDING_INDEX
from recorder.pii import PiiFinding
from tests.conftest import DESKTOP_PASSWORD, GatewayUnderTest, start_test_gateway
from tests.functional.test_desktop_functional import open_desktop
from tests.recorder.test_render import read_video
from tests.rfbclient import WebSocketRFBClient

pytestmark = [pytest.mark.functional, pytest.mark.timeout(240)]

SHOWN_CARD, TYPED_CARD = "4111 1111 1111 1111", "5555555555554444"
# a card-like run on its own (not digits inside a hex digest, which may hold 16 in a row by chance)
CARD_RUN = re.compile(r"(?<![0-9A-Za-z])\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}(?![0-9A-Za-z])")
SCREEN = (
    "customer 4711 ordered\\n"
    "山田太郎 様\\n"
    f"card {SHOWN_CARD}\\n"
)


@pytest.fixture(scope="module")
def small_desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvncDesktop]:
    """A 480x200 white desktop with nothing on it: the test draws its own window."""
    with XvncDesktop(tmp_path_factory.mktemp("xvnc-ocr"), width=480, height=200, password=DESKTOP_PASSWORD,
                     window_manager=False, terminal=False) as xvnc:
        subprocess.run(["xsetroot", "-solid", "#ffffff"], env=xvnc.env, check=True, timeout=10)
        yield xvnc


@pytest.fixture
async def gateway(tmp_path: Path, small_desktop: XvncDesktop) -> AsyncIterator[GatewayUnderTest]:
    under_test = await start_test_gateway(tmp_path, small_desktop.port)
    try:
        yield under_test
    finally:
        await under_test.gateway.stop()


async def keep_viewing(client: WebSocketRFBClient, width: int, height: int) -> None:
    """Ask for updates as a browser does, one after the other, until cancelled."""
    while True:
        await client.send(FramebufferUpdateRequest(True, 0, 0, width, height))
        while not isinstance(await client.next_event(timeout=30), UpdateEnd):
            pass


async def type_text(client: WebSocketRFBClient, text: str) -> None:
    for char in text:
        await client.send(KeyEvent(True, ord(char)), KeyEvent(False, ord(char)))


async def search(http: aiohttp.ClientSession, gateway: GatewayUnderTest, text: str) -> list[dict[str, object]]:
    response = await http.get(f"{gateway.url}/api/v1/recordings", params={"text": text})
    assert response.status == 200, await response.text()
    recordings: list[dict[str, object]] = (await response.json())["recordings"]
    return recordings


async def test_text_on_screen_is_found_at_its_moment_and_card_numbers_are_kept_only_as_findings(
    gateway: GatewayUnderTest, small_desktop: XvncDesktop, http: aiohttp.ClientSession, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    assert (await gateway.login(http, "alice")).status == 200
    client = await open_desktop(http, gateway)
    init = await client.handshake()
    await client.capture([Encoding.ZRLE])
    viewing = asyncio.create_task(keep_viewing(client, init.width, init.height))
    xterm = None
    try:
        await asyncio.sleep(1.5)  # a blank stretch first: the text's moment is not the session's start
        shown_at = time.time()
        xterm = subprocess.Popen(
            ["xterm", "-fa", "Noto Sans Mono CJK JP", "-fs", "12", "-geometry", "40x4+8+8", "-bg", "white",
             "-fg", "black", "-u8", "-e", "sh", "-c", f"printf '{SCREEN}'; exec sleep 120"],
            env={**small_desktop.env, "LANG": "C.UTF-8"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(3.0)
        await client.send(PointerEvent(0, 60, 40))  # over the terminal: it has the keyboard, and echoes
        await type_text(client, TYPED_CARD)
        await asyncio.sleep(0.5)
    finally:
        viewing.cancel()
        await asyncio.gather(viewing, return_exceptions=True)
        await client.ws.close()
        if xterm is not None:
            xterm.kill()
            xterm.wait(timeout=10)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as supervisor:
        assert (await gateway.login(supervisor, "sam")).status == 200  # recordings: all
        recording_id, shown = await check_search_and_findings(gateway, supervisor, shown_at)
        await check_video_masks_the_card(gateway, supervisor, recording_id, shown, caplog, tmp_path)
    for database in tmp_path.glob("deskgate.db*"):
        content = database.read_bytes()
        for number in (SHOWN_CARD, SHOWN_CARD.replace(" ", ""), TYPED_CARD):
            assert number.encode() not in content, database
    # the lines read off the screen are sealed: the phrases are only in the audit of the searches for them
    assert clear_text_tables(tmp_path / "deskgate.db", ("customer 4711", "山田")) == {"audit_events"}
    formatter = KeyValueFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any("screen text read" in line for line in lines)
    assert not [line for line in lines if CARD_RUN.search(line)]
    for number in (SHOWN_CARD.replace(" ", ""), TYPED_CARD):
        assert not [line for line in lines if number in line.replace(" ", "").replace("-", "")]


def clear_text_tables(database: Path, texts: tuple[str, ...]) -> set[str]:
    """The tables of the SQLite ``database`` holding one of ``texts`` in clear in some column."""
    found = set()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                if any(isinstance(value, str) and text in value for value in row for text in texts):
                    found.add(table)
    return found


async def check_search_and_findings(gateway: GatewayUnderTest, http: aiohttp.ClientSession,
                                    shown_at: float) -> tuple[str, PiiFinding]:
    """The searches and findings; the recording's id and the shown card's finding."""

    async with asyncio.timeout(150):  # indexed, then read by OCR in a worker process
        while not (found := await search(http, gateway, "customer 4711")):
            await asyncio.sleep(0.5)
    [recording] = found
    started = datetime.fromisoformat(str(recording["started"]).replace("Z", "+00:00")).timestamp()
    expected = shown_at - started
    moments = recording["moments"]
    assert isinstance(moments, list) and moments, recording
    assert any(abs(moment["t"] - expected) <= 2.0 for moment in moments), (expected, moments)
    assert "customer 4711" in moments[0]["text"]
    x, y, width, height = moments[0]["box"]
    assert 0 <= x < 200 and 0 <= y < 60 and width > 50 and height > 5

    for name in ("山田", "山田 太郎", "山田太郎"):
        [japanese] = await search(http, gateway, name)
        assert japanese["id"] == recording["id"]
        assert any(abs(moment["t"] - expected) <= 2.0 for moment in japanese["moments"]), japanese["moments"]
    assert await search(http, gateway, "佐藤") == []

    findings = await gateway.gateway.app[RECORDING_INDEX].texts.findings(str(recording["id"]))
    assert {finding.kind for finding in findings} == {"card"}, findings
    # the typed number never reached the journal (a Luhn-valid run is kept as a count): no typed finding
    assert [finding for finding in findings if finding.region is None] == []
    shown, echoed = sorted(findings, key=lambda finding: (finding.region or (0, 0, 0, 0))[1])  # the echo: lower
    assert shown.region is not None and echoed.region is not None
    card_x, card_y, card_width, card_height = shown.region
    assert 40 <= card_x <= 120 and 40 <= card_y <= 90 and 200 <= card_width <= 380 and card_height <= 30
    assert shown.start <= expected + 2.0 and shown.end >= expected + 2.0
    assert echoed.region[1] > card_y and len(echoed.digest) == 64 and echoed.digest != shown.digest
    assert await search(http, gateway, "[card]")  # the line is kept, its number replaced
    assert await search(http, gateway, SHOWN_CARD) == []  # and the search (audited) does not write it down
    metrics = await (await http.get(gateway.gateway.metrics_url)).text()
    assert 'deskgate_pii_detected_total{kind="card"} 2.0' in metrics
    assert 'deskgate_keys_withheld_total{why="card_number"} 16.0' in metrics
    return str(recording["id"]), shown


async def check_video_masks_the_card(gateway: GatewayUnderTest, http: aiohttp.ClientSession, recording_id: str,
                                     shown: PiiFinding, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Once the screen text found the card, the video is rendered again with the card's region blacked out."""
    async with asyncio.timeout(60):
        while not any(record.getMessage() == "recording rendered" and record.__dict__["ctx"]["masks_found"] > 0
                      for record in caplog.records):
            await asyncio.sleep(0.2)
    response = await http.get(f"{gateway.url}/api/v1/recordings/{recording_id}/video")
    assert response.status == 200, await response.text()
    video = tmp_path / "masked.mp4"
    video.write_bytes(await response.read())
    assert shown.region is not None
    x, y, width, height = shown.region
    decoded = read_video(video)
    while_shown = [frame for t, frame in zip(decoded.times, decoded.frames, strict=True)
                   if shown.start + 0.3 <= t < shown.end - 0.3]
    assert while_shown, (shown, decoded.times)
    for frame in while_shown:  # black where the card number was shown (white paper between its digits unmasked)
        assert int(frame[y + 2:y + height - 2, x + 2:x + width - 2].max()) <= 24
    assert int(while_shown[-1][150:, :].min()) >= 200  # below the terminal the desktop is as it was: white

