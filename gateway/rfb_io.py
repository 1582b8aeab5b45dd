"""Drive an RFB handshake over an async byte stream: the one loop around the sans-I/O machines.

The handshakes of :mod:`gateway.rfb.handshake` only turn bytes into bytes and events;
:func:`drive` moves them. It sends what the machine has to say, feeds it what the peer
answers (the end of the stream included, which fails a handshake still under way) and
returns at the event the caller waits for. The stream is a pair of callables, so the same
loop serves the browser's WebSocket, a target's TCP connection and the bench's
transports; :func:`over_streams` makes the pair for asyncio streams.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.rfb.errors import LocalProtocolError
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeState,
    ServerHandshake,
)

#: The next bytes from the peer; ``b""`` once it closed.
Receive = Callable[[], Awaitable[bytes]]
#: Send bytes to the peer (waiting while its buffer is full).
Send = Callable[[bytes], Awaitable[None]]

E = TypeVar("E", ClientVersionReceived, HandshakeComplete)

READ_SIZE = 64 * 1024

# A machine in these states waits for its caller (initiate, accept or reject) or has ended.
_NOT_UNDER_WAY = frozenset(
    {
        HandshakeState.INITIAL,
        HandshakeState.AWAITING_VERDICT,
        HandshakeState.COMPLETE,
        HandshakeState.CLOSED,
        HandshakeState.FAILED,
    }
)


async def drive(
    machine: ClientHandshake | ServerHandshake, receive: Receive, send: Send, timeout: float, *, until: type[E]
) -> E:
    """Run ``machine`` over the stream until it emits ``until``, and return that event.

    Whatever the machine says is sent before this returns. Raises the handshake's
    :class:`~gateway.rfb.errors.RFBError` when it fails (the peer broke the protocol,
    refused us, or closed), :class:`TimeoutError` when ``timeout`` seconds pass first, and
    :class:`~gateway.rfb.errors.LocalProtocolError` when the machine is not under way or
    stops at another event (a server handshake waiting for ``accept`` when ``until`` is
    :class:`HandshakeComplete`). Errors of ``receive`` and ``send`` propagate.
    """
    if machine.state in _NOT_UNDER_WAY:
        raise LocalProtocolError(f"drive() needs a handshake under way, not one in state {machine.state.name}")
    async with asyncio.timeout(timeout):
        while True:
            if data := machine.data_to_send():
                await send(data)
            for event in machine.events_received():
                if isinstance(event, HandshakeFailed):
                    raise event.error
                if isinstance(event, until):
                    return event
                raise LocalProtocolError(f"the handshake stopped at {type(event).__name__}, not {until.__name__}")
            if received := await receive():
                machine.receive_data(received)
            else:
                machine.receive_eof()


def over_streams(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_size: int = READ_SIZE
) -> tuple[Receive, Send]:
    """The (receive, send) pair of an asyncio stream: reads of up to ``read_size``, writes that drain."""

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return functools.partial(reader.read, read_size), send
