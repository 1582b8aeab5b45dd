"""A captured RFB workload: what a VNC server sent a viewer, message by message, with times.

File layout (the whole file is xz-compressed)::

    b"DESKGATE-RFB-CAPTURE 1\\n"
    u32 header length, JSON header: encoding, encodings, width, height, pixel_format (hex), name, script
    then per server message: f64 seconds since the first update request, u32 length, the message bytes

The first message is the answer to the viewer's first, non-incremental update request
(the whole screen); every later update answered an incremental request sent right after
the previous update, as noVNC does. Replays loop over messages ``1..n-1``.
"""

from __future__ import annotations

import bisect
import json
import lzma
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.rfb.messages import (
    UPDATE_HEADER,
    Encoding,
    PixelFormat,
    Rectangle,
    ServerInit,
    ServerMessageType,
    encode_update_header,
)

MAGIC = b"DESKGATE-RFB-CAPTURE 1\n"
_U32 = struct.Struct(">I")
_RECORD = struct.Struct(">dI")
_MAX_HEADER = 1 << 16
_MAX_MESSAGE = 64 << 20


class CaptureFormatError(Exception):
    """The file is not a capture this code can read."""


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One whole server message and when its last byte arrived (seconds since the first request)."""

    at: float
    data: bytes

    @property
    def is_update(self) -> bool:
        return self.data[0] == ServerMessageType.FRAMEBUFFER_UPDATE


@dataclass(frozen=True, slots=True)
class Capture:
    """A workload: the server's geometry and pixel format, the encodings asked for, the messages."""

    encoding: str  # the preferred encoding's name, e.g. "zrle"
    encodings: tuple[int, ...]  # the SetEncodings list the capturing viewer sent
    server_init: ServerInit
    messages: tuple[CapturedMessage, ...]
    script: str = ""

    def __post_init__(self) -> None:
        if len(self.messages) < 2 or not self.messages[0].is_update:
            raise CaptureFormatError("a capture needs the first full-screen update and at least one more message")

    @property
    def loop_duration(self) -> float:
        """Seconds one pass of the looped part (messages 1..n-1) lasts."""
        return self.messages[-1].at - self.messages[1].at

    def index_at(self, fraction: float) -> int:
        """The looped message playing ``fraction`` (0 to 1) of the way through the loop's *time*.

        Sessions started from points spread evenly over the message indices would bunch where
        messages are dense (a typing burst holds many small ones) and then play their busy parts
        in step, which independent operators do not.
        """
        start = self.messages[1].at
        due = start + (fraction % 1.0) * self.loop_duration
        index = bisect.bisect_left(self.messages, due, lo=1, key=lambda message: message.at)
        return min(index, len(self.messages) - 1)

    @property
    def width(self) -> int:
        return self.server_init.width

    @property
    def height(self) -> int:
        return self.server_init.height

    @property
    def pixel_format(self) -> PixelFormat:
        return self.server_init.pixel_format

    def echo_update(self, key: int) -> bytes:
        """The tiny update the replay server sends for a key press: a 1x1 Raw pixel in the corner carrying the key."""
        rect = Rectangle(self.width - 1, self.height - 1, 1, 1, Encoding.RAW).encode()
        pixel = key.to_bytes(4, "big")[-self.pixel_format.bytes_per_pixel :]
        return encode_update_header(1) + rect + pixel

    @property
    def echo_prefix(self) -> bytes:
        """The first 16 bytes of every echo update; no captured message starts with them."""
        return self.echo_update(0)[: UPDATE_HEADER.size + 12]


def write_capture(path: Path, capture: Capture) -> None:
    """Write ``capture`` to ``path`` (xz)."""
    pixel_format = capture.pixel_format
    header = json.dumps({
        "encoding": capture.encoding,
        "encodings": list(capture.encodings),
        "width": capture.width,
        "height": capture.height,
        "pixel_format": pixel_format.encode().hex(),
        "name": capture.server_init.name.decode("utf-8", "replace"),
        "script": capture.script,
    }).encode()
    with lzma.open(path, "wb", preset=6) as file:
        file.write(MAGIC + _U32.pack(len(header)) + header)
        for message in capture.messages:
            file.write(_RECORD.pack(message.at, len(message.data)))
            file.write(message.data)


def read_capture(path: Path) -> Capture:
    """Read a capture written by :func:`write_capture`; raise :class:`CaptureFormatError` if it is not one."""
    try:
        with lzma.open(path, "rb") as file:
            data = file.read()
    except (OSError, lzma.LZMAError) as exc:
        raise CaptureFormatError(f"cannot read capture {path}: {exc}") from exc
    if not data.startswith(MAGIC):
        raise CaptureFormatError(f"{path} is not a deskgate RFB capture")
    offset = len(MAGIC)
    (header_length,) = _U32.unpack_from(data, offset)
    if header_length > _MAX_HEADER:
        raise CaptureFormatError(f"{path}: header of {header_length} bytes is too long")
    offset += _U32.size
    header = json.loads(data[offset : offset + header_length])
    offset += header_length
    messages = list(_messages(data, offset, path))
    init = ServerInit(header["width"], header["height"], PixelFormat.parse(bytes.fromhex(header["pixel_format"])),
                      header["name"].encode())
    capture = Capture(header["encoding"], tuple(header["encodings"]), init, tuple(messages), header.get("script", ""))
    prefix = capture.echo_prefix
    if any(message.data.startswith(prefix) for message in messages):
        raise CaptureFormatError(f"{path}: a captured message looks like an echo update; "
                                 "the replay cannot tell them apart")
    return capture


def _messages(data: bytes, offset: int, path: Path) -> Iterable[CapturedMessage]:
    while offset < len(data):
        if offset + _RECORD.size > len(data):
            raise CaptureFormatError(f"{path}: torn record at byte {offset}")
        at, length = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        if length == 0 or length > _MAX_MESSAGE or offset + length > len(data):
            raise CaptureFormatError(f"{path}: record of {length} bytes at byte {offset} is invalid or torn")
        yield CapturedMessage(at, data[offset : offset + length])
        offset += length
