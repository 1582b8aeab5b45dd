"""The native SSH listener's small decisions: the target in a user name, the client's language, notice lines."""

from __future__ import annotations

import pytest

from gateway.i18n import translator
from gateway.notices import PostedNotice
from gateway.ssh.channel import terminal_size
from gateway.ssh.server import split_username
from gateway.ssh.shell import client_language, notice_line
from recorder.records import TerminalSize


@pytest.mark.parametrize(("text", "expected"), [
    ("alice+shell-01", ("alice", "shell-01")),
    ("alice", ("alice", None)),
    ("a+b+shell-01", ("a+b", "shell-01")),  # the last + separates
    ("alice+", ("alice", None)),  # nothing after the +: the menu
    ("+shell-01", ("+shell-01", None)),
])
def test_the_target_follows_the_last_plus(text: str, expected: tuple[str, str | None]) -> None:
    assert split_username(text) == expected


def test_the_language_comes_from_lang_when_the_gateway_speaks_it() -> None:
    assert client_language({"LANG": "ja_JP.UTF-8"}, "en") == "ja"
    assert client_language({"LANG": "fr_FR.UTF-8"}, "en") == "en"
    assert client_language({}, "ja") == "ja"


def test_notices_for_this_terminal_become_lines() -> None:
    english = translator("en")
    viewing = PostedNotice(1, "alice", "viewing_started", {"by": "sam", "target": "shell-01"}, 0.0)
    assert notice_line(viewing, "shell-01", english) == "sam is now viewing this session"
    assert notice_line(viewing, "desk-01", english) is None  # someone viewing another session
    ended = PostedNotice(2, "alice", "session_ended", {"by": "sam", "reason": "x", "target": None}, 0.0)
    assert notice_line(ended, "shell-01", english) is None  # the session's end is said when it closes
    idle = PostedNotice(3, "alice", "idle_warning", {"deadline_epoch": 0.0, "target": "shell-01"}, 0.0)
    assert "this session ends at" in (notice_line(idle, "shell-01", english) or "")


def test_a_pty_size_is_bounded_and_zero_means_the_default() -> None:
    assert terminal_size(0, 0) == TerminalSize(80, 24)
    assert terminal_size(5000, 50) == TerminalSize(1000, 50)
