"""The fuzz targets: the browser's and the target's framers, the proxy connection, and the target's
framer compiled against interpreted and against the event framer (``boundaries``).

Every target feeds its input whole, in steps and byte by byte, and checks what the batch
fuzz tests check (``tests/rfb/test_fuzz_families.py``): the same events in every feeding, at
most one failure, last, a :class:`ProtocolViolation`, and nothing framed that was not received.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from random import Random

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import FRAMEABLE_ENCODINGS, ClientMessageFramer, ProtocolFailed, ServerMessageFramer
from gateway.rfb.messages import ServerInit, SetEncodings, SetPixelFormat
from gateway.rfb.proxy import InputActivity, JournalData, ProxyConnection, ProxyFailed, Side
from tests.rfb.differential import Stream, assert_all_agree
from tests.rfb.helpers import comparable, feed
from tests.rfb.wire_generators import (
    CLIENT_FAMILIES,
    SERVER_FAMILIES,
    TARGET_PIXEL_FORMATS,
    Desktop,
    client_framer,
    hostile_update,
    update,
)
from tests.rfb.wire_values import START_SIZE

Framer = ClientMessageFramer | ServerMessageFramer


def _feedings(stream: bytes, step: int) -> Iterator[list[bytes]]:
    yield [stream]
    yield [stream[at : at + step] for at in range(0, len(stream), step)]
    yield [stream[at : at + 1] for at in range(len(stream))]


def _check_framer(make: Callable[[], Framer], stream: bytes, step: int) -> None:
    whole, *others = (feed(make(), chunks) for chunks in _feedings(stream, step))
    for events in others:
        assert comparable(events) == comparable(whole)
    failures = [event for event in whole if isinstance(event, ProtocolFailed)]
    assert failures in ([], whole[-1:])
    assert all(isinstance(failure.error, ProtocolViolation) for failure in failures)
    assert stream.startswith(b"".join(event.raw for event in whole))  # type: ignore[attr-defined]


def boundaries_target(data: bytes) -> None:
    """First byte: the pixel format; second: the step size; the rest: the target's stream, fed whole, in
    steps and byte by byte to each form of the framer (:func:`tests.rfb.differential.assert_all_agree`)."""
    if len(data) >= 2:
        stream = Stream(TARGET_PIXEL_FORMATS[data[0] % len(TARGET_PIXEL_FORMATS)], *START_SIZE)
        for chunks in _feedings(data[2:], data[1] % 64 + 1):
            assert_all_agree(stream, chunks)


def client_framer_target(data: bytes) -> None:
    """First byte: the step size of one feeding; the rest: the browser's stream."""
    if data:
        _check_framer(client_framer, data[1:], data[0] % 64 + 1)


def server_framer_target(data: bytes) -> None:
    """First byte: the pixel format; second: the step size; the rest: the target's stream."""
    if len(data) >= 2:
        desktop = Desktop(TARGET_PIXEL_FORMATS[data[0] % len(TARGET_PIXEL_FORMATS)])
        _check_framer(desktop.framer, data[2:], data[1] % 64 + 1)


# A proxy input is a rules byte, then records: a kind byte (0-2: browser data, 3-5: target data,
# 6: the browser's end of stream, 7: the target's), a length byte, that many bytes.
_BROWSER_DATA, _TARGET_DATA, _BROWSER_EOF, _TARGET_EOF = range(0, 3), range(3, 6), 6, 7


def _records(body: bytes) -> list[tuple[Side, bytes | None]]:
    records: list[tuple[Side, bytes | None]] = []
    at = 0
    while at + 2 <= len(body):
        kind, length = body[at] % 8, body[at + 1]
        chunk, at = body[at + 2 : at + 2 + length], at + 2 + length
        if kind in (_BROWSER_EOF, _TARGET_EOF):
            records.append((Side.BROWSER if kind == _BROWSER_EOF else Side.TARGET, None))
        else:
            records.append((Side.BROWSER if kind in _BROWSER_DATA else Side.TARGET, chunk))
    return records


