"""The LDAP backend against a real OpenLDAP slapd (StartTLS, test CA) on a free loopback port."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import ldap
import pytest
from ldap.filter import escape_filter_chars

from auth.errors import DirectoryUnavailable, InvalidCredentials
from auth.identity import Identity
from auth.ldap import UNAVAILABLE_MESSAGE, LDAPBackend
from auth.names import name_key
from auth.options import LDAPConfig
from base.errors import ConfigError
from base.metrics import Metrics
from gateway.policy import Policy, PolicySet
from tests.ldap_server import (
    GROUPS_BASE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USERS,
    SlapdServer,
    user_dn,
    write_ca,
)  # fmt: skip

pytestmark = pytest.mark.functional

TIMEOUT = 1.0
MARGIN = 0.5  # scheduling slack on a loaded machine, well under the timeout itself


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SlapdServer]:
    with SlapdServer(tmp_path) as running:
        yield running


LibldapDefault = Callable[[int, "str | int"], None]


@pytest.fixture
def libldap_default() -> Iterator[LibldapDefault]:
    """Set a process-wide libldap option (what ldap.conf sets: TLS_CACERT, TLS_REQCERT); restored after."""
    previous: dict[int, str | int | None] = {}

    def set_default(option: int, value: str | int) -> None:
        previous.setdefault(option, ldap.get_option(option))
        ldap.set_option(option, value)

    yield set_default
    for option, value in previous.items():
        ldap.set_option(option, "" if value is None else value)  # "" unsets a file option


@pytest.fixture
def config(server: SlapdServer, libldap_default: LibldapDefault, tmp_path: Path) -> LDAPConfig:
    # LDAPConfig has no CA-file key yet: the test CA is trusted the way ldap.conf's TLS_CACERT would.
    libldap_default(ldap.OPT_X_TLS_CACERTFILE, str(server.ca_file))
    password_file = tmp_path / "ldap-bind.pass"
    password_file.write_text(SERVICE_PASSWORD + "\n")
    return LDAPConfig(
        url=server.url, start_tls=True, bind_dn=SERVICE_DN, bind_password_file=password_file,
        user_base=PEOPLE, user_filter="(&(objectClass=inetOrgPerson)(uid={username}))",
        group_base=GROUPS_BASE, group_filter="(&(objectClass=groupOfNames)(member={dn}))", timeout=TIMEOUT,
    )  # fmt: skip


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def backend(config: LDAPConfig, metrics: Metrics) -> LDAPBackend:
    return LDAPBackend(config, metrics=metrics)


def ldap_up(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("deskgate_ldap_up")


def logins_measured(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("deskgate_auth_duration_seconds_count", {"backend": "ldap"})


async def refusal(backend: LDAPBackend, username: str, password: str) -> str:
    with pytest.raises(InvalidCredentials) as refused:
        await backend.authenticate(username, password)
    return str(refused.value)


# -- who gets in, with which groups ------------------------------------------------------------


async def test_user_in_group_logs_in_with_direct_and_nested_groups(backend: LDAPBackend, metrics: Metrics) -> None:
    identity = await backend.authenticate("alice", USERS["alice"])

    assert identity == Identity("alice", frozenset({"operators", "staff"}), admin=False, backend="ldap",
                                display_name="山田 花子")
    assert ldap_up(metrics) == 1
    assert logins_measured(metrics) == 1


async def test_groups_feed_policies_and_a_user_outside_them_has_none_that_allows(backend: LDAPBackend) -> None:
    # "staff" holds alice only through "operators": nesting is what lets her in.
    policies = PolicySet([Policy("staff desks", ("staff",), (), ("desk-*",))])
    alice = await backend.authenticate("alice", USERS["alice"])
    bob = await backend.authenticate("bob", USERS["bob"])

    assert bob.groups == frozenset({"contractors"})
    assert policies.decide(alice, IPv4Address("127.0.0.1"), "desk-01").allowed
    assert not policies.decide(bob, IPv4Address("127.0.0.1"), "desk-01").allowed


async def test_group_cycles_end_and_nesting_stops_at_the_depth_limit(config: LDAPConfig) -> None:
    carol = await LDAPBackend(config).authenticate("carol", USERS["carol"])
    dave = await LDAPBackend(config).authenticate("dave", USERS["dave"])
    shallow = await LDAPBackend(config, max_group_depth=1).authenticate("dave", USERS["dave"])

    assert carol.groups == frozenset({"cycle-a", "cycle-b"})
    assert dave.groups == frozenset(f"chain-{n}" for n in range(6))  # direct + 5 levels of nesting
    assert shallow.groups == frozenset({"chain-0", "chain-1"})


async def test_more_groups_than_the_limit_fails_closed_with_the_directory_still_up(
    config: LDAPConfig, metrics: Metrics
) -> None:
    backend = LDAPBackend(config, metrics=metrics, max_groups=3)

    with pytest.raises(DirectoryUnavailable):
        await backend.authenticate("dave", USERS["dave"])
    assert ldap_up(metrics) == 1


async def test_the_identity_is_the_entry_name_however_it_was_typed(backend: LDAPBackend) -> None:
    # Directory matching ignores case and extra spaces; per-user state must not split by spelling.
    assert (await backend.authenticate("ALICE", USERS["alice"])).username == "alice"
    assert (await backend.authenticate(" alice ", USERS["alice"])).username == "alice"


@pytest.mark.parametrize("spelling", ["ａｌｉｃｅ", "ＡＬＩＣＥ", "Ａlice", "ａｌｉｃｅ\u3000", "alİce", "ALİCE"])
async def test_the_directory_folds_width_and_case_and_the_throttles_key_folds_them_alike(
        backend: LDAPBackend, spelling: str) -> None:
    # Every spelling slapd takes for alice's entry must count against her: the throttle keys on name_key.
    assert (await backend.authenticate(spelling, USERS["alice"])).username == "alice"
    assert name_key(spelling) == name_key("alice")


async def test_filter_and_dn_special_characters_in_a_real_uid(backend: LDAPBackend, config: LDAPConfig) -> None:
    uid = "neil, j (ops)*"
    template = replace(config, bind_dn=None, bind_password_file=None, user_base=f"uid={{username}},{PEOPLE}")

    assert (await backend.authenticate(uid, USERS[uid])).username == uid
    assert (await LDAPBackend(template).authenticate(uid, USERS[uid])).groups == {"operators", "staff"}


# -- who does not ------------------------------------------------------------------------------


async def test_wrong_password_and_unknown_user_get_the_same_answer(backend: LDAPBackend, metrics: Metrics) -> None:
    wrong_password = await refusal(backend, "alice", "not-her-password")
    unknown_user = await refusal(backend, "mallory", "whatever")

    assert wrong_password == unknown_user == "wrong username or password"
    assert ldap_up(metrics) == 1  # the directory answered: a refusal is not an outage


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", ""), ("", "x"), ("\udc80", "x"), ("a" * 257, "x")],
    ids=["empty password", "empty username", "lone surrogate", "too long"],
)
async def test_unusable_input_is_refused_before_any_connection(
    backend: LDAPBackend, server: SlapdServer, metrics: Metrics, username: str, password: str
) -> None:
    before = len(server.log_lines())

    await refusal(backend, username, password)
    # A login after it: once its last bind is in slapd's log, anything the refusal sent would be too.
    await backend.authenticate("bob", USERS["bob"])
    lines = server.wait_for_log(
        lambda lines: SlapdServer.bind_dns(lines[before:]).count(SERVICE_DN) == 2
        and any(" ACCEPT from " in line for line in lines[before:])
    )[before:]

    assert SlapdServer.bind_dns(lines) == [SERVICE_DN, user_dn("bob"), SERVICE_DN]
    assert sum(" ACCEPT from " in line for line in lines) == 1
    assert logins_measured(metrics) == 1


@pytest.mark.parametrize("username", ["*)(uid=*)", "*", "alice)(|(uid=*", "al*"])
async def test_filter_injection_in_the_username_matches_nobody(
    backend: LDAPBackend, server: SlapdServer, username: str
) -> None:
    before = len(server.log_lines())

    assert await refusal(backend, username, USERS["alice"]) == "wrong username or password"
    lines = server.wait_for_log(lambda lines: any(" SEARCH RESULT " in line for line in lines[before:]))[before:]
    assert SlapdServer.bind_dns(lines) == [SERVICE_DN]  # no user entry was ever tried
    searched = [match.group(1) for line in lines if (match := re.search(r' SRCH base=.* filter="(.*)"$', line))]
    # One equality assertion on the escaped value (slapd prints hex escapes in capitals).
    assert [text.lower() for text in searched] == [f"(&(objectclass=inetorgperson)(uid={escape_filter_chars(username)}))".lower()]


async def test_dn_template_binds_as_the_user_and_escapes_the_name(config: LDAPConfig) -> None:
    backend = LDAPBackend(replace(config, bind_dn=None, bind_password_file=None, user_base=f"uid={{username}},{PEOPLE}"))

    assert await backend.authenticate("alice", USERS["alice"]) == Identity(
        "alice", frozenset({"operators", "staff"}), admin=False, backend="ldap", display_name="山田 花子"
    )
    for username in ("alice,ou=people", "*", "alice+cn=alice"):
        await refusal(backend, username, USERS["alice"])
    await refusal(backend, "alice", "not-her-password")


# -- TLS ---------------------------------------------------------------------------------------


async def test_starttls_with_the_test_ca_protects_every_bind(backend: LDAPBackend, server: SlapdServer) -> None:
    before = len(server.log_lines())

    await backend.authenticate("alice", USERS["alice"])
    lines = server.wait_for_log(lambda lines: SlapdServer.bind_dns(lines[before:]).count(SERVICE_DN) == 2)[before:]
    first_bind = next(n for n, line in enumerate(lines) if " BIND dn=" in line)
    assert any(" STARTTLS" in line for line in lines[:first_bind])
    assert any(" TLS established " in line for line in lines[:first_bind])


async def test_ldaps_with_the_test_ca(config: LDAPConfig, server: SlapdServer) -> None:
    backend = LDAPBackend(replace(config, url=server.ldaps_url, start_tls=False))

    assert (await backend.authenticate("alice", USERS["alice"])).username == "alice"


@pytest.mark.parametrize("start_tls", [True, False], ids=["starttls", "ldaps"])
async def test_an_untrusted_certificate_fails_closed_before_any_password_is_sent(
    config: LDAPConfig, server: SlapdServer, metrics: Metrics, libldap_default: LibldapDefault, tmp_path: Path,
    start_tls: bool,
) -> None:
    url = server.url if start_tls else server.ldaps_url
    backend = LDAPBackend(replace(config, url=url, start_tls=start_tls), metrics=metrics)
    other_ca, _, _ = write_ca(tmp_path, "someone-else")
    libldap_default(ldap.OPT_X_TLS_CACERTFILE, str(other_ca))
    libldap_default(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_NEVER)  # ldap.conf cannot weaken it
    before = len(server.log_lines())

    with pytest.raises(DirectoryUnavailable, match=re.escape(UNAVAILABLE_MESSAGE)):
        await backend.authenticate("alice", USERS["alice"])
    assert ldap_up(metrics) == 0
    assert SlapdServer.bind_dns(server.log_lines()[before:]) == []


# -- the directory goes away ---------------------------------------------------------------------


async def test_directory_stopped_mid_run_fails_closed_then_recovers(
    backend: LDAPBackend, server: SlapdServer, metrics: Metrics
) -> None:
    await backend.authenticate("alice", USERS["alice"])
    assert ldap_up(metrics) == 1

    server.stop()
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable) as unavailable:
        await backend.authenticate("alice", USERS["alice"])
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert str(unavailable.value) == UNAVAILABLE_MESSAGE
    assert ldap_up(metrics) == 0

    server.start()
    assert (await backend.authenticate("alice", USERS["alice"])).groups == {"operators", "staff"}
    assert ldap_up(metrics) == 1


async def test_a_directory_that_accepts_but_never_answers_times_out(
    backend: LDAPBackend, server: SlapdServer, metrics: Metrics
) -> None:
    # One worker thread: a stuck directory call would keep it from running anything else.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    with server.frozen():
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match=re.escape(UNAVAILABLE_MESSAGE)):
            await backend.authenticate("alice", USERS["alice"])
        elapsed = time.monotonic() - started
        # libldap's own timeouts end the worker thread too, while slapd is still frozen.
        await asyncio.wait_for(asyncio.to_thread(lambda: None), MARGIN)
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN
    assert ldap_up(metrics) == 0

    await backend.authenticate("alice", USERS["alice"])
    assert ldap_up(metrics) == 1


async def test_a_refused_service_account_is_an_outage_not_a_wrong_password(
    config: LDAPConfig, metrics: Metrics, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-service-password")
    backend = LDAPBackend(replace(config, bind_password_file=wrong), metrics=metrics)

    with pytest.raises(DirectoryUnavailable):
        await backend.authenticate("alice", USERS["alice"])
    assert ldap_up(metrics) == 0


# -- configuration refused at construction -----------------------------------------------------


def test_an_empty_service_password_file_is_refused(config: LDAPConfig, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pass"
    empty.write_text("\n")

    with pytest.raises(ConfigError, match="auth.ldap.bind_password_file: the file is empty"):
        LDAPBackend(replace(config, bind_password_file=empty))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bind_dn": None, "bind_password_file": None}, "user_base must be a DN template"),
        ({"user_filter": "(mail={username}@example.test)"}, "must compare an attribute with {username}"),
        ({"start_tls": False}, "sends passwords in clear"),
    ],
)
def test_configurations_that_cannot_work_safely_are_refused(
    config: LDAPConfig, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LDAPBackend(replace(config, **changes))  # type: ignore[arg-type]


# -- ca_file, the health probe and administrators' lookups ----------------------------------------


async def test_ca_file_trusts_the_directory_without_ldap_conf(config: LDAPConfig, server: SlapdServer,
                                                             libldap_default: LibldapDefault, tmp_path: Path) -> None:
    other_ca, _, _ = write_ca(tmp_path, "someone-else")
    libldap_default(ldap.OPT_X_TLS_CACERTFILE, str(other_ca))  # what ldap.conf says no longer matters
    backend = LDAPBackend(replace(config, ca_file=server.ca_file))

    assert (await backend.authenticate("alice", USERS["alice"])).username == "alice"
    assert (await LDAPBackend(replace(config, url=server.ldaps_url, start_tls=False, ca_file=server.ca_file))
            .authenticate("bob", USERS["bob"])).username == "bob"
    with pytest.raises(DirectoryUnavailable):
        await LDAPBackend(replace(config, ca_file=other_ca)).authenticate("alice", USERS["alice"])


async def test_the_probe_keeps_ldap_up_current_between_logins(
    backend: LDAPBackend, server: SlapdServer, metrics: Metrics, config: LDAPConfig, tmp_path: Path
) -> None:
    assert await backend.probe() and ldap_up(metrics) == 1
    server.stop()
    started = time.monotonic()
    assert not await backend.probe() and ldap_up(metrics) == 0
    assert time.monotonic() - started < TIMEOUT + MARGIN
    server.start()
    assert await backend.probe() and ldap_up(metrics) == 1
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-service-password")
    assert not await LDAPBackend(replace(config, bind_password_file=wrong), metrics=metrics).probe()
    template = replace(config, bind_dn=None, bind_password_file=None, user_base=f"uid={{username}},{PEOPLE}")
    assert await LDAPBackend(template).probe()


async def test_canonical_name_finds_the_directorys_spelling(backend: LDAPBackend, server: SlapdServer) -> None:
    assert await backend.canonical_name("ALICE") == "alice"
    assert await backend.canonical_name("nobody") is None
    assert await backend.canonical_name("*") is None
    server.stop()
    with pytest.raises(DirectoryUnavailable):
        await backend.canonical_name("alice")


async def test_members_of_admin_groups_are_administrators_nested_groups_included(config: LDAPConfig) -> None:
    backend = LDAPBackend(replace(config, admin_groups=frozenset({"staff"})))

    alice = await backend.authenticate("alice", USERS["alice"])  # in staff through operators
    bob = await backend.authenticate("bob", USERS["bob"])

    assert alice == Identity("alice", frozenset({"operators", "staff"}), admin=True, backend="ldap",
                             display_name="山田 花子")
    assert bob.admin is False
    assert (await LDAPBackend(config).authenticate("alice", USERS["alice"])).admin is False  # none configured


async def test_display_names_come_from_the_configured_attribute_else_cn(config: LDAPConfig) -> None:
    default = LDAPBackend(config)
    assert (await default.authenticate("alice", USERS["alice"])).display_name == "山田 花子"  # displayName
    assert (await default.authenticate("bob", USERS["bob"])).display_name == "Bob Smith"  # no displayName: cn
    by_cn = LDAPBackend(replace(config, display_name_attribute="cn"))
    assert (await by_cn.authenticate("alice", USERS["alice"])).display_name == "alice"
    by_sn = LDAPBackend(replace(config, display_name_attribute="sn"))
    assert (await by_sn.authenticate("bob", USERS["bob"])).display_name == "bob"
