"""Fuzzing by message family: generated cases for each client and server message type
(FramebufferUpdate with rectangles of every encoding), and for the proxy connection —
10,000 per family in ``make test``, 100,000 in the ``make fuzz`` campaign
(``DESKGATE_FUZZ_CAMPAIGN=1``).

Each hypothesis example draws a seed (and the batch's pixel format, or the session's rules)
and builds ``BATCH`` cases from it with :mod:`tests.rfb.wire_generators`: valid messages,
framed as one stream, and ``HOSTILE`` hostile ones, each in a stream of its own between short
valid messages. Every stream is fed whole, and in pieces: split at random points, with a
window of it fed one byte at a time (a whole batch byte by byte would cost too much at this
volume; the window moves with the seed). Whatever the feeding, the events are the same; valid
messages come back exactly as built; a hostile one ends the stream with :class:`ProtocolFailed`
and a :class:`ProtocolViolation` (the one its generator names, at that message, when it names
one), and no other exception escapes.

The Extended Clipboard (a cut text whose length has its top bit set) is a family of its own
in each direction: valid caps, requests, peeks, notifies and provides of Japanese text, and
hostile ones over the limit on the wire, zlib bombs over the inflated limit, malformed ones.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.browser_limits import BrowserLimits
from gateway.rfb.clipboard import (
    ClipboardAction,
    ClipboardFormat,
    ExtendedClientCutText,
    ExtendedCutText,
    ExtendedServerCutText,
)
from gateway.rfb.errors import LimitExceeded, LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    DesktopResized,
    ProtocolFailed,
    RectangleReceived,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateBegin,
    UpdateEnd,
    filter_encodings,
)
from gateway.rfb.messages import (
    RGBX8888,
    UPDATE_HEADER,
    Bell,
    ClientCutText,
    ClientMessage,
    Encoding,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    ServerCutText,
    ServerInit,
    ServerMessageType,
    SetEncodings,
    SetPixelFormat,
    encode_update_header,
)
from gateway.rfb.proxy import (
    ClipboardBlocked,
    ConnectionClosed,
    InputActivity,
    InputCounted,
    JournalData,
    ProxyConnection,
    ProxyEvent,
    ProxyFailed,
    Resized,
    Side,
)
from tests.rfb.helpers import comparable, feed
from tests.rfb.wire_generators import (
    CLIENT_FAMILIES,
    SERVER_FAMILIES,
    TARGET_PIXEL_FORMATS,
    ClientFamily,
    Desktop,
    Rect,
    ServerFamily,
    client_framer,
    hostile_update,
    update,
)
from tests.rfb.wire_values import EXTENDED_CLIPBOARD, START_SIZE, Hostile

CAMPAIGN = os.environ.get("DESKGATE_FUZZ_CAMPAIGN") == "1"
EXAMPLES = 200 if CAMPAIGN else 20
BATCH = 500  # cases built by each example
HOSTILE = 50  # of them hostile; the others valid
HOSTILE_BYTE_BY_BYTE = 10
CASES_PER_FAMILY = EXAMPLES * BATCH
assert CASES_PER_FAMILY >= (100_000 if CAMPAIGN else 10_000)
BYTE_WINDOW = 256  # bytes of each batch of valid messages fed one at a time
FAMILY_FUZZ = settings(max_examples=EXAMPLES, deadline=None)

seeds = st.integers(0, (1 << 64) - 1)
target_pixel_formats = st.sampled_from(TARGET_PIXEL_FORMATS)


def random_split(rng: Random, data: bytes) -> list[bytes]:
    """``data`` cut at random points, about one every 16 bytes (empty chunks included)."""
    points = sorted(rng.choices(range(len(data) + 1), k=rng.randint(1, max(1, len(data) // 16))))
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)])]


def pieces(rng: Random, data: bytes, window: int, start: int | None = None) -> list[bytes]:
    """``data`` split at random points, but for ``window`` bytes from ``start`` (random if None), fed one by one."""
    start = rng.randint(0, max(0, len(data) - window)) if start is None else start
    end = min(len(data), start + window)
    return [*random_split(rng, data[:start]), *(data[at : at + 1] for at in range(start, end)),
            *random_split(rng, data[end:])]


def ends_the_documented_way(events: Sequence[object], stream: bytes, accepted: bytes,
                            error: type[ProtocolViolation] | None) -> None:
    """At most one failure, last, a ProtocolViolation (``error`` at the hostile message when given)."""
    failures = [event for event in events if isinstance(event, ProtocolFailed)]
    assert failures in ([], list(events[-1:]))
    assert all(isinstance(failure.error, ProtocolViolation) for failure in failures)
    raw = b"".join(event.raw for event in events)  # type: ignore[attr-defined]
    assert stream.startswith(raw)
    if error is not None:
        assert failures and isinstance(failures[0].error, error), (error, events[-1:])
        assert raw == accepted, "the framer failed before or after the hostile message"


def same_events_in_every_feeding(make: Callable[[], ClientMessageFramer | ServerMessageFramer], rng: Random,
                                 stream: bytes) -> list[object]:
    """The events of ``stream``, the same whole and in pieces (compared by value, errors by type and text)."""
    whole = feed(make(), [stream])
    assert comparable(feed(make(), pieces(rng, stream, BYTE_WINDOW))) == comparable(whole)
    return whole


def hostile_streams(rng: Random, make: Callable[[], ClientMessageFramer | ServerMessageFramer],
                    prefix: Callable[[], bytes], hostile: Callable[[], Hostile], accepted_of_hostile: int = 0) -> None:
    """``HOSTILE`` cases, each between two short valid messages, in a framer of its own.

    Fed whole and in pieces; one in ``HOSTILE_BYTE_BY_BYTE`` byte by byte across the hostile message.
    """
    for case in range(HOSTILE):
        before, (wire, error), after = prefix(), hostile(), prefix()
        stream = before + wire + after
        whole = feed(make(), [stream])
        window = min(len(wire) + 16, 64) if case % HOSTILE_BYTE_BY_BYTE == 0 else 0
        assert comparable(feed(make(), pieces(rng, stream, window, max(0, len(before) - 8)))) == comparable(whole)
        ends_the_documented_way(whole, stream, before + wire[:accepted_of_hostile], error)


# ---------------------------------------------------------------- browser → gateway


@pytest.mark.parametrize("family", CLIENT_FAMILIES, ids=lambda family: family.name)
@FAMILY_FUZZ
@given(seed=seeds)
def test_client_message_family(family: ClientFamily, seed: int) -> None:
    rng = Random(seed)
    messages = [family.valid(rng) for _ in range(BATCH - HOSTILE)]
    stream = b"".join(message.encode() for message in messages)
    events = same_events_in_every_feeding(client_framer, rng, stream)
    assert all(isinstance(event, ClientMessageReceived) for event in events)
    assert [event.message for event in events] == messages  # type: ignore[attr-defined]
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]
    hostile_streams(rng, client_framer, lambda: family.valid(rng).encode() if rng.random() < 0.7 else b"",
                    lambda: family.hostile(rng))


# ---------------------------------------------------------------- target → gateway


def expected_resizes(rects: Sequence[Rect]) -> list[tuple[int, int]]:
    return [(rect.width, rect.height) for rect, _ in rects
            if rect.encoding == Encoding.DESKTOP_SIZE
            or (rect.encoding == Encoding.EXTENDED_DESKTOP_SIZE and not (rect.x == 1 and rect.y != 0))]


@FAMILY_FUZZ
@given(seed=seeds, pixel_format=target_pixel_formats)
def test_framebuffer_update_family(seed: int, pixel_format: PixelFormat) -> None:
    """Rectangles of every encoding, mixed within updates (a resize frames the rectangles after it)."""
    rng = Random(seed)
    desktop = Desktop(pixel_format)
    parts: list[bytes] = []
    rects: list[Rect] = []
    while len(rects) < BATCH - HOSTILE:
        wire, built = update(rng, desktop)
        parts.append(wire)
        rects += built
    stream = b"".join(parts)
    events = same_events_in_every_feeding(Desktop(pixel_format).framer, rng, stream)
    assert not any(isinstance(event, ProtocolFailed) for event in events), events[-1]
    assert [(event.rect, event.payload) for event in events if isinstance(event, RectangleReceived)] == rects
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]
    assert sum(isinstance(event, UpdateBegin) for event in events) == len(parts)
    assert sum(isinstance(event, UpdateEnd) for event in events) == len(parts)
    resized = [(event.width, event.height) for event in events if isinstance(event, DesktopResized)]
    assert resized == expected_resizes(rects)

    hostile_desktop = Desktop(pixel_format)
    pixel = bytes(pixel_format.bytes_per_pixel)
    tiny_update = encode_update_header(1) + Rectangle(1, 1, 1, 1, Encoding.RAW).encode() + pixel
    hostile_streams(rng, hostile_desktop.framer, lambda: rng.choice((b"", Bell().encode(), tiny_update)),
                    lambda: hostile_update(rng, hostile_desktop), UPDATE_HEADER.size)


@pytest.mark.parametrize("family", SERVER_FAMILIES, ids=lambda family: family.name)
@FAMILY_FUZZ
@given(seed=seeds, pixel_format=target_pixel_formats)
def test_server_message_family(family: ServerFamily, seed: int, pixel_format: PixelFormat) -> None:
    rng = Random(seed)
    desktop = Desktop(pixel_format)
    messages = [family.valid(rng) for _ in range(BATCH - HOSTILE)]
    stream = b"".join(message.encode() for message in messages)
    events = same_events_in_every_feeding(desktop.framer, rng, stream)
    assert all(isinstance(event, ServerMessageReceived) for event in events)
    assert [event.message for event in events] == messages  # type: ignore[attr-defined]
    assert b"".join(event.raw for event in events) == stream  # type: ignore[attr-defined]
    hostile_streams(rng, desktop.framer, lambda: family.valid(rng).encode() if rng.random() < 0.7 else b"",
                    lambda: family.hostile(rng))


def test_an_extended_clipboard_bomb_fails_both_framers_at_the_inflated_limit() -> None:
    """What the hostile generators check in bulk, once in plain sight: 1 MiB of zeros in a 1 KiB message."""
    bomb = ExtendedClientCutText(ClipboardAction.PROVIDE | ClipboardFormat.TEXT,
                                 zlib.compress((1 << 20).to_bytes(4, "big") + bytes(1 << 20)))
    client_wire = bomb.encode()
    server_wire = bytes((ServerMessageType.SERVER_CUT_TEXT,)) + client_wire[1:]
    assert len(client_wire) < 1100
    for wire, framer in ((client_wire, ClientMessageFramer()), (server_wire, ServerMessageFramer(RGBX8888, 64, 48))):
        framer.receive_data(wire)
        [failed] = framer.events_received()
        assert isinstance(failed, ProtocolFailed) and isinstance(failed.error, LimitExceeded)
        assert "inflates past the limit" in str(failed.error)
    assert filter_encodings([EXTENDED_CLIPBOARD, Encoding.RAW]) == (EXTENDED_CLIPBOARD, Encoding.RAW)


# ---------------------------------------------------------------- the proxy connection


@dataclass
class Session:
    """A script of what each side sends, and what the proxy must make of its valid part."""

    segments: list[tuple[Side, bytes]] = field(default_factory=list)
    to_target: list[bytes] = field(default_factory=list)
    to_browser: list[bytes] = field(default_factory=list)  # DesktopName rectangles carry the gateway's name
    journal_target: list[bytes] = field(default_factory=list)  # what the target sent of that, as it sent it
    journal_browser: list[bytes] = field(default_factory=list)
    events: list[ProxyEvent] = field(default_factory=list)  # besides InputActivity and JournalData
    cases: int = 0


ALL_ENCODINGS = (*{*Encoding, *range(-32, -22), *range(-256, -246)}, EXTENDED_CLIPBOARD, -312)
#: The desktop's name the proxy is given, and the DesktopName rectangle it sends the browser instead of the target's.
GATEWAY_NAME = b"fuzz"
GATEWAY_NAME_RECT = Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME).encode() + len(GATEWAY_NAME).to_bytes(4, "big") \
    + GATEWAY_NAME
#: Input limits far above any batch: the framing and the rules are fuzzed here, the limits in test_proxy.py.
UNLIMITED = BrowserLimits(messages_per_second=1e9, message_burst=10**9, pointer_moves_per_second=1e9,
                          pointer_move_burst=10**9, presses_per_second=1e9, press_burst=10**9)
OPERATOR_INPUT = (KeyEvent, PointerEvent, QEMUExtendedKeyEvent)
#: An Extended Clipboard provide inflating one byte past the proxy's default limit.
BOMB = ExtendedClientCutText(ClipboardAction.PROVIDE | ClipboardFormat.TEXT,
                             zlib.compress((1 << 20).to_bytes(4, "big") + bytes((1 << 20) - 3))).encode()


class SessionBuilder:
    """Builds a :class:`Session` with the proxy's rules, message by message."""

    def __init__(self, rng: Random, pixel_format: PixelFormat, to_remote: bool, to_local: bool,
                 journal_input: bool) -> None:
        self.rng = rng
        self.pixel_format = pixel_format
        self.desktop = Desktop(pixel_format)
        self.to_remote, self.to_local, self.journal_input = to_remote, to_local, journal_input
        self.session = Session()
        self.buttons = 0

    def extended_crosses(self, message: ExtendedCutText, from_browser: bool) -> bool:
        """The clipboard rule for the Extended Clipboard, as the proxy's docstring states it."""
        action = message.action
        if action == ClipboardAction.CAPS:
            return True
        sends = action in (ClipboardAction.NOTIFY, ClipboardAction.PROVIDE)  # else it asks for the peer's
        direction = "to_remote" if from_browser == sends else "to_local"
        if self.to_remote if direction == "to_remote" else self.to_local:
            return True
        if sends:
            self.session.events.append(ClipboardBlocked(direction, message.inflated_length))  # type: ignore[arg-type]
        return False

    def browser(self, message: ClientMessage | ExtendedClientCutText) -> bytes:
        session, wire = self.session, message.encode()
        session.cases += 1
        if isinstance(message, ClientCutText) and not self.to_remote:
            session.events.append(ClipboardBlocked("to_remote", len(message.text)))
            return wire
        if isinstance(message, ExtendedClientCutText) and not self.extended_crosses(message, True):
            return wire
        forwarded = wire
        if isinstance(message, SetEncodings) and filter_encodings(message.encodings) != message.encodings:
            forwarded = SetEncodings(filter_encodings(message.encodings)).encode()
        session.to_target.append(forwarded)
        provides = isinstance(message, ExtendedClientCutText) and message.action == ClipboardAction.PROVIDE
        if self.journal_input or not (isinstance(message, (*OPERATOR_INPUT, ClientCutText)) or provides):
            session.journal_browser.append(forwarded)
        elif isinstance(message, (ClientCutText, ExtendedClientCutText)):
            session.events.append(InputCounted("cut_text", 1))
        elif isinstance(message, PointerEvent):
            clicks = (message.button_mask & ~self.buttons).bit_count()
            self.buttons = message.button_mask
            session.events += [InputCounted("clicks", clicks)] if clicks else []
            session.events.append(InputCounted("pointer", 1))
        elif message.down:
            session.events.append(InputCounted("keys", 1))
        return wire

    def browser_segment(self) -> bytes:
        families = CLIENT_FAMILIES[2:]  # the first two would change how the target's stream is framed
        parts = []
        for _ in range(self.rng.randint(1, 30)):
            roll = self.rng.random()
            if roll < 0.05:
                message: ClientMessage = SetPixelFormat(self.pixel_format)
            elif roll < 0.1:
                message = SetEncodings(tuple(self.rng.sample(ALL_ENCODINGS, len(ALL_ENCODINGS))))
            else:
                message = self.rng.choice(families).valid(self.rng)
            parts.append(self.browser(message))
        return b"".join(parts)

    def target_segment(self) -> bytes:
        session, parts = self.session, []
        for _ in range(self.rng.randint(1, 10)):
            if self.rng.random() < 0.8:
                wire, rects = update(self.rng, self.desktop)
                session.events += [Resized(*size) for size in expected_resizes(rects)]
                session.cases += len(rects)
                renamed = wire[:4] + b"".join(GATEWAY_NAME_RECT if rect.encoding == Encoding.DESKTOP_NAME
                                              else rect.encode() + payload for rect, payload in rects)
                session.to_browser.append(renamed)
                session.journal_target.append(wire)
                parts.append(wire)
                continue
            else:
                message = self.rng.choice(SERVER_FAMILIES).valid(self.rng)
                wire = message.encode()
                session.cases += 1
                if isinstance(message, ServerCutText) and not self.to_local:
                    session.events.append(ClipboardBlocked("to_local", len(message.text)))
                    parts.append(wire)
                    continue
                if isinstance(message, ExtendedServerCutText) and not self.extended_crosses(message, False):
                    parts.append(wire)
                    continue
            session.to_browser.append(wire)
            session.journal_target.append(wire)
            parts.append(wire)
        return b"".join(parts)

    def build(self, cases: int) -> Session:
        setup = self.browser(SetPixelFormat(self.pixel_format)) + self.browser(SetEncodings(ALL_ENCODINGS))
        self.session.segments.append((Side.BROWSER, setup))
        while self.session.cases < cases:
            side = self.rng.choice((Side.BROWSER, Side.TARGET))
            data = self.browser_segment() if side is Side.BROWSER else self.target_segment()
            self.session.segments.append((side, data))
        return self.session


