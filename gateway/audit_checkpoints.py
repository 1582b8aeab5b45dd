"""Checkpoints of the audit chain's head, kept outside the database: what makes a cut tail visible.

The hash chain (:mod:`gateway.audit`) shows that no event was edited, inserted or removed
*between* two others, but not that the newest ones are still there: dropping the tail leaves
a shorter chain that is just as valid. A checkpoint records the head at a moment (its event
id, its hash, the number of events up to it) and is authenticated with HMAC-SHA256 under a
key kept in a file, outside the database. Whoever can change the database but cannot read
that key can neither forge a checkpoint nor make a shortened or rolled-back chain match one.
The head hash covers every event before it, so one matching checkpoint vouches for them all.

Each node appends its checkpoints to its own file, ``<checkpoint_dir>/<node>.checkpoints``
(append-only, fsync'd), so nodes sharing a database never write the same file, and logs them.
A checkpoint is one token, the same in the file and in the log, so that ``deskgate audit
verify --checkpoints FILE`` can check the chain against tokens found in any text, such as a
log export::

    dgcp1:<node>:<time, YYYYMMDDTHHMMSSZ>:<head id>:<count>:<head hash>:<key id>:<mac>

``mac`` is the HMAC (hex) of everything before ``:<mac>``; ``key id`` names the key it was
made with, so that a checkpoint from another key file is reported as that, not as forgery.
An empty chain has head id 0 and the genesis hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recorder.journal import fsync_directory

TOKEN_VERSION = "dgcp1"
FILE_SUFFIX = ".checkpoints"
#: Node names: safe as a file name and inside a token.
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_TOKEN = re.compile(rf"{TOKEN_VERSION}:(?P<node>{NODE_NAME.pattern}):(?P<time>\d{{8}}T\d{{6}}Z):"
                    r"(?P<head_id>0|[1-9]\d{0,18}):(?P<count>0|[1-9]\d{0,18}):(?P<head_hash>[0-9a-f]{64}):"
                    r"(?P<key_id>[0-9a-f]{16}):(?P<mac>[0-9a-f]{64})")
#: Anything that starts like a token, up to the next blank or quote: checked as one.
_CANDIDATE = re.compile(rf"{TOKEN_VERSION}:[^\s\"']*")
_TAIL_BYTES = 4096  # more than one token line: where a node finds its own last checkpoint


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's head as one node saw it at ``time``: event ``head_id`` (hash ``head_hash``), ``count`` events."""

    node: str
    time: datetime
    head_id: int
    count: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class FoundCheckpoint:
    """A checkpoint that passed its HMAC, and where it was read (``file:line``)."""

    checkpoint: Checkpoint
    where: str


@dataclass(frozen=True, slots=True)
class CheckpointReading:
    """What the checkpoint files held: the authentic checkpoints, and why others were rejected."""

    found: tuple[FoundCheckpoint, ...]
    rejected: tuple[str, ...]  # "file:line: why", one per token that is not authentic
    torn: tuple[str, ...]  # "file:line" of a last line cut short by a crash while it was written


class CheckpointKey:
    """Signs checkpoints into tokens and opens tokens back into checkpoints."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.key_id = hmac.new(key, b"deskgate audit checkpoint key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, checkpoint: Checkpoint) -> str:
        body = (f"{TOKEN_VERSION}:{checkpoint.node}:{checkpoint.time.astimezone(UTC).strftime(_TIME_FORMAT)}:"
                f"{checkpoint.head_id}:{checkpoint.count}:{checkpoint.head_hash}:{self.key_id}")
        return f"{body}:{self._mac(body)}"

    def open(self, token: str) -> Checkpoint:
        """The checkpoint in ``token``; ValueError says why it is not an authentic one."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ValueError("is not a well-formed checkpoint")
        body, _, mac = token.rpartition(":")
        if match["key_id"] != self.key_id:
            raise ValueError(f"was made with key {match['key_id']}, but the key file holds key {self.key_id}: "
                             "give this command the key file of the gateway nodes, or the checkpoint is forged")
        if not hmac.compare_digest(self._mac(body), mac):
            raise ValueError("has a wrong HMAC: the checkpoint was forged or altered")
        try:
            moment = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError("has an impossible time") from None
        count, head_id = int(match["count"]), int(match["head_id"])
        if (head_id == 0) != (count == 0) or count > head_id:  # ids start at 1 and only grow
            raise ValueError("has a count that does not fit its head id")
        return Checkpoint(match["node"], moment, head_id, count, match["head_hash"])

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def checkpoint_file(directory: Path, node: str) -> Path:
    """The file where ``node`` appends its checkpoints."""
    return directory / f"{node}{FILE_SUFFIX}"


def append_checkpoint(path: Path, token: str) -> None:
    """Append one token line to ``path`` (created 0600, its directory 0700) and make it durable."""
    created = not path.exists()
    if created:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        line = f"{token}\n".encode()
        if os.write(fd, line) != len(line):
            raise OSError(f"{path}: short write of an audit checkpoint")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


def last_checkpoint(path: Path, key: CheckpointKey) -> Checkpoint | None:
    """The newest authentic checkpoint at the end of ``path``; None if there is none (or no file)."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            return key.open(line.strip())
        except ValueError:
            continue
    return None


def read_checkpoints(key: CheckpointKey, files: Iterable[Path]) -> CheckpointReading:
    """Every checkpoint token in ``files`` (checkpoint files, or logs that contain tokens), checked."""
    found: list[FoundCheckpoint] = []
    rejected: list[str] = []
    torn: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            for candidate in _CANDIDATE.findall(line):
                where = f"{path}:{number}"
                try:
                    found.append(FoundCheckpoint(key.open(candidate), where))
                except ValueError as error:
                    if number == len(lines) and not text.endswith("\n") and not _TOKEN.fullmatch(candidate):
                        torn.append(where)
                    else:
                        rejected.append(f"{where}: checkpoint {error}")
    return CheckpointReading(tuple(found), tuple(rejected), tuple(torn))


def checkpoint_files(directory: Path) -> list[Path]:
    """The checkpoint files of every node in ``directory``, by name; none if it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.name.endswith(FILE_SUFFIX) and path.is_file())
