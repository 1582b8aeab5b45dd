"""The two RFB handshakes the gateway runs (RFC 6143 §7.1–7.3).

Theory of operation: each handshake is a generator that reads from a
:class:`~gateway.rfb.streams.StreamReader` and walks the protocol's phases in order,
recording the phase it waits in as a :class:`HandshakeState`. ``receive_data`` feeds
the peer's bytes and resumes it, ``receive_eof`` says the peer closed; what it has to
say waits in ``data_to_send`` and what happened in ``events_received``. A peer that
breaks the protocol, or leaves half-way, never raises into the caller: it ends the
handshake with :class:`HandshakeFailed`. Misusing the machine (``accept`` at the wrong
time, feeding it after completion or after the end of the stream) raises
:class:`~gateway.rfb.errors.LocalProtocolError`, since that is the caller's bug.

:class:`ClientHandshake` is the gateway as client towards the VNC target (None or
VNC authentication); :class:`ServerHandshake` is the gateway as server towards the
browser (security type None). The server handshake pauses after the browser's
version (:class:`ClientVersionReceived`) until the caller, having tried the target,
calls ``accept`` or ``reject`` — so a refusal reaches noVNC as a security failure
with a readable reason. Bytes that follow the handshake in the same read are
handed over in :attr:`HandshakeComplete.trailing_data` for the message framer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from gateway.rfb.errors import (
    LimitExceeded,
    LocalProtocolError,
    ProtocolViolation,
    RFBError,
    SharingRefused,
    TargetAuthFailed,
    TargetUnavailable,
)
from gateway.rfb.framing import check_framebuffer_size
from gateway.rfb.messages import PixelFormat, SecurityType, ServerInit
from gateway.rfb.streams import StreamReader
from gateway.rfb.vncauth import CHALLENGE_SIZE, vnc_auth_response

Version: TypeAlias = tuple[int, int]

_VERSION = re.compile(rb"RFB (\d{3})\.(\d{3})\n")
_VERSION_SIZE = 12
_U32 = struct.Struct(">I")
_SECURITY_RESULT_OK = 0


class HandshakeState(IntEnum):
    """The phase a handshake waits in."""

    INITIAL = 0  # server: before initiate()
    PROTOCOL_VERSION = 1
    AWAITING_VERDICT = 2  # server: for accept() or reject()
    SECURITY = 3
    VNC_AUTHENTICATION = 4  # client: for the challenge
    SECURITY_RESULT = 5  # client
    CLIENT_INIT = 6  # server
    SERVER_INIT = 7  # client
    COMPLETE = 8
    CLOSED = 9  # server: after reject()
    FAILED = 10


@dataclass(frozen=True, slots=True)
class ClientVersionReceived:
    """The browser's protocol version arrived; call ``accept`` or ``reject`` next."""

    version: Version


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both sides agree: ``server_init`` was received (client) or sent (server), ``shared`` sent or received."""

    version: Version
    shared: bool
    server_init: ServerInit
    trailing_data: bytes


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    error: RFBError


HandshakeEvent: TypeAlias = ClientVersionReceived | HandshakeComplete | HandshakeFailed


def negotiated_version(offered: Version) -> Version:
    """The version to speak for the peer's ``offered`` one (rfbproto §7.1.1)."""
    if offered < (3, 3):
        raise ProtocolViolation(f"RFB {offered[0]}.{offered[1]} is older than 3.3, the oldest version deskgate speaks")
    if offered < (3, 7):
        return (3, 3)  # 3.4–3.6 were reported by some, but implement only the 3.3 handshake
    if offered == (3, 7):
        return (3, 7)
    return (3, 8)  # 3.8, Apple's 3.889 and anything newer accept the 3.8 handshake


def encode_version(version: Version) -> bytes:
    return b"RFB %03d.%03d\n" % version


