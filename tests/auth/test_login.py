"""The login sequence: backends in order and failing closed, accounts, TOTP and enrollment, throttle, audit."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from auth.accounts import DisabledAccounts
from auth.errors import (
    AccessNotGranted,
    AccountDisabled,
    AlreadyEnrolled,
    DirectoryUnavailable,
    EnrollmentExpired,
    EnrollmentRequired,
    InvalidCredentials,
    InvalidTOTP,
    RateLimited,
    TOTPUnavailable,
)
from auth.identity import Identity
from auth.local import LocalUserStore
from auth.login import LocalBackend, LoginPolicy, LoginService, PasswordBackend
from auth.ratelimit import LoginThrottle
from auth.secretbox import SecretBox
from auth.totp import TOTPVerifier
from auth.totp_store import DatabaseUsedCodes, Enrollments, TOTPSecrets
from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from tests.auth.conftest import Clock

PASSWORD = "correct-horse-battery"
HOME = ip_address("198.51.100.7")


class Directory:
    """A password backend standing in for LDAP: ``carol`` and ``dave``, or down."""

    name = "ldap"

    def __init__(self) -> None:
        self.down = False
        self.asked: list[str] = []

    async def authenticate(self, username: str, password: str) -> Identity:
        self.asked.append(username)
        if self.down:
            raise DirectoryUnavailable()
        groups = {"carol": {"operators"}, "dave": {"contractors"}, "alice": {"staff"}}
        if username not in groups or password != "directory password":
            raise InvalidCredentials()
        return Identity(username, frozenset(groups[username]), admin=False, backend="ldap")


@dataclass
class Rig:
    service: LoginService
    users: LocalUserStore
    directory: Directory
    clock: Clock
    metrics: Metrics
    audit: AuditLog

    def code(self, secret: str, steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now + 30 * steps)

    async def events(self) -> list[tuple[str | None, str, str, str | None]]:
        return [(e.user, e.action, e.outcome, e.reason) for e in await self.audit.list()]

    def attempts(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "deskgate_auth_attempts_total", {"method": "password+totp", "result": result})
        return value or 0.0


def build(store: Store, box: SecretBox, clock: Clock, users: LocalUserStore, backends: list[PasswordBackend],
          directory: Directory, policy: LoginPolicy = LoginPolicy()) -> Rig:
    metrics, audit = Metrics(), AuditLog(store, clock)
    service = LoginService(
        backends, local_users=users, totp_secrets=TOTPSecrets(store, box, clock),
        verifier=TOTPVerifier(DatabaseUsedCodes(store), clock), enrollments=Enrollments(store, box, clock),
        throttle=LoginThrottle(store, clock), disabled=DisabledAccounts(store, clock), audit=audit,
        metrics=metrics, policy=policy)
    return Rig(service, users, directory, clock, metrics, audit)


@pytest.fixture
def users(tmp_path: Path) -> LocalUserStore:
    return LocalUserStore(tmp_path / "users.yaml",
                          password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def rig(store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> Rig:
    directory = Directory()
    return build(store, box, clock, users, [LocalBackend(users), directory], directory)


async def test_full_login_is_audited_and_counted(rig: Rig) -> None:
    secret = rig.users.add_user("alice", PASSWORD, ["operators"])
    identity = await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    assert identity == Identity("alice", frozenset({"operators"}), admin=False, backend="local")
    assert await rig.events() == [("alice", "login", "success", None)]
    assert rig.attempts("ok") == 1


async def test_a_secret_in_the_users_file_moves_into_the_database(rig: Rig) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    assert rig.users.totp_secret("alice") is None
    assert await rig.service.totp_secrets.get("alice") == secret
    await rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME)


async def test_the_password_check_runs_off_the_event_loop(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    threads: list[threading.Thread] = []
    original = LocalUserStore.authenticate

    def spy(self: LocalUserStore, username: str, password: str) -> Identity:
        threads.append(threading.current_thread())
        return original(self, username, password)

    monkeypatch.setattr(LocalUserStore, "authenticate", spy)
    await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    assert threads and threads[0] is not threading.main_thread()


@pytest.mark.parametrize(("username", "password"), [("alice", "not the password"), ("mallory", PASSWORD),
                                                    ("alice", ""), ("", PASSWORD), ("a" * 256, PASSWORD)])
async def test_wrong_credentials_are_refused_before_the_code(rig: Rig, username: str, password: str) -> None:
    rig.users.add_user("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await rig.service.login(username, password, "000000", HOME)
    assert [(outcome, reason) for _, _, outcome, reason in await rig.events()] == [
        ("failure", "wrong username or password")]
    assert rig.attempts("bad_password") == 1


async def test_wrong_drifted_and_replayed_codes(rig: Rig) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    for steps in (-2, 2):
        with pytest.raises(InvalidTOTP):
            await rig.service.login("alice", PASSWORD, rig.code(secret, steps), HOME)
    await rig.service.login("alice", PASSWORD, rig.code(secret, -1), HOME)
    await rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME)
    with pytest.raises(InvalidTOTP):
        await rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME)
    reasons = [reason for _, _, _, reason in await rig.events()]
    assert reasons == ["wrong authenticator code"] * 2 + [None, None, "authenticator code already used"]
    assert rig.attempts("replayed_totp") == 1 and rig.attempts("bad_totp") == 2


async def test_backends_are_tried_in_order(rig: Rig) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    assert (await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)).backend == "local"
    identity = await rig.service.login("alice", "directory password", rig.code(secret, 1), HOME)
    assert (identity.backend, identity.groups) == ("ldap", frozenset({"staff"}))


async def test_a_directory_that_cannot_be_asked_fails_closed_and_does_not_count(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> None:
    directory = Directory()
    rig = build(store, box, clock, users, [directory, LocalBackend(users)], directory)
    secret = users.add_user("alice", PASSWORD)
    directory.down = True
    for _ in range(10):  # not a lockout either: the user did nothing wrong
        with pytest.raises(DirectoryUnavailable):
            await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)  # the local backend is not asked
    assert (await rig.events())[-1] == ("alice", "login", "error", "directory unavailable")
    assert rig.attempts("directory_unavailable") == 10
    directory.down = False
    assert (await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)).backend == "local"


async def test_disabled_accounts(rig: Rig, tmp_path: Path) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    await rig.service.disabled.disable("alice", "admin", "left")
    with pytest.raises(AccountDisabled):
        await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    await rig.service.disabled.enable("alice")
    path = tmp_path / "users.yaml"
    path.write_text(path.read_text().replace("disabled: false", "disabled: true"))
    with pytest.raises(AccountDisabled):
        await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)


async def test_directory_users_outside_the_allowed_groups_are_refused_before_enrolling(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> None:
    directory = Directory()
    rig = build(store, box, clock, users, [directory], directory,
                LoginPolicy(ldap_allowed_groups=frozenset({"operators"})))
    with pytest.raises(AccessNotGranted):
        await rig.service.login("dave", "directory password", "", HOME)
    with pytest.raises(EnrollmentRequired):
        await rig.service.login("carol", "directory password", "", HOME)
    assert [(user, outcome, reason) for user, _, outcome, reason in await rig.events()] == [
        ("dave", "denied", "not in an allowed group"),
        ("carol", "started", "first login without an authenticator"),
        ("carol", "pending", "no authenticator enrolled")]


async def test_first_login_enrolls_and_confirms_with_a_code(rig: Rig) -> None:
    with pytest.raises(EnrollmentRequired) as needed:
        await rig.service.login("carol", "directory password", "", HOME)
    token = needed.value.token
    pending = await rig.service.pending_enrollment(token)
    assert await rig.service.totp_secrets.get("carol") is None  # nothing saved before a code confirms it
    with pytest.raises(InvalidTOTP):
        await rig.service.confirm_enrollment(token, "000000" if rig.code(pending.secret) != "000000" else "111111",
                                             HOME)
    identity = await rig.service.confirm_enrollment(token, rig.code(pending.secret), HOME)
    assert identity.username == "carol" and await rig.service.totp_secrets.get("carol") == pending.secret
    with pytest.raises(EnrollmentExpired):  # the token is spent
        await rig.service.confirm_enrollment(token, rig.code(pending.secret, 1), HOME)
    with pytest.raises(InvalidTOTP):  # the confirming code was a use of that step
        await rig.service.login("carol", "directory password", rig.code(pending.secret), HOME)
    await rig.service.login("carol", "directory password", rig.code(pending.secret, 1), HOME)
    actions = [(action, outcome) for _, action, outcome, _ in await rig.events()]
    assert ("totp.enroll", "success") in actions and actions.count(("login", "success")) == 2


async def test_a_second_enrollment_cannot_replace_the_first(rig: Rig) -> None:
    tokens = []
    for _ in range(2):
        with pytest.raises(EnrollmentRequired) as needed:
            await rig.service.login("carol", "directory password", "", HOME)
        tokens.append(needed.value.token)
    with pytest.raises(EnrollmentExpired):  # the second login dropped the first enrollment
        await rig.service.pending_enrollment(tokens[0])
    pending = await rig.service.pending_enrollment(tokens[1])
    await rig.service.totp_secrets.set("carol", "A" * 32)  # meanwhile an administrator set one
    with pytest.raises(AlreadyEnrolled):
        await rig.service.confirm_enrollment(tokens[1], rig.code(pending.secret), HOME)
    assert await rig.service.totp_secrets.get("carol") == "A" * 32


async def test_too_many_wrong_codes_use_an_enrollment_up(rig: Rig) -> None:
    with pytest.raises(EnrollmentRequired) as needed:
        await rig.service.login("carol", "directory password", "", HOME)
    pending = await rig.service.pending_enrollment(needed.value.token)
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in {rig.code(pending.secret, s) for s in (-1, 0, 1)})
    for _ in range(5):
        with pytest.raises(InvalidTOTP):
            await rig.service.confirm_enrollment(needed.value.token, wrong, HOME)
    with pytest.raises(EnrollmentExpired):
        await rig.service.confirm_enrollment(needed.value.token, rig.code(pending.secret), HOME)


async def test_password_only_when_totp_is_optional_and_none_is_enrolled(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> None:
    directory = Directory()
    rig = build(store, box, clock, users, [LocalBackend(users)], directory, LoginPolicy(totp_required=False))
    users.add_user("alice", PASSWORD)
    users.clear_totp("alice", users.totp_secret("alice") or "")
    assert (await rig.service.login("alice", PASSWORD, "", HOME)).username == "alice"
    secret = users.add_user("bob", PASSWORD)
    with pytest.raises(InvalidTOTP):  # enrolled users need their code even when it is optional
        await rig.service.login("bob", PASSWORD, "", HOME)
    await rig.service.login("bob", PASSWORD, rig.code(secret), HOME)


async def test_failures_are_throttled_with_retry_after(rig: Rig) -> None:
    rig.users.add_user("alice", PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await rig.service.login("alice", "guess", "000000", HOME)
    with pytest.raises(RateLimited) as limited:
        await rig.service.login("alice", PASSWORD, "000000", HOME)  # even the right password waits
    assert limited.value.retry_after == 1
    assert (await rig.events())[-1] == ("alice", "login", "denied", "rate limited (user)")
    assert rig.attempts("rate_limited") == 1


async def test_a_key_file_that_does_not_match_fails_closed(rig: Rig, tmp_path: Path) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    rig.service.totp_secrets.box = SecretBox.from_file(tmp_path / "another.key")
    with pytest.raises(TOTPUnavailable):
        await rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME)


async def test_a_broken_users_file_refuses_everyone(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text("users: [\n")
    with pytest.raises(DirectoryUnavailable):
        await rig.service.login("alice", PASSWORD, "123456", HOME)

