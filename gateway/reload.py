"""Hot reload of the configuration: what a reload may change, and how ``deskgate config reload`` asks for one.

A reload applies at once what the gateway reads per request or per connection: ``targets``
(their password files are read again), ``policies`` (``hours`` included), ``masks`` (for new
sessions and live views; a recording keeps the masks it started with) and ``network`` (the
allow list, trusted proxies and connection limits, for new connections). What is built once at
start-up needs a restart: the listeners (``listen``, ``tls``), authentication (``auth``: the
backends, TOTP, web-session timeouts), ``storage`` and ``audit``. A change there is reported
(log and audit) and the running gateway keeps the value it started with (:func:`merge`).

The channel: ``deskgate serve`` writes its process id to ``storage.pid_file``; ``deskgate
config reload`` sends that process SIGHUP (so only someone who may signal the gateway's
process — its user or root — can ask) and waits for the answer the gateway writes after every
reload, whatever started it, to the status file beside it (:func:`status_path`). Nothing
listens on the network for it. Each node of a cluster has its own pid file and watches its own
copy of the configuration file; the command reloads the node on the machine it runs on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError

#: Sections a reload applies; every other section needs a restart.
RELOADABLE = ("targets", "policies", "network", "ui", "live_view", "masks")
RESTART_ONLY = ("listen", "tls", "auth", "storage", "audit", "ocr", "pii")


class ReloadUnanswered(GatewayError):
    """``deskgate config reload`` found no gateway to ask, or got no answer in time."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload did: ``result`` ok or error, the sections it ``changed`` and those ``kept`` until a restart."""

    trigger: str  # signal (SIGHUP, deskgate config reload) or file (the config file changed)
    started: float  # epoch seconds
    result: str
    changed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    error: str | None = None
    sessions_ended: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReloadOutcome:
        data: dict[str, Any] = json.loads(text)
        return cls(trigger=str(data["trigger"]), started=float(data["started"]), result=str(data["result"]),
                   changed=tuple(data["changed"]), kept=tuple(data["kept"]), error=data["error"],
                   sessions_ended=int(data["sessions_ended"]))

    def describe(self) -> str:
        """One paragraph for people: the error, or what changed, what waits for a restart and what ended."""
        if self.result != "ok":
            return f"reload refused, the previous configuration stays in force:\n{self.error}"
        lines = [f"reloaded: {', '.join(self.changed) if self.changed else 'nothing changed'}"]
        if self.kept:
            lines.append(f"needs a restart (old values kept): {', '.join(self.kept)}")
        if self.sessions_ended:
            lines.append(f"sessions ended because access changed: {self.sessions_ended}")
        return "\n".join(lines)


def merge(running: Config, loaded: Config) -> tuple[Config, tuple[str, ...], tuple[str, ...]]:
    """``loaded`` with the restart-only sections of ``running``; with the sections applied and those kept."""
    changed = tuple(name for name in RELOADABLE if getattr(running, name) != getattr(loaded, name))
    kept = tuple(name for name in RESTART_ONLY if getattr(running, name) != getattr(loaded, name))
    assert {field.name for field in fields(Config)} == {"path", *RELOADABLE, *RESTART_ONLY}
    return replace(loaded, **{name: getattr(running, name) for name in RESTART_ONLY}), changed, kept


def file_signature(path: Path) -> bytes | None:
    """A digest of ``path``'s content (None while it cannot be read): a change of it is a change of the file."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def status_path(pid_file: Path) -> Path:
    """Where the gateway writes the outcome of its last reload: ``deskgate.reload.json`` beside the pid file."""
    return pid_file.with_suffix(".reload.json")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def write_pid_file(path: Path) -> None:
    write_atomically(path, f"{os.getpid()}\n")


def remove_pid_file(path: Path) -> None:
    """Remove ``path`` if it still names this process (a newer gateway may have taken it over)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def request_reload(pid_file: Path, timeout: float = 15.0, poll: float = 0.1) -> ReloadOutcome:
    """Ask the gateway whose id is in ``pid_file`` to reload, and return its answer (blocking)."""
    pid = _running_gateway(pid_file)
    asked = time.time()
    os.kill(pid, signal.SIGHUP)
    status = status_path(pid_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            outcome = ReloadOutcome.from_json(status.read_text())
            if outcome.started >= asked:
                return outcome
        time.sleep(poll)
    raise ReloadUnanswered(f"the gateway (process {pid}) did not answer within {timeout:.0f} s; "
                           "see its log for the reload's outcome")


def _running_gateway(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        raise ReloadUnanswered(f"{pid_file}: no pid file, so no gateway runs with this configuration here; "
                               "start one with deskgate serve (or pass --pid-file)") from None
    except ValueError:
        raise ReloadUnanswered(f"{pid_file}: not a process id; remove the file and restart the gateway") from None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        raise ReloadUnanswered(f"{pid_file}: process {pid} is not running (a stale pid file); "
                               "is the gateway stopped?") from None
    except OSError:
        return pid  # no /proc here: trust the file
    if b"deskgate" not in command and b"gateway.cli" not in command:
        raise ReloadUnanswered(f"{pid_file}: process {pid} is not a deskgate gateway (a stale pid file); "
                               "remove it and restart the gateway")
    return pid
