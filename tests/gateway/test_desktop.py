"""DesktopSession: the I/O around the proxy, between a WebSocket browser and a scripted VNC target on loopback.

The journal is an in-memory SessionJournal, so each test reads exactly what the session
asked to journal, how it ended, and what the target received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from base.metrics import Metrics
from gateway.desktop import BROWSER_SLICE, DesktopSession, TargetEndpoint, Timeouts
from gateway.journals import SessionJournal
from gateway.notices import IdleWarning, Notice
from gateway.policy import Clipboard, InputRecording, Policy
from gateway.rfb.browser_limits import BrowserLimits
from gateway.rfb.errors import TargetUnavailable
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived, RectangleReceived, UpdateBegin, UpdateEnd
from gateway.rfb.handshake import (
    ClientVersionReceived,
    HandshakeComplete,
    ServerHandshake,
)
from gateway.rfb.input_presses import InputKind
from gateway.rfb.messages import (
    RGBX8888,
    ClientCutText,
    ClientMessage,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    Rectangle,
    ServerCutText,
    ServerInit,
    SetEncodings,
)
from gateway.rfb_io import drive, over_streams
from gateway.session_watch import CloseCode, SessionEnded
from gateway.sessions import EndRequest, LiveSession, SessionControl
from recorder.errors import RecordingWriteFailed
from tests.rfb.helpers import update
from tests.rfbclient import RFBClosed, WebSocketRFBClient

WIDTH, HEIGHT = 64, 48
POLICY = Policy("test", ("operators",), (), ("desk-*",))

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


def test_every_close_code_carries_its_outcome_label() -> None:
    assert {code: code.outcome for code in CloseCode} == {
        1000: "closed",
        1008: "protocol_error",
        1009: "message_too_big",
        1011: "error",
        4004: "target_unavailable",
        4005: "target_closed",
        4008: "idle_timeout",
        4009: "max_session",
        4010: "terminated",
        4011: "recording_failed",
        4012: "input_flood",
        4013: "in_use",
        4014: "host_key_refused",
        4015: "draining",
        4016: "disk_full",
        4020: "access_changed",
        4021: "outside_hours",
    }
    assert CloseCode.IDLE_TIMEOUT.outcome == "idle_timeout"
    assert isinstance(CloseCode.TERMINATED, int) and int(CloseCode.TERMINATED) == 4010


# ---------------------------------------------------------------- the harness


class MemoryJournal:
    """A SessionJournal keeping every call in order."""

    recording_id = "rec-1"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.failure: asyncio.Future[RecordingWriteFailed] = asyncio.get_running_loop().create_future()

    def server_data(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("server", bytes(data)))

    def client_data(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("client", bytes(data)))

    def input_counted(self, kind: InputKind, count: int = 1) -> None:
        self.calls.append(("count", kind, count))

    def event(self, type: str, **fields: Any) -> None:
        self.calls.append(("event", type, fields))

    async def backpressure(self) -> None:
        pass

    def data(self, kind: str) -> bytes:
        return b"".join(call[1] for call in self.calls if call[0] == kind)

    def events(self) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == "event"]

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for call in self.calls:
            if call[0] == "count":
                totals[call[1]] = totals.get(call[1], 0) + call[2]
        return totals


class GatedJournal(MemoryJournal):
    """A journal whose buffer is full until the test opens its gate (a slow recording disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def backpressure(self) -> None:
        await self.gate.wait()


class MemoryRecordings:
    """SessionRecordings handing out one MemoryJournal (or ``journal``'s kind) and keeping the end reason."""

    def __init__(self, journal: type[MemoryJournal] = MemoryJournal) -> None:
        self.journal_type = journal
        self.journal: MemoryJournal | None = None
        self.end_reason: str | None = None

    async def start(self, live: LiveSession, server_init: ServerInit, policy: Policy) -> SessionJournal:
        self.journal = self.journal_type()
        return self.journal

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        self.end_reason = reason


class ScriptedTarget:
    """A VNC target (security None): after the browser's first update request it sends ``script``, then
    closes if ``close`` says so; it keeps every message it receives."""

    def __init__(self, script: bytes = b"", *, close: bool = False) -> None:
        self.script = script
        self.close = close
        self.received: list[ClientMessage] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            handshake = ServerHandshake()
            handshake.initiate()
            receive, send = over_streams(reader, writer)
            await drive(handshake, receive, send, 5, until=ClientVersionReceived)
            handshake.accept(ServerInit(WIDTH, HEIGHT, RGBX8888, b"<b>untrusted</b>"))
            complete = await drive(handshake, receive, send, 5, until=HandshakeComplete)
            framer = ClientMessageFramer()
            data = complete.trailing_data
            while True:
                framer.receive_data(data)
                for event in framer.events_received():
                    assert isinstance(event, ClientMessageReceived)
                    self.received.append(event.message)
                    if isinstance(event.message, FramebufferUpdateRequest) and self.script:
                        await send(self.script)
                        self.script = b""
                        if self.close:
                            return
                if not (data := await reader.read(4096)):
                    return
        finally:
            writer.close()


class PostedNotices:
    """The notice board, as a session sees it: what it posted, for whom."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Notice]] = []

    def post_nowait(self, username: str, notice: Notice) -> None:
        self.posted.append((username, notice))


@dataclass
class Harness:
    target: ScriptedTarget
    policy: Policy = POLICY
    timeouts: Timeouts = Timeouts(connect=5, handshake=5)
    metrics: Metrics = field(default_factory=Metrics)
    recordings: MemoryRecordings = field(default_factory=MemoryRecordings)
    notices: PostedNotices = field(default_factory=lambda: PostedNotices())
    browser_limits: BrowserLimits = BrowserLimits()
    browser_slice: int = BROWSER_SLICE
    controls: list[SessionControl] = field(default_factory=list)
    ended: asyncio.Future[SessionEnded] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def journal(self) -> MemoryJournal:
        assert self.recordings.journal is not None
        return self.recordings.journal

    def app(self) -> web.Application:
        async def desktop(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(protocols=("binary",))
            await ws.prepare(request)
            live = LiveSession("s-1", "vnc", "alice", "127.0.0.1", "desk-t", "web-1", frozenset({"operators"}))
            control = SessionControl(live)
            self.controls.append(control)
            endpoint = TargetEndpoint("desk-t", "127.0.0.1", self.target.port, None)
            session = DesktopSession(ws, endpoint, self.policy, live, control, self.metrics, self.recordings,
                                     self.notices, self.timeouts, self.browser_limits, self.browser_slice)
            self.ended.set_result(await session.run())
            return ws

        app = web.Application()
        app.router.add_get("/ws", desktop)
        return app

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(f"deskgate_{name}", labels)


Start = Callable[..., Awaitable[tuple[Harness, WebSocketRFBClient]]]


@pytest.fixture
async def start(aiohttp_client: ClientFactory) -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(target: ScriptedTarget, **options: Any) -> tuple[Harness, WebSocketRFBClient]:
        server = await asyncio.start_server(target.serve, "127.0.0.1", 0)
        servers.append(server)
        target.port = server.sockets[0].getsockname()[1]
        harness = Harness(target, **options)
        client = await aiohttp_client(harness.app())
        return harness, WebSocketRFBClient(await client.ws_connect("/ws", protocols=("binary",)))

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def closed(harness: Harness, client: WebSocketRFBClient) -> RFBClosed:
    """Read until the gateway closes the WebSocket, and until the session has finished its journal."""
    with pytest.raises(RFBClosed) as closing:
        while True:
            await client.next_event()
    ended = await asyncio.wait_for(asyncio.shield(harness.ended), 5)
    assert (closing.value.code, closing.value.reason) == (ended.code, ended.reason)
    return closing.value


# ---------------------------------------------------------------- the policy, through the I/O


SCRIPT = (
    ServerCutText(b"remote").encode()
    + update((Rectangle(0, 0, 80, 60, Encoding.DESKTOP_SIZE), b""))
    + update((Rectangle(70, 50, 1, 1, Encoding.RAW), bytes(4)))
)


async def test_the_policy_is_applied_and_journaled_and_the_target_closing_ends_the_session(start: Start) -> None:
    policy = replace(POLICY, clipboard=Clipboard.OFF, record_input=InputRecording.COUNTS)
    harness, client = await start(ScriptedTarget(SCRIPT, close=True), policy=policy)
    init = await client.handshake()
    assert (init.width, init.height, init.name) == (WIDTH, HEIGHT, b"desk-t")  # the admin's name, not the target's
    encodings = SetEncodings((Encoding.RAW, Encoding.DESKTOP_SIZE, -309))  # -309: not frameable
    request = FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT)
    await client.send(encodings, KeyEvent(True, 0x61), KeyEvent(False, 0x61), PointerEvent(1, 3, 4),
                      ClientCutText(b"secret"), request)
    ended = await closed(harness, client)
    assert (ended.code, ended.reason) == (CloseCode.TARGET_CLOSED, "desktop desk-t closed the session")

    allowed = SetEncodings((Encoding.RAW, Encoding.DESKTOP_SIZE))
    assert harness.target.received == [allowed, KeyEvent(True, 0x61), KeyEvent(False, 0x61), PointerEvent(1, 3, 4),
                                       request]
    journal = harness.journal
    assert journal.data("client") == allowed.encode() + request.encode()  # the input only counted
    assert journal.counts() == {"keys": 1, "clicks": 1, "pointer": 1}
    assert journal.data("server") == SCRIPT[len(ServerCutText(b"remote").encode()):]
    assert journal.events() == [
        ("clipboard_blocked", {"direction": "to_remote", "length": 6}),
        ("clipboard_blocked", {"direction": "to_local", "length": 6}),
        ("resize", {"width": 80, "height": 60}),
    ]
    assert harness.recordings.end_reason == "desktop desk-t closed the session"
    assert harness.metric("clipboard_blocked_total", direction="to_remote") == 1
    assert harness.metric("clipboard_blocked_total", direction="to_local") == 1
    forwarded = len(allowed.encode()) + 16 + 6 + len(request.encode())
    assert harness.metric("proxy_bytes_total", protocol="vnc", direction="to_target") == forwarded
    assert harness.metric("proxy_bytes_total", protocol="vnc", direction="to_client") == len(journal.data("server"))


async def test_with_the_clipboard_allowed_and_full_input_everything_is_forwarded_and_journaled(start: Start) -> None:
    policy = replace(POLICY, clipboard=Clipboard.BOTH, record_input=InputRecording.FULL)
    harness, client = await start(ScriptedTarget(SCRIPT), policy=policy)
    await client.handshake()
    messages = (SetEncodings((Encoding.RAW, Encoding.DESKTOP_SIZE)), KeyEvent(True, 0x61), ClientCutText(b"secret"),
                FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT))
    await client.send(*messages)
    for _ in range(6):  # the cut text, then two updates of three events each, less the cut text's one
        await client.next_event()
    await client.ws.close()
    ended = await asyncio.wait_for(asyncio.shield(harness.ended), 5)
    assert (ended.code, ended.reason) == (CloseCode.NORMAL, "the browser closed the session")
    assert harness.target.received == list(messages)
    assert harness.journal.data("client") == b"".join(message.encode() for message in messages)
    assert harness.journal.data("server") == SCRIPT
    assert harness.journal.counts() == {}
    assert harness.journal.events() == [("resize", {"width": 80, "height": 60})]


# ---------------------------------------------------------------- how sessions end


async def test_a_browser_that_breaks_the_protocol_ends_only_its_session(start: Start) -> None:
    harness, client = await start(ScriptedTarget())
    await client.handshake()
    await client.ws.send_bytes(b"\x63")
    ended = await closed(harness, client)
    assert ended.code == CloseCode.PROTOCOL_ERROR and ended.reason.startswith("the browser broke the protocol")
    assert harness.recordings.end_reason == ended.reason


async def test_a_target_that_breaks_the_protocol_ends_the_session(start: Start) -> None:
    harness, client = await start(ScriptedTarget(b"\x09", close=False))
    await client.handshake()
    await client.send(FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT))
    ended = await closed(harness, client)
    assert ended.code == CloseCode.PROTOCOL_ERROR
    assert ended.reason.startswith("desktop desk-t sent data the gateway cannot forward: server message type 9")


async def test_a_terminated_session_ends_with_the_reason(start: Start) -> None:
    harness, client = await start(ScriptedTarget())
    await client.handshake()
    harness.controls[0].terminate("you signed out")
    ended = await closed(harness, client)
    assert (ended.code, ended.reason) == (CloseCode.TERMINATED, "you signed out")
    assert harness.journal.events() == []


async def test_a_session_someone_ended_says_who_and_why_in_its_close_and_its_journal(start: Start) -> None:
    harness, client = await start(ScriptedTarget())
    await client.handshake()
    reason = "お客様対応の研修のため、この画面を終了します。" * 3  # longer than a close frame holds
    assert harness.controls[0].end(EndRequest("sam", reason))
    assert not harness.controls[0].end(EndRequest("root", "second"))  # the first request wins
    with pytest.raises(RFBClosed) as closed_by:
        await client.capture([Encoding.RAW])
    ended = await harness.ended
    assert (ended.code, ended.reason) == (CloseCode.TERMINATED, f"ended by sam: {reason}")
    assert closed_by.value.code == CloseCode.TERMINATED
    assert f"ended by sam: {reason}".startswith(closed_by.value.reason)  # cut whole characters only
    assert 100 < len(closed_by.value.reason.encode()) <= 123
    assert harness.journal.events() == [("ended_by", {"by": "sam", "reason": reason})]


async def test_a_failed_journal_ends_the_session_fail_closed(start: Start) -> None:
    harness, client = await start(ScriptedTarget())
    await client.handshake()
    harness.journal.failure.set_result(RecordingWriteFailed("disk_full", "the recording disk is full"))
    ended = await closed(harness, client)
    assert (ended.code, ended.reason) == (CloseCode.RECORDING_FAILED, "the recording disk is full")


async def test_an_idle_session_is_warned_then_ended(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), policy=replace(POLICY, idle_timeout=0.5))
    await client.handshake()
    ended = await closed(harness, client)
    assert ended.code == CloseCode.IDLE_TIMEOUT and "no input" in ended.reason
    (warning,) = harness.journal.events()
    assert warning[0] == "idle_warning" and 0 < warning[1]["seconds_left"] <= 0.1
    assert harness.metric("idle_logouts_total") == 1
    # The operator's page hears it too, with the deadline on the gateway's clock.
    ((user, notice),) = harness.notices.posted
    assert user == "alice" and isinstance(notice, IdleWarning) and notice.target == "desk-t"
    assert time.time() - 1 < notice.deadline_epoch <= time.time()


async def test_input_keeps_a_session_alive(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), policy=replace(POLICY, idle_timeout=0.6, max_session=1.5))
    await client.handshake()
    for step in range(5):
        await asyncio.sleep(0.25)
        await client.send(PointerEvent(0, step, 1))  # a move: a pointer event that changes nothing is no input
    ended = await closed(harness, client)
    assert ended.code == CloseCode.MAX_SESSION  # never idle for 0.6 s, so the maximum length ends it


async def test_pointer_events_in_place_and_key_repeats_do_not_keep_a_session_alive(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), policy=replace(POLICY, idle_timeout=0.6, max_session=5.0))
    await client.handshake()
    await client.send(KeyEvent(True, 0x61))
    for _ in range(5):
        await asyncio.sleep(0.25)
        await client.send(PointerEvent(0, 1, 1))
        await client.send(KeyEvent(True, 0x61))  # auto-repeat of a held key
    ended = await closed(harness, client)
    assert ended.code == CloseCode.IDLE_TIMEOUT


async def test_a_target_that_leaves_during_the_handshake_is_explained_to_the_browser(start: Start) -> None:
    class Leaving(ScriptedTarget):
        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"RFB 003.008\n")
            writer.close()

    harness, client = await start(Leaving())
    with pytest.raises(TargetUnavailable, match="the target closed the connection during the handshake"):
        await client.handshake()  # noVNC shows the reason of the security failure
    await client.ws.receive()  # the close, answered
    ended = await asyncio.wait_for(asyncio.shield(harness.ended), 5)
    assert ended.code == CloseCode.TARGET_UNAVAILABLE and client.ws.close_code == CloseCode.TARGET_UNAVAILABLE
    assert harness.recordings.journal is None  # no recording was started


# ---------------------------------------------------------------- the browser's side: limits, slices, backpressure


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_slow_journal_pauses_the_browsers_input_too(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), recordings=MemoryRecordings(GatedJournal))
    await client.handshake()
    journal = harness.journal
    assert isinstance(journal, GatedJournal)
    received = harness.target.received
    await client.send(KeyEvent(True, 0x61))
    await until(lambda: len(received) == 1)
    await client.send(KeyEvent(False, 0x61))
    await asyncio.sleep(0.3)
    assert received == [KeyEvent(True, 0x61)]  # journaled, so the pump waits for the journal's buffer
    journal.gate.set()
    await until(lambda: len(received) == 2)
    assert journal.data("client") == KeyEvent(True, 0x61).encode() + KeyEvent(False, 0x61).encode()


async def test_a_browsers_message_is_handled_in_slices_with_the_loop_running_between_them(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), browser_slice=6,
                                  browser_limits=BrowserLimits(pointer_move_burst=1000, press_burst=1000))
    await client.handshake()
    messages = [PointerEvent(x % 2, x, 1) for x in range(300)] + [KeyEvent(True, 0x61), KeyEvent(False, 0x61)]
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counting = asyncio.create_task(count_turns())
    try:
        await client.send(*messages)  # 1,816 bytes in one message: slices of 6 cut the key events in two
        await until(lambda: len(harness.target.received) == len(messages))
    finally:
        counting.cancel()
    assert harness.target.received == messages
    assert turns >= 1816 // 6  # the loop ran between every two slices
    assert harness.journal.data("client") == b"".join(message.encode() for message in messages)


async def test_a_browser_over_its_message_budget_is_read_more_slowly_and_loses_nothing(start: Start) -> None:
    limits = BrowserLimits(messages_per_second=100, message_burst=10, pointer_move_burst=1000)
    harness, client = await start(ScriptedTarget(), browser_limits=limits, browser_slice=60)
    await client.handshake()
    messages = [PointerEvent(0, x, 1) for x in range(40)]
    started = time.monotonic()
    await client.send(*messages)  # four slices of 10: the fourth is read once 20 more are earned, at 100 a second
    await until(lambda: len(harness.target.received) == 40)
    assert time.monotonic() - started >= 0.19
    assert harness.target.received == messages
    throttled = harness.metric("browser_throttled_seconds_total")  # a pause after each slice in debt
    assert throttled is not None and 0.1 < throttled <= 0.3 + 1e-9


async def test_pointer_moves_over_the_limit_are_dropped_counted_and_journaled_once(start: Start) -> None:
    limits = BrowserLimits(pointer_moves_per_second=0, pointer_move_burst=3)
    harness, client = await start(ScriptedTarget(), browser_limits=limits)
    await client.handshake()
    await client.send(*(PointerEvent(0, x, 1) for x in range(10)))
    await client.send(*(PointerEvent(0, x, 2) for x in range(10)), PointerEvent(1, 5, 5), PointerEvent(0, 5, 5))
    await until(lambda: len(harness.target.received) == 5)
    assert harness.target.received == [PointerEvent(0, x, 1) for x in range(3)] + [PointerEvent(1, 5, 5),
                                                                                 PointerEvent(0, 5, 5)]
    assert harness.metric("pointer_moves_dropped_total") == 17
    assert harness.journal.events() == [("pointer_moves_dropped", {"per_second_limit": 0})]
    await client.send(KeyEvent(True, 0x61))  # the session goes on
    await until(lambda: len(harness.target.received) == 6)


async def test_a_flood_of_keys_ends_the_session_with_a_reason(start: Start) -> None:
    harness, client = await start(ScriptedTarget(), browser_limits=BrowserLimits(presses_per_second=5, press_burst=20))
    await client.handshake()
    await client.send(*(KeyEvent(down, 0x61) for _ in range(11) for down in (True, False)))
    ended = await closed(harness, client)
    assert ended.code == CloseCode.INPUT_FLOOD
    assert ended.reason == ("the browser sent key or button events faster than a person can (over 5 a second); "
                            "check for a stuck key")
    assert harness.target.received == []  # nothing of the flooding message was forwarded
    assert harness.recordings.end_reason == ended.reason


async def test_the_browser_gets_the_gateways_name_when_the_target_renames_its_desktop(start: Start) -> None:
    name = Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME)
    script = update((name, b"\x00\x00\x00\x10<b>untrusted</b>"))
    harness, client = await start(ScriptedTarget(script))
    await client.handshake()
    await client.send(SetEncodings((Encoding.RAW, Encoding.DESKTOP_NAME)),
                      FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT))
    events = [await client.next_event() for _ in range(3)]
    assert isinstance(events[0], UpdateBegin) and isinstance(events[2], UpdateEnd)
    assert isinstance(events[1], RectangleReceived) and events[1].payload == b"\x00\x00\x00\x06desk-t"
    assert harness.journal.data("server") == script  # the journal keeps what the target sent
