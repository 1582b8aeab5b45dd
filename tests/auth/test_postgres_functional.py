"""The authentication state on PostgreSQL, shared by two nodes: the SQL is portable, the races are decided once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from sqlalchemy import text

from auth.accounts import DisabledAccounts
from auth.errors import RateLimited
from auth.identity import Identity
from auth.ratelimit import LoginThrottle
from auth.secretbox import SecretBox
from auth.totp_store import DatabaseUsedCodes, Enrollments, TOTPSecrets
from auth.websession import WebSessionStore
from base.db import Store
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)

pytestmark = pytest.mark.functional

ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="ldap")
TABLES = "web_sessions, totp_secrets, totp_used_steps, totp_enrollments, auth_failures, auth_known_sources, " \
         "disabled_accounts"


@pytest.fixture
async def nodes(postgres_url: str) -> AsyncIterator[tuple[Store, Store]]:  # noqa: F811
    first, second = await Store.open(postgres_url), await Store.open(postgres_url)
    async with first.transaction() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_code_is_accepted_once_across_nodes(nodes: tuple[Store, Store]) -> None:
    checks = [DatabaseUsedCodes(nodes[n % 2]).check_and_mark("alice", 7000) for n in range(10)]
    assert sorted(await asyncio.gather(*checks)) == [False] * 9 + [True]
    assert await DatabaseUsedCodes(nodes[1]).check_and_mark("alice", 7001)


async def test_secrets_enrollments_and_disabled_accounts(nodes: tuple[Store, Store], tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "totp.key")
    secrets = [TOTPSecrets(node, box) for node in nodes]
    assert await secrets[0].add_if_absent("alice", "A" * 32)
    assert not await secrets[1].add_if_absent("alice", "B" * 32)
    await secrets[1].set("alice", "C" * 32)
    assert await secrets[0].get("alice") == "C" * 32
    pending = await Enrollments(nodes[0], box).start(ALICE, "10.0.0.5")
    found = await Enrollments(nodes[1], box).get(pending.token)
    assert found is not None and found.identity == ALICE
    assert await Enrollments(nodes[1], box, max_failures=1).record_failure(pending) is False
    disabled = DisabledAccounts(nodes[0])
    assert await disabled.disable("alice", "admin", None) and not await disabled.disable("alice", "admin", None)
    assert await DisabledAccounts(nodes[1]).is_disabled("alice")


async def test_web_sessions_end_on_every_node(nodes: tuple[Store, Store]) -> None:
    first, second = (WebSessionStore(node, 600, 3600) for node in nodes)
    session = await first.create(ALICE, "10.0.0.5")
    assert (await second.get(session.id)) is not None
    assert await second.end_user("alice", "your account was disabled") == 1
    assert await first.get(session.id) is None
    assert await first.why_ended([session.id]) == {session.id: "your account was disabled"}


async def test_the_throttle_serializes_reservations_across_nodes(nodes: tuple[Store, Store]) -> None:
    source = ip_address("203.0.113.66")
    reservations = [LoginThrottle(nodes[n % 2]).reserve("alice", source) for n in range(12)]
    outcomes = await asyncio.gather(*reservations, return_exceptions=True)
    assert sum(not isinstance(outcome, RateLimited) for outcome in outcomes) == 5
    attempt = next(outcome for outcome in outcomes if not isinstance(outcome, BaseException))
    await LoginThrottle(nodes[1]).withdraw(attempt)
    await LoginThrottle(nodes[0]).purge()
