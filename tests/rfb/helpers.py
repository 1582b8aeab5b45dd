"""Helpers for the sans-I/O RFB tests: feed bytes in every split, build payloads, join two handshakes."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from gateway.rfb.framing import ProtocolFailed
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeEvent,
    HandshakeFailed,
    HandshakeState,
    ServerHandshake,
)
from gateway.rfb.messages import Rectangle, ServerInit, encode_update_header


class Machine(Protocol):
    def receive_data(self, data: bytes) -> None: ...

    def events_received(self) -> Sequence[object]: ...


def comparable(events: Sequence[object]) -> list[object]:
    """Events with their exceptions replaced by (type, message), which compare by value."""
    result: list[object] = []
    for event in events:
        if isinstance(event, (ProtocolFailed, HandshakeFailed)):
            result.append((type(event).__name__, type(event.error), str(event.error)))
        else:
            result.append(event)
    return result


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """The data whole, split in two at every byte, and one byte at a time."""
    yield [data]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))]


def feed(machine: Machine, chunks: Sequence[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        machine.receive_data(chunk)
        events.extend(machine.events_received())
    return events


def events_for_every_split(make: Callable[[], Machine], data: bytes) -> list[object]:
    """Feed ``data`` in every chunking; every chunking must give the same events, which are returned."""
    expected = comparable(feed(make(), [data]))
    for chunks in chunkings(data):
        assert comparable(feed(make(), chunks)) == expected, f"differs when split as {[len(c) for c in chunks]}"
    return feed(make(), [data])


def update(*rectangles: tuple[Rectangle, bytes], count: int | None = None) -> bytes:
    """A FramebufferUpdate with these (header, payload) rectangles."""
    body = b"".join(rect.encode() + payload for rect, payload in rectangles)
    return encode_update_header(len(rectangles) if count is None else count) + body


def compact_length(length: int) -> bytes:
    """Tight's 1–3 byte length: 7 bits, 7 bits, then 8 bits, least significant first."""
    if length < 0x80:
        return bytes((length,))
    if length < 0x4000:
        return bytes((length & 0x7F | 0x80, length >> 7))
    return bytes((length & 0x7F | 0x80, (length >> 7) & 0x7F | 0x80, length >> 14))


def hextile_subrect(x: int, y: int, width: int, height: int, pixel: bytes = b"") -> bytes:
    return pixel + bytes((x << 4 | y, (width - 1) << 4 | (height - 1)))


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


class ConnectionPair:
    """Our ClientHandshake talking to our ServerHandshake (h11's idea), bytes pumped until both are quiet.

    The server accepts with ``server_init`` or, when ``reject_reason`` is set, rejects;
    ``byte_by_byte`` delivers every transfer one byte at a time.
    """

    def __init__(
        self,
        client: ClientHandshake,
        server: ServerHandshake,
        server_init: ServerInit,
        *,
        reject_reason: str | None = None,
        byte_by_byte: bool = False,
    ) -> None:
        self.client = client
        self.server = server
        self.server_init = server_init
        self.reject_reason = reject_reason
        self.byte_by_byte = byte_by_byte
        self.client_events: list[HandshakeEvent] = []
        self.server_events: list[HandshakeEvent] = []

    def _deliver(self, machine: ClientHandshake | ServerHandshake, data: bytes, extra: bytes) -> None:
        """Deliver ``data``; ``extra`` rides in the same chunk as its last byte, as after a real read."""
        chunks = [data[i : i + 1] for i in range(len(data))] if self.byte_by_byte else [data]
        chunks[-1] += extra
        for chunk in chunks:
            machine.receive_data(chunk)

    def run(self, *, client_extra: bytes = b"", server_extra: bytes = b"") -> None:
        """Pump until neither side has anything to say; ``*_extra`` ride along with each side's last bytes."""
        self.server.initiate()
        while True:
            to_client = self.server.data_to_send()
            to_server = self.client.data_to_send()
            if not to_client and not to_server:
                return
            if to_client:
                self._deliver(self.client, to_client, self._extra_if_last(self.server, server_extra))
                self.client_events += self.client.events_received()
            if to_server:
                self._deliver(self.server, to_server, self._extra_if_last(self.client, client_extra))
                for event in self.server.events_received():
                    self.server_events.append(event)
                    if isinstance(event, ClientVersionReceived):
                        if self.reject_reason is None:
                            self.server.accept(self.server_init)
                        else:
                            self.server.reject(self.reject_reason)
                self.server_events += self.server.events_received()

    @staticmethod
    def _extra_if_last(sender: ClientHandshake | ServerHandshake, extra: bytes) -> bytes:
        """Extra bytes go out with the sender's final flight (ServerInit, or the client's ClientInit)."""
        final = sender.state in (HandshakeState.COMPLETE, HandshakeState.SERVER_INIT)
        return extra if final else b""
