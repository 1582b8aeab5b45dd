"""The view-only relay: a live viewer's RFB connection beside an operator's, screen updates only.

Like :mod:`gateway.rfb.proxy` it does no I/O and keeps no time: the I/O layer
(:mod:`gateway.live_view`) feeds the viewer's bytes to :meth:`ViewerConnection.receive_viewer_data`
and the target's to :meth:`~ViewerConnection.receive_target_data`, asks :meth:`~ViewerConnection.pace`
when to ask the target for an update, writes ``data_to_send_*`` and acts on ``events_received``.

View-only by construction: nothing the viewer sends is forwarded. Every byte towards the
target is a message this class builds itself from parsed values — SetPixelFormat,
SetEncodings (filtered to what the framer can frame, without QEMU key events, and in a
:class:`Pacing` with a JPEG quality, with the gateway's quality and compression levels
instead of the viewer's) and FramebufferUpdateRequest. The viewer's update requests are
absorbed: they only say that the viewer is ready for more. KeyEvent, PointerEvent,
ClientCutText and every extension message are dropped and counted (:class:`InputDropped`).

Pacing: at most one update request is outstanding at the target, and requests are at least
:attr:`Pacing.min_interval` apart; the next one is sent only once the viewer has asked again
(so a viewer that stops reading stops the requests). The target's FramebufferUpdate,
SetColourMapEntries and Bell reach the viewer; its cut text does not
(:class:`CutTextWithheld`), and its DesktopName rectangles carry the gateway's name.

Masked desktops (``capture_updates=True``): no byte of the target's updates reaches the viewer.
Each whole FramebufferUpdate is handed to the I/O layer as :class:`UpdateCaptured` (its
rectangles, the pixel format they are in, and whether the viewer takes ZRLE), which decodes
it, hides the masked regions and sends the viewer an update it encoded itself
(:mod:`recorder.masked_updates`). The viewer must then use a true-colour pixel format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal, TypeAlias

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import (
    ClientMessageFramer,
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
    COMPRESS_LEVELS,
    JPEG_QUALITY_LEVELS,
    ClientCutText,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    ServerCutText,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb.proxy import ConnectionClosed, ProxyFailed, Resized, Side

DroppedKind = Literal["key", "pointer", "cut_text", "other"]


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often the gateway asks the target for an update for one viewer, and at what quality.

    ``min_interval``: seconds between two update requests; ``jpeg_quality`` and
    ``compress_level`` (0–9, Tight's pseudo-encodings): what to ask the target for
    instead of the viewer's own levels (None: the viewer's).
    """

    min_interval: float
    jpeg_quality: int | None = None
    compress_level: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_interval <= 60:
            raise ValueError(f"the update interval must be from 0 to 60 s, not {self.min_interval}")
        for name in ("jpeg_quality", "compress_level"):
            level = getattr(self, name)
            if level is not None and not 0 <= level <= 9:
                raise ValueError(f"{name} must be from 0 to 9, not {level}")


#: The live view of one session: a smooth picture (10 updates a second at most) at the viewer's quality.
LIVE_PACING = Pacing(0.1)
#: A tile of the wall: one update every 2 s, low JPEG quality, high compression — a bounded cost per tile.
TILE_PACING = Pacing(2.0, jpeg_quality=1, compress_level=9)


@dataclass(frozen=True, slots=True)
class InputDropped:
    """The viewer sent ``count`` messages of ``kind``; none was forwarded."""

    kind: DroppedKind
    count: int


@dataclass(frozen=True, slots=True)
class CutTextWithheld:
    """The target's cut text (``length`` bytes) was not forwarded to the viewer."""

    length: int


@dataclass(frozen=True, slots=True)
class UpdateForwarded:
    """A whole FramebufferUpdate from the target is on its way to the viewer."""


@dataclass(frozen=True, slots=True, eq=False)
class UpdateCaptured:
    """A whole FramebufferUpdate from the target, held back from the viewer (a masked desktop).

    ``rectangles`` as framed (a DesktopName one already carries the gateway's name), in
    ``pixel_format``; ``zrle``: the viewer asked for ZRLE, so the gateway may encode with it.
    """

    rectangles: tuple[RectangleReceived, ...]
    pixel_format: PixelFormat
    zrle: bool


