"""Journal → video: replay a session's RFB streams into a framebuffer and encode what the browser saw.

The server's bytes go through the same framer as in the proxy, then through the
decoders; the client's bytes are followed for what changes the server's stream
(SetPixelFormat, SetEncodings) and for the pointer, where the Cursor
pseudo-encoding's shape is drawn. A frame is emitted when an update is complete,
at the journal's time for it: variable frame rate, so an idle minute costs no
frame, and updates closer than ``1 / max_fps`` are coalesced into the latest
(:data:`DEFAULT_MAX_FPS` by default: a video is for watching what happened; the journal
keeps every update and stays the complete evidence).

H.264 in MP4 keeps one size for the whole video: after a resize the desktop is
letterboxed into the size it started with (scaled down if it grew, centred on black).

A *clip* is ``start`` to ``end`` seconds of a session: everything before ``start`` is
replayed (the desktop must be rebuilt) but not encoded, and the video's time 0 is ``start``.
A render may also write a *poster*: the first picture with content (not all one colour) as a
JPEG, which the player shows before playing instead of the session's black first frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.rfb.errors import RFBError
from gateway.rfb.framing import (
    MAX_FRAMEBUFFER,
    ClientMessageFramer,
    ClientMessageReceived,
    DesktopResized,
    ProtocolFailed,
    RectangleReceived,
    ServerMessageFramer,
    ServerMessageReceived,
    UpdateBegin,
    UpdateEnd,
    check_framebuffer_size,
)
from gateway.rfb.messages import (
    PointerEvent,
    SetColourMapEntries,
    SetEncodings,
    SetPixelFormat,
)
from recorder.decoders import DecoderState, composite_cursor, decode_rectangle
from recorder.errors import DecodeError
from recorder.framebuffer import Framebuffer, RGBArray
from recorder.journal import JournalReader, JournalRecord, RecordKind
from recorder.masking import TimedMask, apply_timed_masks
from recorder.records import SessionHeader
from recorder.video import VideoEncoder, write_jpeg

log = logging.getLogger(__name__)
#: Frames per second at most in a video (``storage.export_fps``; ``deskgate recordings render``): screen work at 10
#: frames a second reads as it happened, and costs half the encoding of 30 (see bench/README.md).
DEFAULT_MAX_FPS = 10
#: Seconds between keyframes at most: what a seek decodes at worst (at most 300 frames at 10 frames a
#: second, far fewer on a quiet screen). A keyframe of a 1280x800 desktop is about 100 KB: every 10 s, that
#: alone was 36 MB an hour; every 30 s it is 12.
DEFAULT_KEYFRAME_INTERVAL = 30.0


@dataclass(frozen=True, slots=True, eq=False)
class RenderResult:
    """What a render produced; ``error`` says why decoding stopped early (the video is still playable)."""

    frames: int
    duration: float  # seconds of session the video covers
    wall_seconds: float
    realtime_factor: float  # duration / wall_seconds
    cpu_seconds: float  # this process's CPU time while it rendered (a render worker renders one at a time)
    output: Path
    last_frame: RGBArray  # the last frame encoded, at the desktop's size, cursor drawn
    error: str | None = None
    poster: Path | None = None  # the poster written, if one was asked for


class SessionReplay:
    """A session's desktop rebuilt from its journal records, in order."""

    def __init__(self, header: SessionHeader) -> None:
        """Start from the journal header's size and pixel format; DecodeError if the size is unusable."""
        width, height, pixel_format = header.width, header.height, header.pixel_format
        if pixel_format is None:
            raise DecodeError("a terminal recording has no desktop to render; play it as text (asciicast)")
        try:
            check_framebuffer_size(width, height, MAX_FRAMEBUFFER)
        except RFBError as exc:
            raise DecodeError(f"the journal header has no usable desktop size: {exc}") from exc
        self.framebuffer = Framebuffer(width, height)
        self.decoder_state = DecoderState(pixel_format)
        self.pointer: tuple[int, int] | None = None
        self._picture: RGBArray | None = None  # the last picture with the cursor drawn, kept for the next one
        self.updating = False  # between an UpdateBegin and its UpdateEnd: the picture is half painted
        self._server = ServerMessageFramer(pixel_format, width, height, max_framebuffer=MAX_FRAMEBUFFER)
        self._client = ClientMessageFramer()

    def apply(self, record: JournalRecord) -> bool:
        """Replay one record; True if the picture changed (an update completed, or the drawn cursor moved)."""
        if record.kind == RecordKind.SERVER_DATA:
            return self._apply_server_data(record.payload)
        if record.kind == RecordKind.CLIENT_DATA:
            return self._apply_client_data(record.payload)
        return False

    def frame(self) -> RGBArray:
        """The picture now: the framebuffer with the cursor drawn at the pointer, if both are known.

        Either array is valid until the next record is applied or the next picture is taken.
        """
        pixels = self.framebuffer.pixels
        if self.pointer is None or self.decoder_state.cursor is None:
            return pixels
        if self._picture is None or self._picture.shape != pixels.shape:
            self._picture = np.empty_like(pixels)
        return composite_cursor(pixels, self.decoder_state, *self.pointer, out=self._picture)

    def _apply_server_data(self, data: bytes) -> bool:
        self._server.receive_data(data)
        changed = False
        for event in self._server.events_received():
            if isinstance(event, RectangleReceived):
                decode_rectangle(self.decoder_state, self.framebuffer, event.rect, event.payload)
            elif isinstance(event, UpdateBegin):
                self.updating = True
            elif isinstance(event, UpdateEnd):
                self.updating = False
                changed = True
            elif isinstance(event, ServerMessageReceived):
                if isinstance(event.message, SetColourMapEntries):
                    self.decoder_state.set_colour_map_entries(event.message.first_colour, event.message.colours)
            elif isinstance(event, ProtocolFailed):
                raise DecodeError(f"the desktop's stream breaks the protocol: {event.error}")
            else:
                assert isinstance(event, DesktopResized)  # the decoder resized the framebuffer already
        return changed

    def _apply_client_data(self, data: bytes) -> bool:
        self._client.receive_data(data)
        changed = False
        for event in self._client.events_received():
            if isinstance(event, ProtocolFailed):
                raise DecodeError(f"the browser's stream breaks the protocol: {event.error}")
            assert isinstance(event, ClientMessageReceived)
            message = event.message
            # The proxy switches its server framer as it reads these: do the same, in the same order.
            if isinstance(message, SetPixelFormat):
                self._server.set_pixel_format(message.pixel_format)
                self.decoder_state.pixel_format = message.pixel_format
            elif isinstance(message, SetEncodings):
                self._server.set_encodings(message.encodings)
            elif isinstance(message, PointerEvent) and (message.x, message.y) != self.pointer:
                self.pointer = (message.x, message.y)
                changed = changed or self.decoder_state.cursor is not None
        return changed


