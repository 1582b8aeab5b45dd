"""`deskgate demo`: a real TigerVNC desktop on loopback, a demo user, and the gateway in front.

:class:`XvncDesktop` is also the VNC target of the functional tests: it starts Xvnc on a
free display and a free loopback port, optionally with a window manager and a terminal,
and tears every process down again.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from gateway.errors import GatewayError

DEFAULT_WORKDIR = Path("var/demo")
DEFAULT_PORT = 8080
DEMO_METRICS_LISTEN = "127.0.0.1:9108"
DEMO_USER = "demo"
DEMO_GROUP = "operators"
#: The demo's supervisor and administrator: watches the operators live, plays every recording, runs /admin.
DEMO_SUPERVISOR = "supervisor"
DEMO_SUPERVISOR_GROUP = "supervisors"
DEMO_TARGET = "desk-01"

_X11_SOCKET_DIR = Path("/tmp/.X11-unix")
_DISPLAY_NUMBERS = range(20, 200)
_START_ATTEMPTS = 3
_RFB_READY_TIMEOUT = 10.0
_WINDOW_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_POLL_INTERVAL = 0.02
# VNC authentication only uses the first 8 bytes of a password: generate exactly 8.
_VNC_PASSWORD_BYTES = 6
_FAMILY_WILD = 0xFFFF
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


_LOGIN_BANNER = """
deskgate demo: desktop {target} is Xvnc {display}
  URL:          http://127.0.0.1:{port}/
  recordings:   http://127.0.0.1:{port}/recordings (every session is recorded; you may replay your own)
  username:     {user}
  password:     {password}
  TOTP secret:  {secret}
  otpauth URI:  {uri}

