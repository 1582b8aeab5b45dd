"""The target's framer in its three forms, fed the same chunks, must agree (``test_boundaries``, ``make fuzz``).

The forms: the mypyc-compiled :class:`~gateway.rfb.boundaries.ServerBoundaries` (when it is
built), the same source interpreted, and the event framer built on its marks
(:class:`~gateway.rfb.framing.ServerMessageFramer`). Compiled and interpreted must return the
same bytes, marks, messages and error for every chunk, both as the proxy uses them (only the
pieces it looks at marked) and as the event framer does (every piece marked); the events'
``raw`` must join to the same bytes per chunk, their rectangles end where the marks say, and
the framer must fail with the same error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

from gateway.rfb import boundary_impl
from gateway.rfb.framing import (
    FRAMEABLE_ENCODINGS,
    DesktopResized,
    ProtocolFailed,
    RectangleReceived,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateBegin,
    UpdateEnd,
)
from gateway.rfb.messages import Encoding, PixelFormat
from tests.rfb.wire_values import CLIPBOARD_LIMIT, CUT_TEXT_LIMIT, FRAMEBUFFER_LIMIT, NAME_LIMIT, PAYLOAD_LIMIT

COMPILED, NOT_COMPILED_BECAUSE = boundary_impl.compiled()
INTERPRETED = boundary_impl.interpreted()


@dataclass(frozen=True)
class Stream:
    """A target's stream and what its framer starts from: the test generators' small limits, or the gateway's
    defaults (``small_limits=False``, for the recorded captures)."""

    pixel_format: PixelFormat
    width: int
    height: int
    encodings: Iterable[int] = FRAMEABLE_ENCODINGS
    small_limits: bool = True

    def limits(self) -> dict[str, object]:
        if not self.small_limits:
            return {}
        return {"max_framebuffer": FRAMEBUFFER_LIMIT, "max_cut_text": CUT_TEXT_LIMIT,
                "max_clipboard": CLIPBOARD_LIMIT, "max_name": NAME_LIMIT, "max_payload": PAYLOAD_LIMIT}


def _error(error: Exception | None) -> tuple[type, str] | None:
    return None if error is None else (type(error), str(error))


Said = tuple[list[tuple[object, ...]], tuple[type, str] | None]


def boundaries_said(module: ModuleType, stream: Stream, chunks: Sequence[bytes], every_piece: bool) -> Said:
    """Per chunk: the bytes returned, the marks and the messages; and the error."""
    framer = module.ServerBoundaries(stream.pixel_format, stream.width, stream.height, encodings=stream.encodings,
                                     every_piece=every_piece, **stream.limits())
    said: list[tuple[object, ...]] = []
    for chunk in chunks:
        framed = framer.receive_data(chunk)
        said.append((framed, list(framer.marks), list(framer.messages)))
    return said, _error(framer.error)


def events_said(stream: Stream, chunks: Sequence[bytes]) -> Said:
    """Per chunk, from the event framer: its events' bytes joined, its pieces as marks, its messages; and the error."""
    framer = ServerMessageFramer(stream.pixel_format, stream.width, stream.height, encodings=stream.encodings,
                                 **stream.limits())  # type: ignore[arg-type]
    said: list[tuple[object, ...]] = []
    error: tuple[type, str] | None = None
    for chunk in chunks:
        framer.receive_data(chunk)
        marks: list[int] = []
        messages: list[object] = []
        raw = b""
        for event in framer.events_received():
            if isinstance(event, ProtocolFailed):
                error = _error(event.error)
                continue
            if isinstance(event, DesktopResized):
                marks += (boundary_impl.RESIZED, marks[-2], marks[-1])
                continue
            kind = {UpdateBegin: boundary_impl.UPDATE, UpdateEnd: boundary_impl.UPDATE_END,
                    ServerMessageReceived: boundary_impl.MESSAGE}.get(type(event), boundary_impl.RECTANGLE)
            if isinstance(event, RectangleReceived) and event.rect.encoding == Encoding.DESKTOP_NAME:
                kind = boundary_impl.DESKTOP_NAME
            if isinstance(event, ServerMessageReceived):
                messages.append(event.message)
            marks += (kind, len(raw), len(raw) + len(event.raw))
            raw += event.raw
        said.append((raw, marks, messages))
    return said, error


def assert_all_agree(stream: Stream, chunks: Sequence[bytes]) -> None:
    """The compiled and interpreted boundary framers and the event framer agree on ``chunks``."""
    for every_piece in (False, True):
        interpreted = boundaries_said(INTERPRETED, stream, chunks, every_piece)
        if COMPILED is not None:
            assert boundaries_said(COMPILED, stream, chunks, every_piece) == interpreted
        if every_piece:
            assert events_said(stream, chunks) == interpreted
        framed = b"".join(bytes(said[0]) for said in interpreted[0])  # type: ignore[call-overload]
        assert b"".join(chunks).startswith(framed)


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at ``points`` (taken modulo its length; empty chunks kept)."""
    cuts = sorted(point % (len(data) + 1) for point in points)
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)])]


def in_stream_order(said: Said) -> tuple[bytes, list[int], list[object], tuple[type, str] | None]:
    """What was framed, over all chunks: the bytes, the marks with offsets into them, the messages, the error."""
    framed = b""
    marks: list[int] = []
    messages: list[object] = []
    for chunk_framed, chunk_marks, chunk_messages in said[0]:
        assert isinstance(chunk_framed, bytes) and isinstance(chunk_marks, list) and isinstance(chunk_messages, list)
        for at in range(0, len(chunk_marks), 3):
            marks += (chunk_marks[at], chunk_marks[at + 1] + len(framed), chunk_marks[at + 2] + len(framed))
        framed += chunk_framed
        messages += chunk_messages
    return framed, marks, messages, said[1]