@dataclass
class Transcript:
    """What the proxy did: its events (InputActivity and JournalData aside), bytes sent and journaled."""

    events: list[object] = field(default_factory=list)
    sent: dict[Side, bytes] = field(default_factory=lambda: {Side.BROWSER: b"", Side.TARGET: b""})
    journal: dict[Side, bytes] = field(default_factory=lambda: {Side.BROWSER: b"", Side.TARGET: b""})
    active: bool = False

    def collect(self, proxy: ProxyConnection) -> None:
        for event in proxy.events_received():
            if isinstance(event, JournalData):
                self.journal[event.sender] += event.data
            elif isinstance(event, InputActivity):
                self.active = True
            elif isinstance(event, ProxyFailed):
                self.events.append((ProxyFailed, event.side, type(event.error), str(event.error)))
            else:
                self.events.append(event)
        self.sent[Side.BROWSER] += proxy.data_to_send_browser()
        self.sent[Side.TARGET] += proxy.data_to_send_target()


def run_session(segments: Sequence[tuple[Side, bytes | None]], rules: dict[str, bool],
                split: Callable[[int, bytes], list[bytes]], pixel_format: PixelFormat) -> Transcript:
    """Feed every segment (None: that side's end of stream) as ``split(index, data)`` cuts it.

    Data after a side's end of stream must raise LocalProtocolError (our misuse), nothing else.
    """
    proxy = ProxyConnection(ServerInit(*START_SIZE, pixel_format, GATEWAY_NAME), **rules, browser_limits=UNLIMITED,
                            desktop_name=GATEWAY_NAME)
    transcript, ended = Transcript(), set()
    for index, (side, data) in enumerate(segments):
        if data is None:
            proxy.receive_eof(side)
            ended.add(side)
        elif side in ended:
            with pytest.raises(LocalProtocolError):  # the one exception: the caller's bug
                (proxy.receive_browser_data if side is Side.BROWSER else proxy.receive_target_data)(data)
        else:
            for chunk in split(index, data):
                (proxy.receive_browser_data if side is Side.BROWSER else proxy.receive_target_data)(chunk)
                transcript.collect(proxy)
        transcript.collect(proxy)
    return transcript