def _run_proxy(rules: int, records: Sequence[tuple[Side, bytes | None]], byte_by_byte: bool) -> list[object]:
    """Everything the proxy said, in order: events (errors by type and text), and the bytes it sent."""
    pixel_format = TARGET_PIXEL_FORMATS[rules >> 3 & 3]
    proxy = ProxyConnection(ServerInit(*START_SIZE, pixel_format, b"fuzz"), clipboard_to_remote=bool(rules & 1),
                            clipboard_to_local=bool(rules & 2), journal_input=bool(rules & 4))
    setup = SetPixelFormat(pixel_format).encode() + SetEncodings(tuple(FRAMEABLE_ENCODINGS)).encode()
    said: list[object] = []
    ended: set[Side] = set()

    def collect() -> None:
        for event in proxy.events_received():
            if isinstance(event, ProxyFailed):
                assert isinstance(event.error, ProtocolViolation)
                said.append(("failed", event.side, type(event.error), str(event.error)))
            elif isinstance(event, JournalData):
                said.append((f"journal of {event.sender.value}", event.data))
            elif not isinstance(event, InputActivity):  # once per chunk with input: depends on chunking
                said.append(event)
        said.extend((("to browser", proxy.data_to_send_browser()), ("to target", proxy.data_to_send_target())))

    for side, data in [(Side.BROWSER, setup), *records]:
        receive = proxy.receive_browser_data if side is Side.BROWSER else proxy.receive_target_data
        if data is None:
            proxy.receive_eof(side)
            ended.add(side)
        elif side in ended:
            try:
                receive(data)
            except LocalProtocolError:  # documented: the caller fed a side after its end of stream
                continue
            raise AssertionError("data after the end of stream was accepted")
        else:
            for chunk in [data[at : at + 1] for at in range(len(data))] if byte_by_byte else [data]:
                receive(chunk)
                collect()
        collect()
    return said


_STREAMS = ("to browser", "to target", "journal of browser", "journal of target")


def _stream_of(said: list[object], kind: str) -> bytes:
    return b"".join(item[1] for item in said if isinstance(item, tuple) and item[0] == kind)


def proxy_target(data: bytes) -> None:
    """First byte: the rules and pixel format; then records (see ``_records``)."""
    if not data:
        return
    records = _records(data[1:])
    whole, byte_by_byte = _run_proxy(data[0], records, False), _run_proxy(data[0], records, True)
    events = [[item for item in said if not (isinstance(item, tuple) and item[0] in _STREAMS)]
              for said in (whole, byte_by_byte)]
    assert events[0] == events[1]
    failures = [item for item in events[0] if isinstance(item, tuple) and item[0] == "failed"]
    assert failures in ([], events[0][-1:])
    for kind in _STREAMS:
        # What came in the same chunk as a violation is dropped: fed whole, less may be sent.
        assert _stream_of(byte_by_byte, kind).startswith(_stream_of(whole, kind))
        if not failures:
            assert _stream_of(byte_by_byte, kind) == _stream_of(whole, kind)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "client_framer": client_framer_target,
    "server_framer": server_framer_target,
    "proxy": proxy_target,
    "boundaries": boundaries_target,
}


def seeds(target: str, count: int = 16) -> Iterator[bytes]:
    """Starting inputs for ``target``: valid streams with a hostile message at the end of some."""
    for n in range(count):
        rng = Random(n)
        if target == "client_framer":
            messages = [rng.choice(CLIENT_FAMILIES).valid(rng).encode() for _ in range(rng.randint(1, 12))]
            hostile = rng.choice(CLIENT_FAMILIES).hostile(rng)[0] if n % 2 else b""
            yield bytes((rng.randrange(256),)) + b"".join(messages) + hostile
        elif target in ("server_framer", "boundaries"):
            format_index = n % len(TARGET_PIXEL_FORMATS)
            desktop = Desktop(TARGET_PIXEL_FORMATS[format_index])
            items = [update(rng, desktop)[0] if rng.random() < 0.7 else rng.choice(SERVER_FAMILIES).valid(rng).encode()
                     for _ in range(rng.randint(1, 6))]
            hostile = hostile_update(rng, desktop)[0] if n % 2 else b""
            yield bytes((format_index, rng.randrange(256))) + b"".join(items) + hostile
        else:
            desktop = Desktop(TARGET_PIXEL_FORMATS[n % len(TARGET_PIXEL_FORMATS)])
            body = b""
            for _ in range(rng.randint(1, 8)):
                if rng.random() < 0.5:
                    chunk, kind = rng.choice(CLIENT_FAMILIES[2:]).valid(rng).encode(), 0
                else:
                    chunk, kind = update(rng, desktop)[0], 3
                body += b"".join(bytes((kind, len(piece))) + piece
                                 for piece in (chunk[at : at + 255] for at in range(0, len(chunk), 255)))
            yield bytes((n % 4 << 3 | rng.randrange(8),)) + body + (bytes((7, 0)) if n % 2 else b"")
