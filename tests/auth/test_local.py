from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher

from auth.errors import AccountDisabled, InvalidCredentials, UserAdminError
from auth.identity import Identity
from auth.local import LocalUserStore
from base.errors import ConfigError

PASSWORD = "correct-horse-battery"


def fast_hasher(time_cost: int = 1) -> PasswordHasher:
    """Cheap argon2id parameters: the tests check behaviour, not cost."""
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "users.yaml"


@pytest.fixture
def store(users_file: Path) -> LocalUserStore:
    return LocalUserStore(users_file, password_hasher=fast_hasher())


def test_add_then_authenticate(store: LocalUserStore) -> None:
    secret = store.add_user("alice", PASSWORD, ["operators", "viewers"], admin=True)
    assert len(secret) == 32
    identity = store.authenticate("alice", PASSWORD)
    assert identity == Identity("alice", frozenset({"operators", "viewers"}), admin=True, backend="local")
    assert store.totp_secret("alice") == secret
    user = store.get("alice")
    assert user is not None and user.groups == ("operators", "viewers") and not user.disabled
    assert user.password_hash.startswith("$argon2id$")


def test_file_layout_and_mode(store: LocalUserStore, users_file: Path) -> None:
    secret = store.add_user("alice", PASSWORD, ["operators"])
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    document = yaml.safe_load(users_file.read_text())
    entry = document["users"]["alice"]
    assert entry["totp_secret"] == secret and entry["groups"] == ["operators"]
    assert entry["admin"] is False and entry["disabled"] is False
    assert PASSWORD not in users_file.read_text()
    assert not [p.name for p in users_file.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("username", "password"), [
    ("alice", "wrong password"), ("alice", PASSWORD.upper()), ("nobody", PASSWORD), ("ALICE", PASSWORD),
])
def test_wrong_password_and_unknown_user_look_the_same(store: LocalUserStore, username: str, password: str) -> None:
    store.add_user("alice", PASSWORD)
    with pytest.raises(InvalidCredentials) as caught:
        store.authenticate(username, password)
    assert str(caught.value) == "wrong username or password"


