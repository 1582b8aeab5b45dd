"""The demo's Xvnc desktop: a real TigerVNC server, torn down without leaving a process behind."""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.demo import DesktopError, XvncDesktop, demo_config
from gateway.rfb.messages import SecurityType
from tests.xwd import take_screenshot

XWD_FILE_VERSION = 7
SOCKET_TIMEOUT = 5.0


def descendants_of_this_process() -> dict[int, str]:
    """PID → command name of every process below this one (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = [os.getpid()]
    while pending:
        for child in children.get(pending.pop(), []):
            try:
                found[child] = (Path("/proc") / str(child) / "comm").read_text().strip()
            except OSError:
                continue
            pending.append(child)
    return found


def read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def offered_security_types(port: int) -> list[int]:
    """Run the RFB 3.8 version exchange; return the security types the server offers."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as connection:
        assert read_exactly(connection, 12) == b"RFB 003.008\n"
        connection.sendall(b"RFB 003.008\n")
        count = read_exactly(connection, 1)[0]
        return list(read_exactly(connection, count))


def xwd_size(image: bytes) -> tuple[int, int]:
    """(width, height) from an XWD header (big-endian CARD32 fields)."""
    header_size, version, _format, _depth, width, height = struct.unpack(">6I", image[:24])
    assert version == XWD_FILE_VERSION
    assert header_size <= len(image)
    return width, height


@pytest.mark.functional
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("password", "with_clients", "security_type"),
    [("pa55word", True, SecurityType.VNC_AUTH), (None, False, SecurityType.NONE)],
    ids=["vnc-auth-with-openbox-and-xterm", "no-auth-bare"],
)
def test_desktop_serves_rfb_and_leaves_nothing_behind(
    tmp_path: Path, password: str | None, with_clients: bool, security_type: SecurityType
) -> None:
    desktop = XvncDesktop(
        tmp_path, width=640, height=480, password=password,
        window_manager=with_clients, terminal=with_clients,
    )  # fmt: skip
    # Other fixtures may run desktops of their own: only what this one starts counts.
    before = descendants_of_this_process()
    with desktop:
        lock_file = Path(f"/tmp/.X{desktop.display[1:]}-lock")
        assert lock_file.exists()
        assert offered_security_types(desktop.port) == [security_type]
        assert xwd_size(take_screenshot(desktop)) == (desktop.width, desktop.height) == (640, 480)
        processes = {
            pid: name for pid, name in descendants_of_this_process().items() if pid not in before
        }
        expected = {"Xvnc", "openbox", "xterm"} if with_clients else {"Xvnc"}
        assert expected <= set(processes.values())

    assert not lock_file.exists()
    survivors = {pid: name for pid, name in processes.items() if Path(f"/proc/{pid}").exists()}
    assert survivors == {}


@pytest.mark.functional
@pytest.mark.timeout(60)
def test_password_file_holds_the_plain_password_privately(tmp_path: Path) -> None:
    with XvncDesktop(tmp_path, password="pa55word", window_manager=False, terminal=False) as desktop:
        assert desktop.password_file.read_text() == "pa55word"
        assert stat.S_IMODE(desktop.password_file.stat().st_mode) == 0o600
        assert desktop.env["DISPLAY"] == desktop.display


@pytest.mark.functional
@pytest.mark.timeout(60)
def test_two_desktops_get_distinct_displays_and_ports(tmp_path: Path) -> None:
    first = XvncDesktop(tmp_path / "a", window_manager=False, terminal=False)
    second = XvncDesktop(tmp_path / "b", window_manager=False, terminal=False)
    with first, second:
        assert first.display != second.display
        assert first.port != second.port


def test_properties_before_start_explain_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DesktopError, match="call start"):
        XvncDesktop(tmp_path).port


def test_demo_config_is_valid_for_the_loader(tmp_path: Path) -> None:
    password_file = tmp_path / "desktop.pass"
    password_file.write_text("pa55word")
    config_path = tmp_path / "deskgate.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(tmp_path, 18080, 5999, password_file)))

    config = load_config(config_path)

    assert config.listen.http.port == 18080
    assert config.targets["desk-01"].port == 5999
    assert config.targets["desk-01"].password_file == password_file
    assert [policy.name for policy in config.policies] == ["operators", "supervisors"]
    assert config.policies[1].watch == ("operators",)  # the demo supervisor watches the operators live