class _Handshake:
    """Drives a handshake generator; see the theory of operation above."""

    def __init__(self) -> None:
        self._reader = StreamReader()
        self._outgoing = bytearray()
        self._events: list[HandshakeEvent] = []
        self._state = HandshakeState.INITIAL
        self._parser = self._run()
        next(self._parser)

    @property
    def state(self) -> HandshakeState:
        return self._state

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer."""
        if not self._feedable():
            return
        if self._reader.eof:
            raise LocalProtocolError("receive_data() after receive_eof(): the peer has closed")
        self._reader.feed_data(data)
        next(self._parser)

    def receive_eof(self) -> None:
        """The peer closed the connection: a handshake that still needs its bytes fails."""
        if not self._feedable() or self._reader.eof:
            return
        self._reader.feed_eof()
        next(self._parser)

    def _feedable(self) -> bool:
        """Whether the peer's bytes still matter; raises LocalProtocolError when it is too early or too late."""
        if self._state is HandshakeState.INITIAL:
            raise LocalProtocolError("call initiate() before feeding the handshake")
        if self._state is HandshakeState.COMPLETE:
            raise LocalProtocolError("the handshake is complete: feed later bytes to the message framer")
        return self._state not in (HandshakeState.CLOSED, HandshakeState.FAILED)

    def data_to_send(self) -> bytes:
        """Bytes to send to the peer, once."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def events_received(self) -> list[HandshakeEvent]:
        """The events since the last call."""
        events, self._events = self._events, []
        return events

    def _run(self) -> Generator[None, None, None]:
        try:
            yield from self._negotiate()
        except EOFError:
            self._fail(self._closed_error())
        except RFBError as exc:
            self._fail(exc)
        yield  # so that this next() returns; receive_data feeds nothing after the end

    def _fail(self, error: RFBError) -> None:
        self._state = HandshakeState.FAILED
        self._reader.buffer.clear()
        self._events.append(HandshakeFailed(error))

    def _negotiate(self) -> Generator[None, None, None]:
        raise NotImplementedError

    def _closed_error(self) -> RFBError:
        """What it means that the peer closed the connection before the handshake was over."""
        raise NotImplementedError

    def _read_version(self) -> Generator[None, None, Version]:
        self._state = HandshakeState.PROTOCOL_VERSION
        data = yield from self._reader.read_exact(_VERSION_SIZE)
        match = _VERSION.fullmatch(data)
        if match is None:
            raise ProtocolViolation(f"expected a protocol version like b'RFB 003.008\\n', got {data!r}")
        return negotiated_version((int(match[1]), int(match[2])))

    def _read_u8(self) -> Generator[None, None, int]:
        return (yield from self._reader.read_exact(1))[0]

    def _read_u32(self) -> Generator[None, None, int]:
        value: int = _U32.unpack((yield from self._reader.read_exact(4)))[0]
        return value

    def _complete(self, version: Version, shared: bool, server_init: ServerInit) -> None:
        trailing_data = bytes(self._reader.buffer)
        self._reader.buffer.clear()
        self._state = HandshakeState.COMPLETE
        self._events.append(HandshakeComplete(version, shared, server_init, trailing_data))


class ClientHandshake(_Handshake):
    """The gateway as RFB client towards the VNC target; the password stays inside."""

    def __init__(
        self,
        *,
        password: bytes | None = None,
        shared: bool = True,
        max_name: int = 1024,
        max_framebuffer: tuple[int, int] = (16384, 16384),
        max_reason: int = 1024,
    ) -> None:
        self._password = password
        self._shared = shared
        self._max_name = max_name
        self._max_framebuffer = max_framebuffer
        self._max_reason = max_reason
        super().__init__()

    def __repr__(self) -> str:
        return f"<ClientHandshake state={self._state.name}>"

    def _closed_error(self) -> RFBError:
        if self._state is HandshakeState.SERVER_INIT and self._shared:
            return SharingRefused("the target closed the connection on a shared ClientInit: it does not accept a "
                                  "second connection beside the one open (its VNC server must allow sharing)")
        return TargetUnavailable("the target closed the connection during the handshake")

    def _negotiate(self) -> Generator[None, None, None]:
        version = yield from self._read_version()
        self._outgoing += encode_version(version)
        self._state = HandshakeState.SECURITY
        if version == (3, 3):  # the server decides
            security_type = yield from self._read_u32()
            if security_type == SecurityType.INVALID:
                raise TargetUnavailable(f"the target refused the connection: {(yield from self._read_reason())}")
            security_type = self._choose((security_type,))
        else:
            count = yield from self._read_u8()
            if count == 0:
                raise TargetUnavailable(f"the target refused the connection: {(yield from self._read_reason())}")
            security_type = self._choose((yield from self._reader.read_exact(count)))
            self._outgoing.append(security_type)
        if security_type == SecurityType.VNC_AUTH:
            assert self._password is not None  # _choose picks VNC authentication only with a password
            self._state = HandshakeState.VNC_AUTHENTICATION
            challenge = yield from self._reader.read_exact(CHALLENGE_SIZE)
            self._outgoing += vnc_auth_response(self._password, challenge)
        if version == (3, 8) or security_type == SecurityType.VNC_AUTH:
            self._state = HandshakeState.SECURITY_RESULT
            if (yield from self._read_u32()) != _SECURITY_RESULT_OK:
                reason = (yield from self._read_reason()) if version == (3, 8) else "no reason given"
                refused = "the VNC password" if security_type == SecurityType.VNC_AUTH else "the connection"
                raise TargetAuthFailed(f"the target refused {refused}: {reason}")
        self._outgoing.append(self._shared)  # ClientInit
        self._state = HandshakeState.SERVER_INIT
        server_init = yield from self._read_server_init()
        self._complete(version, self._shared, server_init)

    def _choose(self, offered: Sequence[int]) -> int:
        if SecurityType.VNC_AUTH in offered and self._password is not None:
            return SecurityType.VNC_AUTH
        if SecurityType.NONE in offered:
            return SecurityType.NONE
        if SecurityType.VNC_AUTH in offered:
            raise TargetAuthFailed("the target requires VNC authentication, but no password is configured for it")
        raise TargetAuthFailed(
            f"target offers security types {list(offered)}; deskgate supports None and VNC authentication"
        )

    def _read_server_init(self) -> Generator[None, None, ServerInit]:
        """ServerInit, with size, pixel format and name length checked before the name is read."""
        header = yield from self._reader.read_exact(ServerInit.HEADER.size)
        width, height, pixel_format_bytes, name_length = ServerInit.HEADER.unpack(header)
        check_framebuffer_size(width, height, self._max_framebuffer)
        pixel_format = PixelFormat.parse(pixel_format_bytes)
        if name_length > self._max_name:
            raise LimitExceeded(f"a desktop name of {name_length} bytes is over the limit of {self._max_name} bytes")
        name = yield from self._reader.read_exact(name_length)
        return ServerInit(width, height, pixel_format, name)

    def _read_reason(self) -> Generator[None, None, str]:
        """A U32-length string; control characters are blanked, it ends up in logs and close reasons."""
        length = yield from self._read_u32()
        if length > self._max_reason:
            raise LimitExceeded(f"a reason string of {length} bytes is over the limit of {self._max_reason} bytes")
        text = (yield from self._reader.read_exact(length)).decode("utf-8", "replace")
        return "".join(char if char.isprintable() else " " for char in text)


class ServerHandshake(_Handshake):
    """The gateway as RFB server towards the browser, offering security type None only."""

    def __init__(self) -> None:
        self._version: Version = (3, 8)
        self._server_init: ServerInit | None = None
        super().__init__()

    def initiate(self) -> None:
        """Queue our protocol version, which opens the handshake."""
        self._expect_state(HandshakeState.INITIAL, "initiate()")
        self._state = HandshakeState.PROTOCOL_VERSION
        self._outgoing += encode_version((3, 8))

    def accept(self, server_init: ServerInit) -> None:
        """Continue the handshake, sending ``server_init`` after the browser's ClientInit."""
        self._expect_state(HandshakeState.AWAITING_VERDICT, "accept()")
        self._server_init = server_init
        if self._version == (3, 3):
            self._outgoing += _U32.pack(SecurityType.NONE)
        else:
            self._outgoing += bytes((1, SecurityType.NONE))
        self._state = HandshakeState.SECURITY
        next(self._parser)  # the browser may have sent more already

    def reject(self, reason: str) -> None:
        """Refuse the browser with ``reason`` (noVNC reports it as a security failure) and close."""
        self._expect_state(HandshakeState.AWAITING_VERDICT, "reject()")
        encoded = reason.encode()
        if self._version == (3, 3):
            self._outgoing += _U32.pack(SecurityType.INVALID)
        else:
            self._outgoing.append(0)  # no security types
        self._outgoing += _U32.pack(len(encoded)) + encoded
        self._state = HandshakeState.CLOSED
        self._reader.buffer.clear()

    def _closed_error(self) -> RFBError:
        return ProtocolViolation("the browser closed the connection during the handshake")

    def _expect_state(self, state: HandshakeState, action: str) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"{action} needs the handshake in state {state.name}, not {self._state.name}")

    def _negotiate(self) -> Generator[None, None, None]:
        while self._state is HandshakeState.INITIAL:
            yield
        self._version = version = yield from self._read_version()
        self._state = HandshakeState.AWAITING_VERDICT
        self._events.append(ClientVersionReceived(version))
        while self._state is HandshakeState.AWAITING_VERDICT:
            yield
        if version != (3, 3):
            security_type = yield from self._read_u8()
            if security_type != SecurityType.NONE:
                raise ProtocolViolation(f"the browser chose security type {security_type}; deskgate offered only None")
            if version == (3, 8):
                self._outgoing += _U32.pack(_SECURITY_RESULT_OK)
        self._state = HandshakeState.CLIENT_INIT
        shared = (yield from self._read_u8()) != 0
        assert self._server_init is not None  # set by accept()
        self._outgoing += self._server_init.encode()
        self._complete(version, shared, self._server_init)
