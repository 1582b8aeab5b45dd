"""The login sequence: backends in order and failing closed, accounts, TOTP and enrollment, throttle, audit."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from auth.accounts import DisabledAccounts
from auth.checkgate import QUEUE_FULL, PasswordCheckGate
from auth.errors import (
    LOGIN_REFUSED,
    AccessNotGranted,
    AccountDisabled,
    AlreadyEnrolled,
    AuthError,
    DirectoryUnavailable,
    EnrollmentExpired,
    EnrollmentRequired,
    InvalidCredentials,
    InvalidTOTP,
    RateLimited,
    ServerBusy,
    TOTPUnavailable,
    UnusableUsername,
)
from auth.identity import Identity
from auth.local import LocalUserStore
from auth.login import LocalBackend, LoginPolicy, LoginService, PasswordBackend, answer_of
from auth.names import COMPATIBILITY_FORM
from auth.ratelimit import LoginThrottle
from auth.secretbox import SecretBox
from auth.tables import auth_failures
from auth.totp import TOTPVerifier
from auth.totp_store import DatabaseUsedCodes, Enrollments, TOTPSecrets
from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from tests.auth.conftest import Clock

PASSWORD = "correct-horse-battery"
HOME = ip_address("198.51.100.7")
STRANGER = ip_address("203.0.113.66")


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
          directory: Directory, policy: LoginPolicy = LoginPolicy(), gate: PasswordCheckGate | None = None) -> Rig:
    metrics, audit = Metrics(), AuditLog(store, clock)
    service = LoginService(
        backends, local_users=users, totp_secrets=TOTPSecrets(store, box, clock),
        verifier=TOTPVerifier(DatabaseUsedCodes(store), clock), enrollments=Enrollments(store, box, clock),
        throttle=LoginThrottle(store, clock), disabled=DisabledAccounts(store, clock), audit=audit,
        metrics=metrics, policy=policy, gate=gate)
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



# -- one throttle per person however the name is spelled ---------------------------------------------


async def test_every_spelling_of_a_name_shares_one_throttle_and_odd_ones_reach_no_backend(rig: Rig) -> None:
    secret = rig.users.add_user("alice", PASSWORD)
    for spelling in ("ａｌｉｃｅ", "Alice", "ＡＬＩＣＥ", "alİce", "alice"):
        with pytest.raises(InvalidCredentials):
            await rig.service.login(spelling, "guess", "000000", HOME)
    assert rig.directory.asked == ["Alice", "alİce", "alice"]  # the full-width ones were refused before any backend
    for spelling in ("ａｌｉｃｅ", "alice", "ALICE"):  # five failures: every spelling waits, the right password too
        with pytest.raises(RateLimited) as limited:
            await rig.service.login(spelling, PASSWORD, rig.code(secret), HOME)
        assert limited.value.scope == "user"
    reasons = [(user, reason) for user, action, _, reason in await rig.events() if action == "login"]
    wrong = "wrong username or password"
    assert reasons[:5] == [("ａｌｉｃｅ", COMPATIBILITY_FORM), ("Alice", wrong), ("ＡＬＩＣＥ", COMPATIBILITY_FORM),
                           ("alİce", wrong), ("alice", wrong)]
    assert rig.attempts("bad_username") == 2 and rig.attempts("bad_password") == 3


async def test_a_refused_name_is_told_how_to_type_it(rig: Rig) -> None:
    with pytest.raises(UnusableUsername) as refused:
        await rig.service.login("ａｌｉｃｅ", PASSWORD, "000000", HOME)
    assert "full-width" in str(refused.value) and "input method off" in str(refused.value)
    assert str(answer_of(refused.value)) == str(refused.value)  # it depends on the name alone: nothing to hide


async def test_state_after_the_password_is_kept_under_the_backends_name(rig: Rig) -> None:
    with pytest.raises(EnrollmentRequired) as needed:  # the directory stand-in matches names exactly
        await rig.service.login("carol", "directory password", "", HOME)
    pending = await rig.service.pending_enrollment(needed.value.token)
    await rig.service.confirm_enrollment(needed.value.token, rig.code(pending.secret), HOME)
    await rig.service.disabled.disable("carol", "admin", None)
    with pytest.raises(AccountDisabled):
        await rig.service.login("carol", "directory password", rig.code(pending.secret, 1), HOME)
    assert await rig.service.totp_secrets.get("carol") == pending.secret


# -- a wrong code, a disabled account or a refused group look like a wrong password -------------------


async def test_refusals_after_the_password_answer_like_a_wrong_password(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore, tmp_path: Path) -> None:
    directory = Directory()
    rig = build(store, box, clock, users, [LocalBackend(users), directory], directory,
                LoginPolicy(ldap_allowed_groups=frozenset({"operators"})))
    secret = users.add_user("alice", PASSWORD)
    await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    refusals: list[AuthError] = []
    for username, password, code in (("alice", "guess", rig.code(secret, 1)),  # wrong password
                                     ("alice", PASSWORD, rig.code(secret, 3)),  # wrong code
                                     ("alice", PASSWORD, rig.code(secret)),  # a used code
                                     ("dave", "directory password", "")):  # outside the allowed groups
        with pytest.raises(AuthError) as refused:
            await rig.service.login(username, password, code, HOME)
        refusals.append(refused.value)
    await rig.service.disabled.disable("alice", "admin", "left")
    with pytest.raises(AccountDisabled) as disabled:
        await rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME)
    refusals.append(disabled.value)
    answers = [answer_of(error) for error in refusals]
    assert {(type(answer), str(answer)) for answer in answers} == {(InvalidCredentials, LOGIN_REFUSED)}
    assert "wrong username or password" in LOGIN_REFUSED and "code" in LOGIN_REFUSED
    assert [answer.reason for answer in answers] == [  # the audit's reasons stay true
        "wrong username or password", "wrong authenticator code", "authenticator code already used",
        "not in an allowed group", "account disabled"]
    for error in (RateLimited(3, "user"), DirectoryUnavailable()):  # refusals that confirm nothing keep theirs
        assert answer_of(error) is error


# -- the bound on password checks in flight ---------------------------------------------------------


class Stalled:
    """A password backend whose checks wait until the test lets them go."""

    name = "ldap"

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.asked: list[str] = []

    async def authenticate(self, username: str, password: str) -> Identity:
        self.asked.append(username)
        await self.go.wait()
        raise InvalidCredentials()


async def failure_rows(store: Store) -> int:
    async with store.read() as connection:
        return int(await connection.scalar(select(func.count()).select_from(auth_failures)) or 0)


async def test_a_login_finding_no_place_for_its_check_is_refused_at_once_and_not_counted(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> None:
    stalled = Stalled()
    rig = build(store, box, clock, users, [stalled], Directory(),
                gate=PasswordCheckGate(slots=1, queue=0, familiar_queue=0, retry_after=3))
    first = asyncio.create_task(rig.service.login("alice", "guess", "", HOME))
    while not stalled.asked:
        await asyncio.sleep(0.01)
    before = await failure_rows(store)
    for _ in range(3):
        with pytest.raises(ServerBusy) as busy:
            await rig.service.login("bob", "guess", "", STRANGER)
        assert busy.value.retry_after == 3
    assert stalled.asked == ["alice"]
    assert await failure_rows(store) == before  # bob's and the stranger's counters are as they were
    assert rig.attempts("busy") == 3
    clock.advance(60)
    with pytest.raises(ServerBusy):
        await rig.service.login("carol", "guess", "", STRANGER)
    events = [e for e in await rig.audit.list() if e.reason == QUEUE_FULL]  # a flood must not flood the log
    assert [(e.user, e.outcome, e.detail["busy_refusals"]) for e in events] == [("bob", "error", 1),
                                                                               ("carol", "error", 3)]
    stalled.go.set()
    with pytest.raises(InvalidCredentials):
        await first


async def test_a_colleague_on_a_familiar_network_finds_a_place_when_strangers_fill_the_line(
        store: Store, box: SecretBox, clock: Clock, users: LocalUserStore) -> None:
    stalled = Stalled()
    local = LocalBackend(users)
    rig = build(store, box, clock, users, [local, stalled], Directory(),
                gate=PasswordCheckGate(slots=1, queue=1, familiar_queue=1))
    secret = users.add_user("alice", PASSWORD)
    await rig.service.login("alice", PASSWORD, rig.code(secret), HOME)
    strangers = [asyncio.create_task(rig.service.login(f"user{n}", "guess", "", STRANGER)) for n in range(2)]
    while not stalled.asked:  # one stranger's check is stuck in the directory, the other waits in line
        await asyncio.sleep(0.01)
    with pytest.raises(ServerBusy):
        await rig.service.login("user9", "guess", "", STRANGER)
    colleague = asyncio.create_task(rig.service.login("alice", PASSWORD, rig.code(secret, 1), HOME))
    while rig.service.gate.waiting < 2:
        await asyncio.sleep(0.01)
    stalled.go.set()
    assert (await colleague).username == "alice"
    for stranger in strangers:
        with pytest.raises(InvalidCredentials):
            await stranger