ViewerEvent: TypeAlias = (
    InputDropped | CutTextWithheld | UpdateForwarded | UpdateCaptured | Resized | ConnectionClosed | ProxyFailed
)

_UPDATE_FORWARDED = UpdateForwarded()
_DESKTOP_NAME = int(Encoding.DESKTOP_NAME)
_NAME_LENGTH = struct.Struct(">I")


def _dropped_kind(message: object) -> DroppedKind:
    if isinstance(message, (KeyEvent, QEMUExtendedKeyEvent)):
        return "key"
    if isinstance(message, PointerEvent):
        return "pointer"
    if isinstance(message, ClientCutText):
        return "cut_text"
    return "other"


class ViewerConnection:
    """One live viewer of a target, after both handshakes; see the module docstring."""

    def __init__(self, server_init: ServerInit, pacing: Pacing = LIVE_PACING, *, desktop_name: bytes = b"",
                 max_cut_text: int = 1 << 20, capture_updates: bool = False) -> None:
        """Start from the target's ``server_init``; the viewer is told ``desktop_name`` when the target renames
        its desktop, and a viewer's cut text over ``max_cut_text`` bytes breaks its side (it is never forwarded).
        ``capture_updates``: hand updates over as :class:`UpdateCaptured` instead of forwarding them."""
        self._viewer = ClientMessageFramer(max_cut_text=max_cut_text)
        self._target = ServerMessageFramer(server_init.pixel_format, server_init.width, server_init.height)
        self._pacing = pacing
        self._desktop_name_rectangle = (
            Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME).encode() + _NAME_LENGTH.pack(len(desktop_name)) + desktop_name
        )
        self._wanted = False  # the viewer asked for an update the gateway has not yet asked the target for
        self._full_wanted = False  # ... and it asked for the whole screen, not only changes
        self._outstanding = False  # a request to the target awaits its update
        self._last_request = float("-inf")
        self._events: list[ViewerEvent] = []
        self._to_viewer: list[bytes] = []
        self._to_target: list[bytes] = []
        self._ended: set[Side] = set()
        self._failed = False
        self._capture = capture_updates
        self._captured: list[RectangleReceived] = []  # the rectangles of the update being received
        self._viewer_zrle = False

    @property
    def pacing(self) -> Pacing:
        return self._pacing

    def receive_viewer_data(self, data: bytes) -> None:
        """Feed bytes read from the viewer: settings are rebuilt for the target, requests absorbed, the rest dropped."""
        if not self._accepts(Side.BROWSER):
            return
        self._viewer.receive_data(data)
        dropped: dict[DroppedKind, int] = {}
        failure: ProtocolViolation | None = None
        for event in self._viewer.events_received():
            if isinstance(event, ProtocolFailed):
                failure = event.error
                break
            message = event.message
            if isinstance(message, FramebufferUpdateRequest):
                self._wanted = True
                self._full_wanted |= not message.incremental
            elif isinstance(message, SetPixelFormat):
                if self._capture and not message.pixel_format.true_colour:
                    failure = ProtocolViolation("a masked desktop can only be viewed in a true-colour pixel format")
                    break
                self._target.set_pixel_format(message.pixel_format)
                self._to_target.append(SetPixelFormat(message.pixel_format).encode())
            elif isinstance(message, SetEncodings):
                encodings = self._encodings(message.encodings)
                self._viewer_zrle = Encoding.ZRLE in encodings
                self._target.set_encodings(encodings)
                self._to_target.append(SetEncodings(encodings).encode())
            else:
                kind = _dropped_kind(message)
                dropped[kind] = dropped.get(kind, 0) + 1
        self._events.extend(InputDropped(kind, count) for kind, count in dropped.items())
        if failure is not None:
            self._fail(Side.BROWSER, failure)

    def receive_target_data(self, data: bytes) -> None:
        """Feed bytes read from the target: updates go to the viewer, its cut text does not."""
        if not self._accepts(Side.TARGET):
            return
        self._target.receive_data(data)
        forwarded: list[bytes] = []
        failure: ProtocolViolation | None = None
        for event in self._target.events_received():
            if isinstance(event, RectangleReceived):
                if event.rect.encoding == _DESKTOP_NAME:
                    event = RectangleReceived(event.rect, b"", self._desktop_name_rectangle)
                if self._capture:
                    self._captured.append(event)
                    continue
            elif isinstance(event, UpdateBegin) and self._capture:
                continue
            elif isinstance(event, UpdateEnd):
                self._outstanding = False
                if self._capture:
                    self._events.append(UpdateCaptured(tuple(self._captured), self._target.pixel_format,
                                                       self._viewer_zrle))
                    self._captured = []
                    continue
                self._events.append(_UPDATE_FORWARDED)
            elif isinstance(event, ServerMessageReceived):
                if isinstance(event.message, ServerCutText):
                    self._events.append(CutTextWithheld(len(event.message.text)))
                    continue
            elif isinstance(event, DesktopResized):
                self._events.append(Resized(event.width, event.height))
            elif isinstance(event, ProtocolFailed):
                failure = event.error
                break
            forwarded.append(event.raw)
        if forwarded:
            self._to_viewer.append(b"".join(forwarded))
        if failure is not None:
            self._fail(Side.TARGET, failure)

    def receive_eof(self, side: Side) -> None:
        """``side`` closed its connection; a repeated end of stream is ignored."""
        if side in self._ended:
            return
        self._ended.add(side)
        if not self._failed:
            self._events.append(ConnectionClosed(side))

    def pace(self, now: float) -> float | None:
        """Ask the target for an update when one is due at ``now`` (the caller's monotonic clock, seconds).

        Returns the seconds to wait before calling again when the viewer is waiting for a request
        not yet due, else None: nothing to do until the viewer asks again or the target's update
        arrives (feed it and call again).
        """
        if self._failed or not self._wanted or (self._outstanding and not self._full_wanted):
            return None
        wait = self._last_request + self._pacing.min_interval - now
        if wait > 0:
            return wait
        self._to_target.append(FramebufferUpdateRequest(not self._full_wanted, 0, 0, self._target.width,
                                                        self._target.height).encode())
        self._last_request = now
        self._wanted = self._full_wanted = False
        self._outstanding = True
        return None

    def data_to_send_viewer(self) -> bytes:
        """The bytes to write to the viewer now, once; ``b""`` when there are none."""
        return _take(self._to_viewer)

    def data_to_send_target(self) -> bytes:
        """The bytes to write to the target now, once (only messages built here); ``b""`` when there are none."""
        return _take(self._to_target)

    def events_received(self) -> list[ViewerEvent]:
        """The events since the last call, in order."""
        events, self._events = self._events, []
        return events

    def _encodings(self, requested: tuple[int, ...]) -> tuple[int, ...]:
        """The viewer's encodings the target's framer can frame, with the pacing's quality levels."""
        pacing = self._pacing
        encodings = tuple(e for e in filter_encodings(requested) if e != Encoding.QEMU_EXTENDED_KEY_EVENT)
        levels = []  # the gateway's own levels replace the viewer's of the same kind
        if pacing.jpeg_quality is not None:
            encodings = tuple(e for e in encodings if e not in JPEG_QUALITY_LEVELS)
            levels.append(JPEG_QUALITY_LEVELS[pacing.jpeg_quality])
        if pacing.compress_level is not None:
            encodings = tuple(e for e in encodings if e not in COMPRESS_LEVELS)
            levels.append(COMPRESS_LEVELS[pacing.compress_level])
        return encodings + tuple(levels)

    def _accepts(self, side: Side) -> bool:
        if side in self._ended:
            raise LocalProtocolError(f"data from the {side.value} after its end of stream")
        return not self._failed

    def _fail(self, side: Side, error: ProtocolViolation) -> None:
        self._failed = True
        self._events.append(ProxyFailed(side, error))


def _take(pending: list[bytes]) -> bytes:
    data = pending[0] if len(pending) == 1 else b"".join(pending)
    pending.clear()
    return data