def hostile_segment(rng: Random, desktop: Desktop) -> tuple[Side, bytes, type[ProtocolViolation] | None]:
    """A hostile message from either side, and the error the proxy must fail with, if certain.

    The proxy's framers have the default limits, above the generators' small ones: an
    Extended Clipboard bomb past the default inflated limit stands for them all.
    """
    side = rng.choice((Side.BROWSER, Side.TARGET))
    if rng.random() < 0.2:
        wire = BOMB if side is Side.BROWSER else bytes((ServerMessageType.SERVER_CUT_TEXT,)) + BOMB[1:]
        return side, wire, LimitExceeded
    if side is Side.BROWSER:
        wire, error = rng.choice(CLIENT_FAMILIES).hostile(rng)
    else:
        wire, error = hostile_update(rng, desktop.copy())
    return side, wire, None if error is LimitExceeded else error


@FAMILY_FUZZ
@given(seed=seeds, pixel_format=target_pixel_formats, to_remote=st.booleans(), to_local=st.booleans(),
       journal_input=st.booleans(), hostile=st.booleans())
def test_proxy_connection_family(seed: int, pixel_format: PixelFormat, to_remote: bool, to_local: bool,
                                 journal_input: bool, hostile: bool) -> None:
    rng = Random(seed)
    rules = {"clipboard_to_remote": to_remote, "clipboard_to_local": to_local, "journal_input": journal_input}
    builder = SessionBuilder(rng, pixel_format, to_remote, to_local, journal_input)
    session = builder.build(BATCH)
    segments: list[tuple[Side, bytes | None]] = list(session.segments)
    expected_failure: tuple[Side, type[ProtocolViolation]] | None = None
    if hostile:  # a hostile message from one side, then more from both
        side, wire, error = hostile_segment(rng, builder.desktop)
        segments += [(side, wire), (Side.BROWSER, KeyEvent(True, 0x61).encode()), (Side.TARGET, b"\x02")]
        expected_failure = None if error is None else (side, error)
    segments += [(Side.TARGET, None), (Side.BROWSER, None), (Side.BROWSER, b"\x02")]  # ends, then our misuse

    whole = run_session(segments, rules, lambda _, data: [data], pixel_format)
    slow = rng.randrange(len(segments))  # the segment fed byte by byte (over a window)
    in_pieces = run_session(segments, rules, lambda index, data: pieces(rng, data, BYTE_WINDOW if index == slow else 0),
                            pixel_format)
    assert (in_pieces.events, in_pieces.active) == (whole.events, whole.active)
    for side in Side:  # the messages before a violation are forwarded and journaled however the bytes came
        assert (in_pieces.sent[side], in_pieces.journal[side]) == (whole.sent[side], whole.journal[side])

    assert whole.events[: len(session.events)] == session.events
    assert whole.sent[Side.TARGET].startswith(b"".join(session.to_target))
    assert whole.sent[Side.BROWSER].startswith(b"".join(session.to_browser))
    assert whole.journal[Side.TARGET].startswith(b"".join(session.journal_target))
    assert whole.journal[Side.BROWSER].startswith(b"".join(session.journal_browser))
    rest = whole.events[len(session.events) :]
    failures = [event for event in rest if isinstance(event, tuple)]
    assert len(failures) <= 1
    if failures:
        assert rest[-1] is failures[0], "nothing follows a failure, not even an end of stream"
    else:
        assert [event for event in rest if isinstance(event, ConnectionClosed)] == \
               [ConnectionClosed(Side.TARGET), ConnectionClosed(Side.BROWSER)]
    if expected_failure is not None:
        side, error = expected_failure
        assert failures and failures[0][1] is side and issubclass(failures[0][2], error)
    if not hostile:
        assert (whole.sent[Side.TARGET], whole.sent[Side.BROWSER]) == \
               (b"".join(session.to_target), b"".join(session.to_browser))
        assert whole.journal[Side.BROWSER] == b"".join(session.journal_browser)
        assert rest == [ConnectionClosed(Side.TARGET), ConnectionClosed(Side.BROWSER)]