class _FrameClock:
    """Emits frames at variable rate, never closer than ``min_interval``: the latest picture wins.

    With ``find_poster`` it keeps a copy of the first frame with content, as ``poster``. Every frame
    is taken through :meth:`_picture`, which applies the ``masks`` active at its time in the session
    (video time + ``offset``, the clip's start).
    """

    def __init__(self, encoder: VideoEncoder, replay: SessionReplay, min_interval: float,
                 find_poster: bool = False, masks: Sequence[TimedMask] = (), offset: float = 0.0) -> None:
        self.encoder = encoder
        self._replay = replay
        self._min_interval = min_interval
        self._pending = False
        self._find_poster = find_poster
        self._masks = masks
        self._offset = offset
        self._scaled_warned: set[tuple[int, int]] = set()
        self.poster: RGBArray | None = None
        self.last_frame: RGBArray = self._picture(0.0)
        self._emit(0.0)  # the video starts with the session (or clip), so video time is journal time

    def changed(self, t: float) -> None:
        """The picture changed at ``t``: show it now, or as soon as the interval allows."""
        if self._next_slot() <= t:
            self._emit(t)
        else:
            self._pending = True

    def advance(self, t: float) -> None:
        """Time is now ``t``: show a coalesced picture whose slot has come, unless it is half painted."""
        if self._pending and self._next_slot() <= t and not self._replay.updating:
            self._emit(self._next_slot())

    def finish(self, end: float) -> None:
        """Show the last coalesced picture, and hold the last frame until ``end``."""
        if self._pending:
            self._emit(self._next_slot())
        if self._last_time() + 0.001 <= end:
            self.encoder.add_frame(self.last_frame, end)

    def _last_time(self) -> float:
        assert self.encoder.last_time is not None
        return self.encoder.last_time

    def _next_slot(self) -> float:
        return self._last_time() + self._min_interval

    def _emit(self, t: float) -> None:
        self._pending = False
        self.last_frame = self._picture(t)
        self.encoder.add_frame(self.last_frame, t)
        if self._find_poster and self.poster is None and _has_content(self.last_frame):
            self.poster = self.last_frame.copy()


    def _picture(self, t: float) -> RGBArray:
        """The picture now, with the masks active at video time ``t``; the journal's pixels stay as they were."""
        frame = self._replay.frame()
        if not self._masks:
            return frame
        size = (int(frame.shape[1]), int(frame.shape[0]))
        for mask in self._masks:
            if mask.desktop is not None and mask.desktop != size and mask.desktop not in self._scaled_warned:
                self._scaled_warned.add(mask.desktop)
                log.warning("masks drawn for another desktop size are scaled to the recording's",
                            extra={"ctx": {"mask_desktop": "%dx%d" % mask.desktop, "desktop": "%dx%d" % size}})
        return apply_timed_masks(frame, self._masks, t + self._offset)


