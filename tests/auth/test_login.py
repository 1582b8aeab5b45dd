from __future__ import annotations

import threading
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from auth.errors import (
    AccountDisabled,
    DirectoryUnavailable,
    InvalidCredentials,
    InvalidTOTP,
    TOTPNotEnrolled,
)
from auth.identity import Identity
from auth.local import LocalUserStore
from auth.login import LoginService
from auth.totp import TOTPVerifier
from gateway.config import TOTPConfig

NOW = 1_700_000_000.0
PASSWORD = "correct-horse-battery"


@pytest.fixture
def users(tmp_path: Path) -> LocalUserStore:
    return LocalUserStore(tmp_path / "users.yaml", password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def service(users: LocalUserStore, required: bool = True) -> LoginService:
    return LoginService(users, TOTPVerifier(clock=lambda: NOW), TOTPConfig(required=required, issuer="deskgate"))


async def test_full_login(users: LocalUserStore) -> None:
    secret = users.add_user("alice", PASSWORD, ["operators"])
    identity = await service(users).login("alice", PASSWORD, pyotp.TOTP(secret).at(NOW))
    assert identity == Identity("alice", frozenset({"operators"}), admin=False, backend="local")


async def test_password_check_runs_off_the_event_loop(users: LocalUserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = users.add_user("alice", PASSWORD)
    threads: list[threading.Thread] = []
    original = LocalUserStore.authenticate

    def spy(self: LocalUserStore, username: str, password: str) -> Identity:
        threads.append(threading.current_thread())
        return original(self, username, password)

    monkeypatch.setattr(LocalUserStore, "authenticate", spy)
    await service(users).login("alice", PASSWORD, pyotp.TOTP(secret).at(NOW))
    assert threads and threads[0] is not threading.main_thread()


async def test_wrong_password_is_refused_before_totp(users: LocalUserStore) -> None:
    users.add_user("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await service(users).login("alice", "not the password", "000000")
    with pytest.raises(InvalidCredentials):
        await service(users).login("mallory", PASSWORD, "000000")


async def test_wrong_and_replayed_codes(users: LocalUserStore) -> None:
    secret = users.add_user("alice", PASSWORD)
    login = service(users)
    code = pyotp.TOTP(secret).at(NOW)
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in {pyotp.TOTP(secret).at(NOW + d) for d in (-30, 0, 30)})
    with pytest.raises(InvalidTOTP):
        await login.login("alice", PASSWORD, wrong)
    with pytest.raises(InvalidTOTP):
        await login.login("alice", PASSWORD, "")
    await login.login("alice", PASSWORD, code)
    with pytest.raises(InvalidTOTP):
        await login.login("alice", PASSWORD, code)


async def test_not_enrolled(users: LocalUserStore, tmp_path: Path) -> None:
    users.add_user("alice", PASSWORD)
    text = (tmp_path / "users.yaml").read_text()
    secret = users.totp_secret("alice")
    assert secret is not None
    (tmp_path / "users.yaml").write_text(text.replace(f"totp_secret: {secret}", "totp_secret: null"))
    with pytest.raises(TOTPNotEnrolled):
        await service(users, required=True).login("alice", PASSWORD, "123456")
    # When TOTP is optional, a user without a secret logs in with the password alone.
    assert (await service(users, required=False).login("alice", PASSWORD, "")).username == "alice"


async def test_enrolled_users_need_their_code_even_when_totp_is_optional(users: LocalUserStore) -> None:
    users.add_user("alice", PASSWORD)
    with pytest.raises(InvalidTOTP):
        await service(users, required=False).login("alice", PASSWORD, "")


async def test_disabled_account(users: LocalUserStore, tmp_path: Path) -> None:
    secret = users.add_user("alice", PASSWORD)
    path = tmp_path / "users.yaml"
    path.write_text(path.read_text().replace("disabled: false", "disabled: true"))
    with pytest.raises(AccountDisabled):
        await service(users).login("alice", PASSWORD, pyotp.TOTP(secret).at(NOW))


async def test_broken_users_file_refuses_everyone(users: LocalUserStore, tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text("users: [\n")
    with pytest.raises(DirectoryUnavailable):
        await service(users).login("alice", PASSWORD, "123456")


async def test_backends_are_tried_in_order(users: LocalUserStore) -> None:
    secret = users.add_user("alice", PASSWORD)

    class Directory:
        def authenticate(self, username: str, password: str) -> Identity:
            if password != "directory password":
                raise InvalidCredentials()
            return Identity(username, frozenset({"staff"}), admin=False, backend="ldap")

    login = LoginService(users, TOTPVerifier(clock=lambda: NOW), TOTPConfig(True, "deskgate"), [users, Directory()])
    assert (await login.login("alice", PASSWORD, pyotp.TOTP(secret).at(NOW))).backend == "local"
    identity = await login.login("alice", "directory password", pyotp.TOTP(secret).at(NOW + 30))
    assert (identity.backend, identity.groups) == ("ldap", frozenset({"staff"}))
    with pytest.raises(InvalidCredentials):
        await login.login("alice", "neither", "000000")
