"""``deskgate user list|passwd|set-groups|delete`` in-process against a real users file and SQLite database."""

from __future__ import annotations

import asyncio
import getpass
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher

from auth.secretbox import SecretBox
from auth.totp_store import TOTPSecrets
from base.db import Store
from gateway.cli import main
from gateway.config import load_config

CONFIG = """\
auth:
  local: {users_file: users.yaml}
targets:
  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}
policies:
  - {name: operators, groups: [operators], targets: ["desk-*"]}
"""
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text(CONFIG)
    return path


def run(config_file: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main([*argv, "--config", str(config_file)])


def add(config_file: Path, monkeypatch: pytest.MonkeyPatch, name: str, *options: str) -> None:
    assert run(config_file, monkeypatch, "user", "add", name, *options, "--password-stdin", stdin=PASSWORD) == 0


def users_file(config_file: Path) -> dict[str, dict[str, object]]:
    users: dict[str, dict[str, object]] = yaml.safe_load((config_file.parent / "users.yaml").read_text())["users"]
    return users


def history(config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            user: str) -> list[dict[str, object]]:
    """``deskgate audit list --user USER --json``: the user's history as the CLI shows it."""
    capsys.readouterr()
    assert run(config_file, monkeypatch, "audit", "list", "--user", user, "--json") == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_list_shows_local_users_with_roles_and_totp(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    add(config_file, monkeypatch, "root_", "--admin")
    add(config_file, monkeypatch, "alice", "--group", "operators")
    assert run(config_file, monkeypatch, "user", "disable", "alice") == 0
    capsys.readouterr()

    assert run(config_file, monkeypatch, "user", "list", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {"name": "alice", "display_name": None, "source": "local", "groups": ["operators"], "admin": False,
         "disabled": True, "totp_enrolled": True, "last_login": None},
        {"name": "root_", "display_name": None, "source": "local", "groups": [], "admin": True, "disabled": False,
         "totp_enrolled": True, "last_login": None},
    ]
    assert run(config_file, monkeypatch, "user", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "ADMIN", "DISABLED", "TOTP", "LAST", "LOGIN", "GROUPS"]
    assert table[1].split() == ["alice", "local", "no", "yes", "yes", "-", "operators"]


def test_display_names_are_unicode_kept_in_the_users_file_and_audited(
        config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    add(config_file, monkeypatch, "yamada", "--display-name", "山田\u3000太郎 ")  # an ideographic space, as typed
    assert users_file(config_file)["yamada"]["display_name"] == "山田 太郎"
    assert "山田 太郎" in (config_file.parent / "users.yaml").read_text(encoding="utf-8")  # readable, not escaped
    assert load_config(config_file).auth.local is not None
    assert run(config_file, monkeypatch, "user", "set-display-name", "yamada", "山田 一郎") == 0
    assert "yamada is now shown as 山田 一郎" in capsys.readouterr().out
    assert run(config_file, monkeypatch, "user", "set-display-name", "yamada", "x" * 65) == 1
    assert "longer than 64 characters" in capsys.readouterr().err
    assert run(config_file, monkeypatch, "user", "set-display-name", "yamada") == 0
    assert "display_name" not in users_file(config_file)["yamada"]
    events = history(config_file, monkeypatch, capsys, "yamada")
    assert [(e["action"], e["detail"].get("display_name")) for e in events] == [  # type: ignore[union-attr]
        ("user.add", "山田 太郎"), ("user.display_name", "山田 一郎"), ("user.display_name", None)]


def test_passwd_sets_an_argon2id_hash_and_is_audited(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    add(config_file, monkeypatch, "alice")
    new = "a-much-newer-password"
    assert run(config_file, monkeypatch, "user", "passwd", "alice", "--password-stdin", stdin=new + "\n") == 0
    stored = str(users_file(config_file)["alice"]["password"])
    assert stored.startswith("$argon2id$") and PasswordHasher().verify(stored, new)

    assert run(config_file, monkeypatch, "user", "passwd", "alice", "--password-stdin", stdin="short\n") == 1
    assert "too short; use at least 12 characters" in capsys.readouterr().err
    assert run(config_file, monkeypatch, "user", "passwd", "alice") == 1
    assert "--password-stdin" in capsys.readouterr().err
    events = history(config_file, monkeypatch, capsys, "alice")
    assert [(e["action"], e["user"], e["source"], e["target"]) for e in events] == [
        ("user.add", getpass.getuser(), "cli", "alice"), ("user.passwd", getpass.getuser(), "cli", "alice")]


def test_set_groups_replaces_them_and_says_so_in_the_history(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    add(config_file, monkeypatch, "alice", "--group", "operators")
    assert run(config_file, monkeypatch, "user", "set-groups", "alice", "staff", "night", "staff") == 0
    assert users_file(config_file)["alice"]["groups"] == ["staff", "night"]
    assert "alice is now in staff, night" in capsys.readouterr().out
    assert run(config_file, monkeypatch, "user", "set-groups", "alice") == 0
    assert users_file(config_file)["alice"]["groups"] == []
    assert run(config_file, monkeypatch, "user", "set-groups", "alice", "bad group") == 1
    assert "not a valid group name" in capsys.readouterr().err
    assert run(config_file, monkeypatch, "user", "set-groups", "bob", "staff") == 1
    assert "no local user 'bob'" in capsys.readouterr().err

    changes = [e for e in history(config_file, monkeypatch, capsys, "alice") if e["action"] == "user.groups"]
    assert [(e["detail"]["before"], e["detail"]["groups"]) for e in changes] == [  # type: ignore[index]
        (["operators"], ["staff", "night"]), (["staff", "night"], [])]


def test_delete_removes_the_user_and_their_totp_but_never_the_last_admin(
        config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    add(config_file, monkeypatch, "root_", "--admin")
    add(config_file, monkeypatch, "alice")
    capsys.readouterr()
    assert run(config_file, monkeypatch, "user", "delete", "root_") == 1
    assert capsys.readouterr().err.endswith("deskgate: root_ is the last administrator; make another user an administrator "
                                       "first (deskgate user add NAME --admin), then delete root_\n")
    assert run(config_file, monkeypatch, "user", "disable", "root_") == 1
    assert "root_ is the last administrator" in capsys.readouterr().err

    assert run(config_file, monkeypatch, "user", "delete", "alice") == 0
    assert "alice" not in users_file(config_file)
    assert stored_secret(config_file, "alice") is None
    add(config_file, monkeypatch, "second", "--admin")
    assert run(config_file, monkeypatch, "user", "delete", "root_") == 0
    assert set(users_file(config_file)) == {"second"}

    deleted = history(config_file, monkeypatch, capsys, "alice")[-1]
    assert (deleted["action"], deleted["target"], deleted["detail"]) == (
        "user.delete", "alice", {"totp_removed": True, "web_sessions_ended": 0})


def test_add_documents_admin_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["user", "add", "--help"])
    add_help = " ".join(capsys.readouterr().out.split())
    assert "--admin" in add_help and "admin console" in add_help and "auth.ldap.admin_groups" in add_help


def stored_secret(config_file: Path, name: str) -> str | None:
    config = load_config(config_file)

    async def read() -> str | None:
        store = await Store.open(config.storage.database)
        try:
            return await TOTPSecrets(store, SecretBox.from_file(config.auth.totp.secret_key_file)).get(name)
        finally:
            await store.close()

    return asyncio.run(read())