def _has_content(frame: RGBArray) -> bool:
    """Not all one colour: the desktop has painted something."""
    return bool((frame != frame[0, 0]).any())


def render_journal(
    journal: Path,
    output: Path,
    *,
    progress: Callable[[float], None] | None = None,
    max_fps: float = DEFAULT_MAX_FPS,
    keyframe_interval: float = DEFAULT_KEYFRAME_INTERVAL,
    start: float = 0.0,
    end: float | None = None,
    poster: Path | None = None,
    masks: Sequence[TimedMask] = (),
) -> RenderResult:
    """Render a journal, or ``start`` to ``end`` seconds of it, to an H.264 MP4 at ``output``.

    ``progress`` gets the fraction done: of the journal's bytes read, or for a clip (``end``
    given) of the way to ``end``. ``poster``: also write the first picture with content there
    as a JPEG (the last picture if none has any). ``masks``: regions hidden in every frame and the
    poster while they are active (seconds of the session; see :mod:`recorder.masking`).

    Malformed data (a protocol violation, an undecodable rectangle) ends decoding:
    the video made so far is finished cleanly and ``RenderResult.error`` says what
    and where. A journal that cannot be opened or whose header is malformed
    (JournalCorrupt, OSError), or whose desktop size is unusable (DecodeError),
    raises before any video is written.
    """
    if not 0 < max_fps <= 1000:
        raise ValueError(f"max_fps must be in (0, 1000], not {max_fps}")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"a clip must start at 0 s or later and end after it starts, not {start} to {end}")
    started, cpu_started = time.perf_counter(), time.process_time()
    reader = JournalReader(journal)
    journal_size = max(journal.stat().st_size, 1)
    replay = SessionReplay(SessionHeader.from_json(reader.header))
    report = _ProgressReporter(progress)
    error: str | None = None
    t = start
    with ExitStack() as stack:

        def start_clock() -> _FrameClock:
            """The video begins: at the desktop's size now, with the picture now as its first frame."""
            encoder = stack.enter_context(VideoEncoder(output, replay.framebuffer.width, replay.framebuffer.height,
                                                       keyframe_interval=keyframe_interval))
            return _FrameClock(encoder, replay, 1.0 / max_fps, find_poster=poster is not None, masks=masks,
                               offset=start)

        clock: _FrameClock | None = None
        try:
            for record in reader:
                t = record.offset_us / 1e6
                if end is not None and t > end:
                    break
                if clock is None and t >= start:
                    clock = start_clock()
                if clock is not None:
                    clock.advance(t - start)
                if replay.apply(record) and clock is not None:
                    clock.changed(t - start)
                report(record.position / journal_size if end is None else t / end)
            stop = max(t, reader.last_offset_us / 1e6) if end is None else end
        except DecodeError as exc:
            error = f"{journal.name}: decoding stopped at {t:.3f} s (journal byte {record.position}): {exc}"
            stop = t
        if clock is None:  # no record at or after ``start``
            clock = start_clock()
        clock.finish(stop - start)
        encoder = clock.encoder
    if poster is not None:
        write_jpeg(clock.poster if clock.poster is not None else clock.last_frame, poster)
    report(1.0)
    wall_seconds = time.perf_counter() - started
    duration = encoder.last_time or 0.0
    return RenderResult(
        frames=encoder.frames,
        duration=duration,
        wall_seconds=wall_seconds,
        realtime_factor=duration / wall_seconds if wall_seconds > 0 else float("inf"),
        cpu_seconds=time.process_time() - cpu_started,
        output=output,
        last_frame=clock.last_frame,
        error=error,
        poster=poster,
    )


class _ProgressReporter:
    """Calls ``progress(fraction)`` when the fraction done grows by a thousandth or more."""

    def __init__(self, progress: Callable[[float], None] | None) -> None:
        self._progress = progress
        self._reported = -1

    def __call__(self, fraction: float) -> None:
        if self._progress is None:
            return
        permille = min(1000, int(fraction * 1000))
        if permille > self._reported:
            self._reported = permille
            self._progress(permille / 1000)