Scan this with an authenticator app (or type the secret in):
{qr}"""

_SUPERVISOR_BANNER = """
Supervisor and administrator (live sessions, the wall, every recording, /admin):
  username:     {user}
  password:     {password}
  TOTP secret:  {secret}
  otpauth URI:  {uri}
{qr}
Config and data: {workdir}. Press Ctrl-C to stop.
"""


class DesktopError(GatewayError):
    """The demo desktop could not be started, or was used before start()."""


class XvncDesktop:
    """A TigerVNC Xvnc desktop on 127.0.0.1 with, by default, openbox and an xterm on it.

    VNC authentication is required when ``password`` is given (its plain text is kept in
    :attr:`password_file`, mode 0600, for the gateway's target), otherwise security type None.
    X clients are admitted with an MIT cookie kept in ``workdir/Xauthority`` (see :attr:`env`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        width: int = 1280,
        height: int = 800,
        depth: int = 24,
        password: str | None = None,
        window_manager: bool = True,
        terminal: bool = True,
        japanese: bool = False,
    ) -> None:
        self._workdir = Path(workdir)
        self._width = width
        self._height = height
        self._depth = depth
        self._password = password
        self._window_manager = window_manager
        self._terminal = terminal
        self._japanese = japanese  # a Japanese UTF-8 session with an input method (ibus-mozc), where installed
        self._display_number: int | None = None
        self._port: int | None = None
        self._xvnc: subprocess.Popen[bytes] | None = None
        self._clients: list[subprocess.Popen[bytes]] = []

    @property
    def display(self) -> str:
        """The X display, e.g. ``":20"``."""
        return f":{self._started()[0]}"

    @property
    def port(self) -> int:
        """The RFB port on 127.0.0.1."""
        return self._started()[1]

    @property
    def width(self) -> int:
        """The screen width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """The screen height in pixels."""
        return self._height

    @property
    def password_file(self) -> Path:
        """The plain-text VNC password (exists only when a password was given)."""
        return self._workdir / "desktop.pass"

    @property
    def env(self) -> dict[str, str]:
        """What an X client needs in its environment to reach this desktop."""
        return {"DISPLAY": self.display, "XAUTHORITY": str(self._xauthority_file)}

    @property
    def _xauthority_file(self) -> Path:
        return self._workdir / "Xauthority"

    def _started(self) -> tuple[int, int]:
        if self._display_number is None or self._port is None:
            raise DesktopError("the desktop is not running: call start() first")
        return self._display_number, self._port

    def start(self) -> None:
        """Start Xvnc, the terminal and the window manager; return once all are up."""
        if self._xvnc is not None:
            raise DesktopError("the desktop is already running")
        self._workdir.mkdir(parents=True, exist_ok=True)
        _write_private(self._xauthority_file, _xauthority_entry(secrets.token_bytes(16)))
        security = ["-SecurityTypes", "None"]
        if self._password is not None:
            _write_private(self.password_file, self._password.encode())
            obfuscated = self._workdir / "desktop.vncpasswd"
            _write_private(obfuscated, _vncpasswd_obfuscate(self._password))
            security = ["-SecurityTypes", "VncAuth", "-rfbauth", str(obfuscated)]
        try:
            self._start_xvnc(security)
            # The terminal first: a window mapped while openbox starts up can be lost, one
            # mapped before is adopted.
            if self._japanese and shutil.which("ibus-daemon"):
                self._start_input_method()
            windows = [self._start_terminal()] if self._terminal else []
            if self._window_manager:
                self._start_window_manager(windows)
        except BaseException:
            self.stop()
            raise

    def _start_xvnc(self, security: list[str]) -> None:
        # Another server may take the display or the port between our check and Xvnc's
        # bind; Xvnc then exits at once and we try the next free pair.
        for attempt in range(1, _START_ATTEMPTS + 1):
            display_number, port = _free_display_number(), _free_port()
            log_path = self._workdir / "Xvnc.log"
            command = [
                "Xvnc", f":{display_number}",
                "-rfbport", str(port), "-interface", "127.0.0.1", "-localhost",
                "-nolisten", "tcp", "-auth", str(self._xauthority_file),
                "-geometry", f"{self._width}x{self._height}", "-depth", str(self._depth),
                "-desktop", "deskgate demo", "-AlwaysShared", *security,
            ]  # fmt: skip
            self._xvnc = _popen(command, log_path, env=None)
            try:
                _wait_for_rfb(self._xvnc, port, log_path)
            except DesktopError:
                exited = self._xvnc.poll() is not None
                _terminate(self._xvnc)
                self._xvnc = None
                if exited and attempt < _START_ATTEMPTS:
                    continue
                raise
            self._display_number, self._port = display_number, port
            return

    def _start_terminal(self) -> int:
        """Start the xterm; return its window once it is visible."""
        xterm = self._spawn(
            ["xterm", "-u8", "-title", "deskgate demo", "-geometry", "100x30+20+20",
             "-fa", "DejaVu Sans Mono", "-fd", "Noto Sans Mono CJK JP", "-fs", "11"],
            "xterm",
        )  # fmt: skip
        self._clients.append(xterm)
        search = ["xdotool", "search", "--sync", "--onlyvisible", "--pid", str(xterm.pid)]
        try:
            found = self._run_x_client(search)
        except subprocess.TimeoutExpired:
            raise DesktopError(
                f"xterm's window did not appear on {self.display} within {_WINDOW_TIMEOUT:.0f} s; "
                f"xterm said: {_log_tail(self._workdir / 'xterm.log')}"
            ) from None
        return int(found.split()[0])

    def _start_input_method(self) -> None:
        """Start ibus (serving XIM, so xterm takes part) with Mozc as its engine; return once Mozc is on."""
        self._clients.append(self._spawn(["ibus-daemon", "--xim", "--replace", "--panel=disable"], "ibus"))
        deadline = time.monotonic() + _WINDOW_TIMEOUT
        while True:
            with contextlib.suppress(DesktopError):  # until the daemon answers (it exits 1 even when it worked)
                subprocess.run(["ibus", "engine", "mozc-jp"], env=self._client_env(), capture_output=True,
                               timeout=_WINDOW_TIMEOUT)
                if self._run_x_client(["ibus", "engine"]).strip() == b"mozc-jp":
                    return
            if time.monotonic() > deadline:
                raise DesktopError(
                    f"ibus did not start its Mozc engine within {_WINDOW_TIMEOUT:.0f} s; "
                    f"ibus said: {_log_tail(self._workdir / 'ibus.log')}"
                )
            time.sleep(0.2)

    def _start_window_manager(self, windows: list[int]) -> None:
        """Start openbox; return once it manages the screen and has adopted ``windows``."""
        self._clients.append(self._spawn(["openbox", "--sm-disable"], "openbox"))
        deadline = time.monotonic() + _WINDOW_TIMEOUT
        query = ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK", "_NET_CLIENT_LIST"]
        while True:
            properties = self._run_x_client(query).decode(errors="replace")
            words = properties.replace(",", " ").split()
            managed = {int(word, 16) for word in words if word.startswith("0x")}
            if "_NET_SUPPORTING_WM_CHECK(WINDOW)" in properties and managed.issuperset(windows):
                return
            if time.monotonic() > deadline:
                raise DesktopError(
                    f"openbox did not manage {self.display} within {_WINDOW_TIMEOUT:.0f} s; "
                    f"openbox said: {_log_tail(self._workdir / 'openbox.log')}"
                )
            time.sleep(_POLL_INTERVAL)

    def _run_x_client(self, command: list[str]) -> bytes:
        """Run an X client against this desktop; return its output (bounded in time)."""
        try:
            result = subprocess.run(
                command, env=self._client_env(), stdin=subprocess.DEVNULL,
                capture_output=True, timeout=_WINDOW_TIMEOUT,
            )  # fmt: skip
        except FileNotFoundError:
            raise DesktopError(f"{command[0]} is not installed: run `make deps`") from None
        if result.returncode != 0:
            raise DesktopError(
                f"{command[0]} failed with status {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        return result.stdout

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        return _popen(command, self._workdir / f"{name}.log", env=self._client_env())

    def _client_env(self) -> dict[str, str]:
        if not self._japanese:
            return {**os.environ, **self.env}
        # ja_JP.UTF-8 where `make deps` generated it, else C.UTF-8 (always there): UTF-8 either way.
        japanese = {"LANG": _japanese_locale(), "XMODIFIERS": "@im=ibus", "GTK_IM_MODULE": "ibus",
                    "QT_IM_MODULE": "ibus"}
        return {**os.environ, **self.env, **japanese}

    def stop(self) -> None:
        """Stop every process this desktop started (clients first) and remove stale locks."""
        processes = [*reversed(self._clients), *([self._xvnc] if self._xvnc else [])]
        own_groups = {process.pid for process in processes}
        descendants = _descendants(own_groups)
        # xterm's shell runs in a session of its own, outside our process groups, and xterm
        # may exit without reaping it: adopt such orphans meanwhile rather than leave them
        # to init, which may reap late or never.
        with _adopting_orphans():
            _signal_groups_of(descendants, signal.SIGHUP, sparing=own_groups)
            for process in processes:
                _terminate(process)
            survivors = _reap_until_gone(descendants)
            _signal_groups_of(survivors, signal.SIGKILL)
            _reap_until_gone(survivors)
        if self._xvnc is not None and self._display_number is not None:
            _remove_stale_lock(self._display_number, self._xvnc.pid)
        self._clients = []
        self._xvnc = None
        self._display_number = self._port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _popen(
    command: list[str], log_path: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    # A process group of its own, so stop() reaches whatever it forks.
    try:
        with log_path.open("wb") as log:
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
    except FileNotFoundError:
        raise DesktopError(f"{command[0]} is not installed: run `make deps`") from None


def _japanese_locale() -> str:
    """ja_JP.UTF-8 when the system has it, else C.UTF-8."""
    try:
        listed = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return "C.UTF-8"
    return "ja_JP.UTF-8" if any(name.lower() in ("ja_jp.utf8", "ja_jp.utf-8") for name in listed) else "C.UTF-8"


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def _xauthority_entry(cookie: bytes) -> bytes:
    """One Xauthority record valid for any host and display (family Wild, no number)."""
    fields = [b"", b"", b"MIT-MAGIC-COOKIE-1", cookie]
    return _FAMILY_WILD.to_bytes(2, "big") + b"".join(
        len(field).to_bytes(2, "big") + field for field in fields
    )


def _vncpasswd_obfuscate(password: str) -> bytes:
    try:
        result = subprocess.run(
            ["vncpasswd", "-f"], input=password.encode() + b"\n",
            capture_output=True, timeout=_WINDOW_TIMEOUT, check=True,
        )  # fmt: skip
    except FileNotFoundError:
        raise DesktopError("vncpasswd is not installed: run `make deps`") from None
    except subprocess.CalledProcessError as error:
        raise DesktopError(f"vncpasswd failed: {error.stderr.decode(errors='replace')}") from None
    return result.stdout


def _free_display_number() -> int:
    for number in _DISPLAY_NUMBERS:
        if not (_X11_SOCKET_DIR / f"X{number}").exists() and not _lock_path(number).exists():
            return number
    first, last = _DISPLAY_NUMBERS[0], _DISPLAY_NUMBERS[-1]
    raise DesktopError(f"no free X display between :{first} and :{last}")


def _lock_path(display_number: int) -> Path:
    return Path(f"/tmp/.X{display_number}-lock")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_rfb(xvnc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + _RFB_READY_TIMEOUT
    while True:
        if xvnc.poll() is not None:
            raise DesktopError(
                f"Xvnc exited with status {xvnc.returncode}: {_log_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
                greeting = connection.recv(12)
        except OSError:
            greeting = b""
        if greeting.startswith(b"RFB 003.0"):
            return
        if time.monotonic() > deadline:
            raise DesktopError(
                f"Xvnc did not answer RFB on 127.0.0.1:{port} within "
                f"{_RFB_READY_TIMEOUT:.0f} s: {_log_tail(log_path)}"
            )
        time.sleep(_POLL_INTERVAL)


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return "(no log)"
    return data.decode(errors="replace").strip() or "(empty log)"


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, SIGKILL it if still alive after a bounded wait; reap."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; anything left in its group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    raise DesktopError(f"process {process.pid} ({process.args!r}) survived SIGKILL")


def _descendants(roots: set[int]) -> set[int]:
    """Every live descendant of the given PIDs (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _signal_groups_of(
    pids: set[int], sig: signal.Signals, *, sparing: AbstractSet[int] = frozenset()
) -> None:
    """Send ``sig`` to the process group of each PID, except the groups in ``sparing``."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for group in groups - sparing:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)


def _reap_until_gone(pids: set[int]) -> set[int]:
    """Reap the adopted ones among ``pids`` until /proc lists none (bounded); return the rest."""
    deadline = time.monotonic() + _STOP_TIMEOUT
    remaining = set(pids)
    while True:
        for pid in remaining:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        remaining = {pid for pid in remaining if Path(f"/proc/{pid}").exists()}
        if not remaining or time.monotonic() > deadline:
            return remaining
        time.sleep(_POLL_INTERVAL)


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Make this process the subreaper of its descendants within the block (Linux prctl)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    previous = ctypes.c_int()
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER) failed")
    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        prctl(_PR_SET_CHILD_SUBREAPER, previous.value, 0, 0, 0)


def _remove_stale_lock(display_number: int, xvnc_pid: int) -> None:
    """Xvnc removes its lock and socket on SIGTERM; after SIGKILL they are left to us."""
    lock = _lock_path(display_number)
    try:
        owner = int(lock.read_text().strip())
    except (OSError, ValueError):
        return
    if owner == xvnc_pid:
        lock.unlink(missing_ok=True)
        (_X11_SOCKET_DIR / f"X{display_number}").unlink(missing_ok=True)


def demo_config(
    workdir: Path, port: int, desktop_port: int, password_file: Path
) -> dict[str, Any]:
    """The demo's deskgate.yaml, every path inside ``workdir`` (absolute)."""
    return {
        "listen": {"http": f"127.0.0.1:{port}", "metrics": DEMO_METRICS_LISTEN},
        "network": {"allow": ["127.0.0.0/8", "::1/128"], "trusted_proxies": []},
        "auth": {
            "local": {"users_file": str(workdir / "users.yaml")},
            "totp": {"required": True, "issuer": "deskgate"},
        },
        "storage": {
            "recordings": str(workdir / "recordings"),
            "database": f"sqlite:///{workdir / 'deskgate.db'}",
        },
        "targets": {
            DEMO_TARGET: {"protocol": "vnc", "host": "127.0.0.1", "port": desktop_port,
                          "password_file": str(password_file)},
        },
        "policies": [
            {"name": "operators", "groups": [DEMO_GROUP], "from": ["127.0.0.0/8", "::1/128"],
             "targets": ["desk-*"], "clipboard": "off", "idle_timeout": "15m",
             "recordings": "own"},  # the demo user may play back their own sessions
            {"name": "supervisors", "groups": [DEMO_SUPERVISOR_GROUP], "from": ["127.0.0.0/8", "::1/128"],
             "targets": ["desk-*"], "recordings": "all", "watch": [DEMO_GROUP]},
        ],
    }  # fmt: skip


def run_demo(args: argparse.Namespace) -> int:
    """Start the demo desktop, write its config and user, print how to log in, serve until stopped.

    ``args.workdir`` (default :data:`DEFAULT_WORKDIR`) holds everything the demo writes;
    ``args.port`` (default :data:`DEFAULT_PORT`) is the gateway's HTTP port on 127.0.0.1.
    """
    from auth.local import LocalUserStore
    from auth.totp import provisioning_uri, terminal_qr
    from gateway.config import load_config
    from gateway.web.app import run_gateway

    workdir = Path(args.workdir).resolve()
    port = int(args.port)
    workdir.mkdir(parents=True, exist_ok=True)
    desktop = XvncDesktop(workdir, password=secrets.token_urlsafe(_VNC_PASSWORD_BYTES), japanese=True)
    desktop.start()
    try:
        config_path = workdir / "deskgate.yaml"
        settings = demo_config(workdir, port, desktop.port, desktop.password_file)
        config_path.write_text(
            "# Written by `deskgate demo` on every run.\n"
            + yaml.safe_dump(settings, sort_keys=False)
        )
        config = load_config(config_path)
        password = secrets.token_urlsafe(12)
        users = LocalUserStore(Path(settings["auth"]["local"]["users_file"]))
        secret = users.add_user(DEMO_USER, password, [DEMO_GROUP], admin=False, replace=True)
        uri = provisioning_uri(secret, DEMO_USER, config.auth.totp.issuer)
        supervisor_password = secrets.token_urlsafe(12)
        supervisor_secret = users.add_user(DEMO_SUPERVISOR, supervisor_password, [DEMO_SUPERVISOR_GROUP],
                                           admin=True, replace=True)
        supervisor_uri = provisioning_uri(supervisor_secret, DEMO_SUPERVISOR, config.auth.totp.issuer)
        print(
            _LOGIN_BANNER.format(
                target=DEMO_TARGET, display=desktop.display, port=port, user=DEMO_USER,
                password=password, secret=secret, uri=uri, qr=terminal_qr(uri),
            )
            + _SUPERVISOR_BANNER.format(
                user=DEMO_SUPERVISOR, password=supervisor_password, secret=supervisor_secret, uri=supervisor_uri,
                qr=terminal_qr(supervisor_uri), workdir=workdir,
            ),
            flush=True,
        )  # fmt: skip
        run_gateway(config)
    finally:
        desktop.stop()
    return 0
