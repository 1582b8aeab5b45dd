"""The Extended Clipboard pseudo-encoding: Unicode clipboard text in cut-text messages.

A community extension of RFB (pseudo-encoding ``0xC0A1E5CE``, first in TigerVNC, also in
noVNC and QEMU): once the client lists it in SetEncodings, a ServerCutText or ClientCutText
whose length field, read as S32, is negative carries ``abs(length)`` bytes of a different
payload: U32 flags (formats in bits 0-15, one action in bits 24-31), then what the action
needs:

- *caps* (the sender's formats and actions; a U32 size limit per format follows),
- *request* and *peek* (the sender asks for the peer's clipboard, or whether it has one),
- *notify* (the sender's clipboard changed; the formats it now holds),
- *provide* (the data: a zlib stream holding, for each format in the flags from bit 0 up,
  a U32 size and that many bytes; text is UTF-8 with CRLF line ends and a final NUL).

Classic cut text (a non-negative length) stays Latin-1 per RFC 6143. The framers
(:mod:`gateway.rfb.framing`) read both forms with :func:`read_cut_text`. Two limits apply
to an extended message: its length on the wire (the framer's cut-text limit, checked before
anything is waited for) and the size of a provide's data once inflated, inflated
incrementally and never past the limit (a zlib bomb costs at most the limit).

No I/O: bytes in, messages out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar, Self, TypeVar

from gateway.rfb.errors import LimitExceeded, LocalProtocolError, ProtocolViolation
from gateway.rfb.messages import ClientCutText, ClientMessageType, ServerCutText, ServerMessageType
from gateway.rfb.streams import StreamReader

#: The pseudo-encoding a client lists in SetEncodings to speak the Extended Clipboard (as S32).
EXTENDED_CLIPBOARD_ENCODING = 0xC0A1E5CE - (1 << 32)
#: The most clipboard data one provide may inflate to, unless told otherwise.
MAX_CLIPBOARD_INFLATED = 1 << 20

_HEADER = struct.Struct(">B3xiI")  # message type, length (negative), flags
_U32 = struct.Struct(">I")
_ACTIONS = 0xFF000000
_FORMATS = 0x0000FFFF


class ClipboardAction(IntFlag):
    CAPS = 1 << 24
    REQUEST = 1 << 25
    PEEK = 1 << 26
    NOTIFY = 1 << 27
    PROVIDE = 1 << 28


class ClipboardFormat(IntFlag):
    TEXT = 1
    RTF = 1 << 1
    HTML = 1 << 2
    DIB = 1 << 3
    FILES = 1 << 4


#: The actions that carry no data: the sender asks for, or announces, a clipboard.
_ANNOUNCEMENTS = (ClipboardAction.REQUEST, ClipboardAction.PEEK, ClipboardAction.NOTIFY)


@dataclass(frozen=True, slots=True)
class ExtendedCutText:
    """One Extended Clipboard message; see the module docstring.

    ``payload`` is what follows the flags as sent (zlib data for provide), ``contents``
    a provide's data once inflated: each format with its bytes.
    """

    flags: int
    payload: bytes = b""
    contents: tuple[tuple[ClipboardFormat, bytes], ...] = ()

    MESSAGE_TYPE: ClassVar[int]

    @property
    def action(self) -> ClipboardAction:
        """CAPS for a caps message (whose flags also list the sender's actions), else its one action."""
        actions = ClipboardAction(self.flags & _ACTIONS)
        return ClipboardAction.CAPS if actions & ClipboardAction.CAPS else actions

    @property
    def formats(self) -> ClipboardFormat:
        return ClipboardFormat(self.flags & _FORMATS)

    @property
    def inflated_length(self) -> int:
        """Bytes of clipboard data a provide carries, once inflated (0 for the other actions)."""
        return sum(len(data) for _, data in self.contents)

    @property
    def text(self) -> str | None:
        """A provide's text (UTF-8, NUL and CRLF removed; undecodable bytes replaced), else None."""
        for clipboard_format, data in self.contents:
            if clipboard_format == ClipboardFormat.TEXT:
                return data.removesuffix(b"\0").decode("utf-8", "replace").replace("\r\n", "\n")
        return None

    def encode(self) -> bytes:
        return _HEADER.pack(self.MESSAGE_TYPE, -(4 + len(self.payload)), self.flags) + self.payload

    @classmethod
    def provide_text(cls, text: str) -> Self:
        """A provide of ``text`` as the protocol wants it: CRLF line ends, UTF-8, a final NUL, deflated."""
        data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode() + b"\0"
        payload = zlib.compress(_U32.pack(len(data)) + data)
        return cls(ClipboardAction.PROVIDE | ClipboardFormat.TEXT, payload, ((ClipboardFormat.TEXT, data),))

    @classmethod
    def caps(cls, actions: ClipboardAction, sizes: dict[ClipboardFormat, int]) -> Self:
        """Caps: the sender's ``actions`` and, for each format it takes, the largest size it accepts."""
        formats = ClipboardFormat(0)
        for clipboard_format in sizes:
            formats |= clipboard_format
        payload = b"".join(_U32.pack(sizes[f]) for f in ClipboardFormat if f in sizes)
        return cls(ClipboardAction.CAPS | actions | formats, payload)

    @classmethod
    def announce(cls, action: ClipboardAction, formats: ClipboardFormat = ClipboardFormat.TEXT) -> Self:
        """A request, peek or notify for ``formats``."""
        if action not in _ANNOUNCEMENTS:
            raise LocalProtocolError(f"{action!r} is not a request, peek or notify")
        return cls(action | formats)

    @classmethod
    def parse(cls, raw: bytes, max_inflated: int = MAX_CLIPBOARD_INFLATED) -> Self:
        """The message in ``raw`` (header included, its length already checked); inflates a provide up to
        ``max_inflated`` bytes and raises :class:`LimitExceeded` past it."""
        if len(raw) < _HEADER.size:
            raise ProtocolViolation(f"an extended clipboard message of {len(raw) - 8} bytes is shorter than its flags")
        _, _, flags = _HEADER.unpack_from(raw)
        payload = raw[_HEADER.size:]
        actions = flags & _ACTIONS
        if actions & ClipboardAction.CAPS or actions in _ANNOUNCEMENTS:
            return cls(flags, payload)
        if actions != ClipboardAction.PROVIDE:
            raise ProtocolViolation(
                f"extended clipboard actions {actions:#010x} are not one of caps, request, peek, notify, provide"
            )
        return cls(flags, payload, _contents(ClipboardFormat(flags & _FORMATS), _inflate(payload, max_inflated)))


@dataclass(frozen=True, slots=True)
class ExtendedClientCutText(ExtendedCutText):
    """An Extended Clipboard message from the client (a ClientCutText with a negative length)."""

    MESSAGE_TYPE: ClassVar[int] = ClientMessageType.CLIENT_CUT_TEXT


@dataclass(frozen=True, slots=True)
class ExtendedServerCutText(ExtendedCutText):
    """An Extended Clipboard message from the server (a ServerCutText with a negative length)."""

    MESSAGE_TYPE: ClassVar[int] = ServerMessageType.SERVER_CUT_TEXT


Classic = TypeVar("Classic", ClientCutText, ServerCutText)
Extended = TypeVar("Extended", ExtendedClientCutText, ExtendedServerCutText)


def cut_text_size(length: int, classic: type[ClientCutText] | type[ServerCutText], max_cut_text: int) -> int:
    """How many bytes follow a cut-text message's 8-byte header whose length field (S32) says ``length``:
    ``length`` for classic text, ``-length`` for the Extended Clipboard; :class:`LimitExceeded` over ``max_cut_text``."""
    if length >= 0:
        if length > max_cut_text:
            raise LimitExceeded(f"{classic.__name__} announces {length} bytes; the limit is {max_cut_text}")
        return length
    if -length > max_cut_text:
        raise LimitExceeded(f"an extended clipboard message announces {-length} bytes; the limit is {max_cut_text}")
    return -length


def parse_cut_text(
    raw: bytes, classic: type[Classic], extended: type[Extended], max_inflated: int
) -> Classic | Extended:
    """The whole cut-text message in ``raw`` (its size checked by :func:`cut_text_size`), of either form."""
    if raw[4] & 0x80:  # the length field is negative: the Extended Clipboard
        return extended.parse(raw, max_inflated)
    return classic.parse(raw)


def read_cut_text(
    reader: StreamReader, classic: type[Classic], extended: type[Extended], max_cut_text: int, max_inflated: int
) -> Generator[None, None, tuple[Classic | Extended, bytes]]:
    """Read one cut-text message of either form: its message and its raw bytes.

    The length on the wire (either form) is checked against ``max_cut_text`` before its bytes
    are waited for; a provide is inflated to at most ``max_inflated`` bytes.
    """
    yield from reader.wait_for(8)
    (length,) = struct.unpack_from(">i", reader.buffer, 4)
    raw = yield from reader.read_exact(8 + cut_text_size(length, classic, max_cut_text))
    return parse_cut_text(raw, classic, extended, max_inflated), raw


def _inflate(payload: bytes, limit: int) -> bytes:
    """``payload`` inflated, never more than ``limit + 1`` bytes of it (then :class:`LimitExceeded`)."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise ProtocolViolation(f"extended clipboard data is not a valid zlib stream: {exc}") from None
    if len(data) > limit:
        raise LimitExceeded(f"extended clipboard data inflates past the limit of {limit} bytes")
    return data


def _contents(formats: ClipboardFormat, data: bytes) -> tuple[tuple[ClipboardFormat, bytes], ...]:
    """Each format in ``formats``, from bit 0 up, with its sized data in ``data``."""
    contents = []
    position = 0
    for clipboard_format in ClipboardFormat:
        if clipboard_format not in formats:
            continue
        if position + 4 > len(data):
            raise ProtocolViolation("extended clipboard data ends before the size of a format it provides")
        (size,) = _U32.unpack_from(data, position)
        position += 4
        if position + size > len(data):
            raise ProtocolViolation(f"extended clipboard data ends inside its {clipboard_format.name} data")
        contents.append((clipboard_format, data[position:position + size]))
        position += size
    return tuple(contents)
