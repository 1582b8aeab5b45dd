"""The seam between a live session and its recording: what a session needs of its journal.

A desktop session knows its recording only through these two protocols. The gateway's
:class:`~gateway.recording_service.RecordingService` is the real implementation (a
fail-closed journal on disk, sealed, indexed and rendered at the end). ``create_app``
takes a :data:`RecordingsFactory`, so tests and the bench hand it another one (for
instance one that discards everything) instead of patching the application.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config
from gateway.policy import Policy
from gateway.rfb.input_presses import InputKind
from gateway.rfb.messages import ServerInit
from gateway.sessions import LiveSession
from recorder.errors import RecordingWriteFailed
from recorder.index import RecordingIndex
from recorder.records import TerminalSize


class SessionJournal(Protocol):
    """The recording of one live session, appended to on the event loop (every call is O(size of data))."""

    @property
    def recording_id(self) -> str: ...

    @property
    def failure(self) -> asyncio.Future[RecordingWriteFailed]:
        """Completes when the journal can no longer be written: the session must end, fail-closed."""
        ...

    def server_data(self, data: bytes | bytearray | memoryview) -> None:
        """Target→browser bytes exactly as forwarded."""

    def client_data(self, data: bytes | bytearray | memoryview) -> None:
        """Browser→target bytes exactly as forwarded (after the policy filter)."""

    def input_counted(self, kind: InputKind, count: int = 1) -> None:
        """Input left out of the client data (``record_input: counts``), only counted."""

    def event(self, type: str, **fields: Any) -> None:
        """Something that happened in the session, for the player's timeline and search."""

    async def backpressure(self) -> None:
        """Wait while the journal holds too much in memory (returns at once after a failure)."""


class SessionRecordings(Protocol):
    """Opens a journal for each session before it starts, and finishes it when it ends."""

    async def start(self, live: LiveSession, screen: ServerInit | TerminalSize, policy: Policy) -> SessionJournal:
        """The session's journal; raises :class:`~recorder.errors.RecordingUnavailable` (fail-closed) otherwise.

        ``screen`` is a desktop's ServerInit, or a terminal's size in cells (``live.protocol`` "ssh").
        """
        ...

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        """Close the journal with the session's end ``reason``; never raises for I/O."""


@dataclass(frozen=True, slots=True)
class RecordingContext:
    """What a gateway's recordings are built from at start-up, once the database is open."""

    config: Config
    metrics: Metrics
    index: RecordingIndex
    audit: AuditLog


#: How ``create_app`` gets its recordings: called at start-up, and entered for as long as the gateway runs
#: (the context manager's exit waits for work under way and releases what the recordings hold).
RecordingsFactory = Callable[[RecordingContext], AbstractAsyncContextManager[SessionRecordings]]