def test_unknown_user_still_costs_a_hash(store: LocalUserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return original(self, password_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    with pytest.raises(InvalidCredentials):
        store.authenticate("nobody", PASSWORD)
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


def test_empty_and_oversized_passwords_are_refused(store: LocalUserStore, users_file: Path) -> None:
    store.add_user("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):
        store.authenticate("alice", "")
    small = LocalUserStore(users_file, password_hasher=fast_hasher(), max_password_length=8)
    with pytest.raises(InvalidCredentials):
        small.authenticate("alice", PASSWORD)
    with pytest.raises(UserAdminError, match="empty"):
        store.add_user("bob", "")


def test_disabled_account(store: LocalUserStore, users_file: Path) -> None:
    store.add_user("alice", PASSWORD)
    document = yaml.safe_load(users_file.read_text())
    document["users"]["alice"]["disabled"] = True
    users_file.write_text(yaml.safe_dump(document))
    with pytest.raises(AccountDisabled):
        store.authenticate("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):  # a wrong password does not reveal the account is disabled
        store.authenticate("alice", "wrong password")


def test_existing_name_is_refused_unless_replace(store: LocalUserStore) -> None:
    first = store.add_user("alice", PASSWORD, ["a"])
    with pytest.raises(UserAdminError, match="already exists"):
        store.add_user("alice", "another password", ["b"])
    assert store.totp_secret("alice") == first
    second = store.add_user("alice", "another password", ["b"], replace=True)
    assert second != first and store.totp_secret("alice") == second
    assert store.authenticate("alice", "another password").groups == frozenset({"b"})


@pytest.mark.parametrize("name", ["", "Alice", "1alice", "al ice", "a" * 33, "alice\n", "../x", "é"])
def test_invalid_user_names(store: LocalUserStore, name: str) -> None:
    with pytest.raises(UserAdminError, match="not a valid user name"):
        store.add_user(name, PASSWORD)


def test_valid_user_names(store: LocalUserStore) -> None:
    for name in ("_svc", "a", "j.doe-2", "x" * 32):
        store.add_user(name, PASSWORD)
    assert store.get("j.doe-2") is not None


def test_invalid_group_names(store: LocalUserStore) -> None:
    with pytest.raises(UserAdminError, match="not a valid group name"):
        store.add_user("alice", PASSWORD, ["ops team"])


def test_clear_totp_only_removes_the_secret_it_was_given(store: LocalUserStore) -> None:
    old = store.add_user("alice", PASSWORD)
    store.clear_totp("alice", "AAAAAAAAAAAAAAAA")  # not alice's (any more): left alone
    assert store.totp_secret("alice") == old
    store.clear_totp("alice", old)
    assert store.totp_secret("alice") is None
    assert store.authenticate("alice", PASSWORD).username == "alice"  # password untouched
    store.clear_totp("bob", old)  # no such user: nothing to do


def test_missing_file_is_an_empty_store(store: LocalUserStore) -> None:
    assert store.get("alice") is None and store.totp_secret("alice") is None
    with pytest.raises(InvalidCredentials):
        store.authenticate("alice", PASSWORD)


def test_reloads_when_another_process_changes_the_file(users_file: Path) -> None:
    gateway = LocalUserStore(users_file, password_hasher=fast_hasher())
    cli = LocalUserStore(users_file, password_hasher=fast_hasher())
    assert gateway.get("alice") is None
    cli.add_user("alice", PASSWORD, ["operators"])
    assert gateway.authenticate("alice", PASSWORD).groups == frozenset({"operators"})
    cli.add_user("bob", PASSWORD)
    cli.clear_totp("alice", cli.totp_secret("alice") or "")
    assert gateway.totp_secret("alice") is None and gateway.get("bob") is not None


def test_concurrent_writers_lose_nothing(users_file: Path) -> None:
    stores = [LocalUserStore(users_file, password_hasher=fast_hasher()) for _ in range(4)]
    threads = [
        threading.Thread(target=lambda s=s, i=i: [s.add_user(f"u{i}_{n}", PASSWORD) for n in range(5)])
        for i, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(yaml.safe_load(users_file.read_text())["users"]) == 20


def test_hash_is_upgraded_when_parameters_change(users_file: Path) -> None:
    LocalUserStore(users_file, password_hasher=fast_hasher(time_cost=1)).add_user("alice", PASSWORD)
    upgraded = LocalUserStore(users_file, password_hasher=fast_hasher(time_cost=2))
    old_hash = upgraded.get("alice").password_hash  # type: ignore[union-attr]
    assert "t=1" in old_hash
    upgraded.authenticate("alice", PASSWORD)
    new_hash = upgraded.get("alice").password_hash  # type: ignore[union-attr]
    assert "t=2" in new_hash and new_hash != old_hash
    assert upgraded.authenticate("alice", PASSWORD).username == "alice"


BROKEN_FILES = [
    ("users:\n  alice: {password: x\n", 3, "(yaml)"),
    ("users:\n  alice:\n    password: plaintext\n", 3, "users.alice.password"),
    ("users:\n  alice:\n    groups: [a]\n", 3, "users.alice.password"),
    ("users:\n  alice: {password: $argon2id$x, totp_secret: not-base32!}\n", 2, "users.alice.totp_secret"),
    ("users:\n  alice: {password: $argon2id$x, admin: maybe}\n", 2, "users.alice.admin"),
    ("users:\n  alice: {password: $argon2id$x, grups: [a]}\n", 2, "users.alice.grups"),
    ("users:\n  alice: {password: $argon2id$x}\n  alice: {password: $argon2id$y}\n", 3, "users.alice"),
    ("users:\n  Alice: {password: $argon2id$x}\n", 2, "users.Alice"),
    ("- alice\n", 1, "(top level)"),
]


@pytest.mark.parametrize(("text", "line", "key"), BROKEN_FILES)
def test_broken_file_is_a_config_error_with_line(users_file: Path, text: str, line: int, key: str) -> None:
    users_file.parent.mkdir(parents=True)
    users_file.write_text(text)
    os.chmod(users_file, 0o600)
    store = LocalUserStore(users_file, password_hasher=fast_hasher())
    with pytest.raises(ConfigError) as caught:
        store.get("alice")
    assert (caught.value.line, caught.value.key) == (line, key)
    with pytest.raises(ConfigError):  # a change to a broken file is refused too, leaving it for a human
        store.add_user("bob", PASSWORD)


def test_loose_permissions_are_logged(store: LocalUserStore, users_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    store.add_user("alice", PASSWORD)
    os.chmod(users_file, 0o644)
    store.get("alice")
    assert "chmod 600" in caplog.text
