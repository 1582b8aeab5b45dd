"""A native SSH client's session channel as the operator's side of a terminal session.

:class:`SshChannelTerminal` is both the asyncssh server session (the callbacks asyncssh calls:
PTY request, shell, data, window changes, flow control) and the
:class:`~gateway.terminal.OperatorTerminal` a :class:`~gateway.terminal.TerminalSession` runs on:
``receive`` yields the client's keystrokes and window changes, ``send`` writes the target's output
(waiting while the client's window is full), ``close`` writes the end's reason as a line and
closes the channel. Before the session, :meth:`read_line` reads a line with echo and backspace
(the target menu) and :meth:`write_line` writes one (messages, notices).

Only a shell is served: an exec request (``ssh host command``) and every subsystem (``sftp``)
are refused and reported. Backpressure: the client's input waits in a queue of at most
``max_buffered`` bytes; past that asyncssh stops reading the channel (the client's window closes)
until the session takes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import asyncssh

from gateway.session_watch import CloseCode, SessionEnded
from gateway.terminal_messages import DEFAULT_SIZE, MAX_CELLS, TerminalInput, TerminalMessage, TerminalResize
from recorder.records import TerminalSize

#: Client input buffered before the channel stops reading.
MAX_BUFFERED = 64 * 1024
#: The longest line :meth:`SshChannelTerminal.read_line` takes (a menu choice).
MAX_LINE = 128
#: Ends a line, cancels, erases a character (the client's terminal is raw: the gateway echoes).
ENTER, CANCEL, ERASE = frozenset(b"\r\n"), frozenset(b"\x03\x04"), frozenset(b"\x7f\x08")

#: Told what the client asked for that is refused here: the kind ("exec", "subsystem") and its detail.
RefusalReport = Callable[[str, str], None]
#: Called once the client's shell request was accepted: the gateway's side of the session starts.
SessionStart = Callable[["SshChannelTerminal"], None]


def terminal_size(cols: int, rows: int) -> TerminalSize:
    """The client's PTY size within 1-MAX_CELLS; 0 (unknown) is the default size's."""
    return TerminalSize(min(cols or DEFAULT_SIZE.cols, MAX_CELLS), min(rows or DEFAULT_SIZE.rows, MAX_CELLS))


class SshChannelTerminal(asyncssh.SSHServerSession[bytes]):
    """One session channel of a native SSH client (see the module docstring)."""

    def __init__(self, on_start: SessionStart, report_refusal: RefusalReport,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self._on_start = on_start
        self._report_refusal = report_refusal
        self._max_buffered = max_buffered
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None
        self._inbox: deque[TerminalMessage] = deque()
        self._buffered = 0
        self._paused = False
        self._arrived = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed: str | None = None  # why the client's side ended, once it did
        self._size_told = False
        self.size = DEFAULT_SIZE
        self.environment: dict[str, str] = {}

    # -- asyncssh callbacks -------------------------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object) -> bool:
        self.size = terminal_size(term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._report_refusal("exec", command[:200])
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        self._report_refusal("subsystem", subsystem[:64])
        return False

    def session_started(self) -> None:
        assert self._channel is not None
        self.environment = {str(key): str(value) for key, value in self._channel.get_environment().items()}
        self._on_start(self)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._queue(TerminalInput(bytes(data)))
        self._buffered += len(data)
        if self._buffered > self._max_buffered and not self._paused and self._channel is not None:
            self._paused = True
            self._channel.pause_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = terminal_size(width, height)
        self._queue(TerminalResize(self.size))

    def eof_received(self) -> bool:
        self._end("the SSH client closed its input")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("the SSH client closed the session" if exc is None else f"the SSH connection failed: {exc}")
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- the operator's terminal ----------------------------------------------------------------------------

    async def receive(self) -> TerminalMessage:
        """The client's next input or window change (its PTY size first); SessionEnded once its side closed."""
        if not self._size_told:
            self._size_told = True
            return TerminalResize(self.size)
        return await self._next()

    async def _next(self) -> TerminalMessage:
        while not self._inbox:
            if self._closed is not None:
                raise SessionEnded(CloseCode.NORMAL, self._closed)
            self._arrived.clear()
            await self._arrived.wait()
        message = self._inbox.popleft()
        if isinstance(message, TerminalInput):
            self._buffered -= len(message.data)
            if self._paused and self._buffered <= self._max_buffered // 2 and self._channel is not None:
                self._paused = False
                self._channel.resume_reading()
        return message

    async def send(self, data: bytes) -> None:
        """Write the target's output; returns once the client's window takes more."""
        if self._closed is not None or self._channel is None:
            raise SessionEnded(CloseCode.NORMAL, self._closed or "the SSH client closed the session")
        self._channel.write(data)
        await self._writable.wait()

    async def close(self, ended: SessionEnded) -> None:
        """Write how the session ended and close the channel (exit status 0 when the target's shell ended it)."""
        if self._channel is None or self._closed is not None:
            return
        if ended.reason:
            self.write_line(ended.reason)
        self._channel.exit(0 if ended.code in (CloseCode.NORMAL, CloseCode.TARGET_CLOSED) else 1)

    def write_line(self, text: str) -> None:
        """A line from the gateway, on a line of its own."""
        if self._channel is not None and self._closed is None:
            self._channel.write(f"\r\n[deskgate] {text}\r\n".encode())

    async def read_line(self, prompt: str) -> str | None:
        """A line the person types, echoed (backspace erases); None when they cancel (Ctrl-C, Ctrl-D) or leave."""
        assert self._channel is not None
        self._channel.write(prompt.encode())
        line = bytearray()
        while True:
            try:
                message = await self._next()
            except SessionEnded:
                return None
            if not isinstance(message, TerminalInput):
                continue
            for byte in message.data:
                if byte in ENTER:
                    self._channel.write(b"\r\n")
                    return line.decode("utf-8", "replace").strip()
                if byte in CANCEL:
                    self._channel.write(b"\r\n")
                    return None
                if byte in ERASE:
                    if line:
                        while line and line.pop() & 0xC0 == 0x80:  # a whole UTF-8 character
                            pass
                        self._channel.write(b"\b \b")
                elif byte >= 0x20 and len(line) < MAX_LINE:
                    line.append(byte)
                    self._channel.write(bytes([byte]))

    def _queue(self, message: TerminalMessage) -> None:
        self._inbox.append(message)
        self._arrived.set()

    def _end(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        self._arrived.set()
