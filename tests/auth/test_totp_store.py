"""TOTP state in the database: sealed secrets, one use per step on every node, pending enrollments."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from auth.errors import SecretKeyError
from auth.identity import Identity
from auth.secretbox import SecretBox
from auth.tables import totp_enrollments, totp_secrets
from auth.totp_store import DatabaseUsedCodes, Enrollments, TOTPSecrets, token_hash
from base.db import Store
from tests.auth.conftest import Clock

ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="ldap")
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


async def test_secrets_are_sealed_at_rest(store: Store, box: SecretBox) -> None:
    secrets = TOTPSecrets(store, box)
    assert await secrets.get("alice") is None
    await secrets.set("alice", SECRET)
    assert await secrets.get("alice") == SECRET
    async with store.read() as connection:
        stored: str = (await connection.execute(select(totp_secrets.c.secret))).scalar_one()
    assert SECRET not in stored and stored.startswith("v1.")


async def test_a_secret_copied_onto_another_user_does_not_open(store: Store, box: SecretBox) -> None:
    secrets = TOTPSecrets(store, box)
    await secrets.set("mallory", SECRET)
    async with store.transaction() as connection:
        row = (await connection.execute(select(totp_secrets))).one()
        await connection.execute(totp_secrets.insert().values(username="alice", secret=row.secret,
                                                              enrolled=row.enrolled))
    with pytest.raises(SecretKeyError, match="belongs to another record"):
        await secrets.get("alice")


async def test_add_if_absent_never_replaces(store: Store, box: SecretBox) -> None:
    secrets = TOTPSecrets(store, box)
    assert await secrets.add_if_absent("alice", SECRET)
    assert not await secrets.add_if_absent("alice", "A" * 32)
    assert await secrets.get("alice") == SECRET
    await secrets.set("alice", "A" * 32)  # an administrator's reset does
    assert await secrets.get("alice") == "A" * 32


async def test_a_step_is_used_once_and_never_an_earlier_one(store: Store) -> None:
    used = DatabaseUsedCodes(store)
    assert await used.check_and_mark("alice", 100)
    assert not await used.check_and_mark("alice", 100)
    assert not await used.check_and_mark("alice", 99)
    assert await used.check_and_mark("alice", 101)
    assert await used.check_and_mark("bob", 100)


async def test_two_nodes_racing_on_one_code_accept_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    nodes = [await Store.open(url) for _ in range(2)]
    try:
        checks = [DatabaseUsedCodes(nodes[n % 2]).check_and_mark("alice", 5000) for n in range(20)]
        assert sorted(await asyncio.gather(*checks)) == [False] * 19 + [True]
        reopened = await Store.open(url)  # a restarted node remembers
        try:
            assert not await DatabaseUsedCodes(reopened).check_and_mark("alice", 5000)
        finally:
            await reopened.close()
    finally:
        for node in nodes:
            await node.close()


async def test_an_enrollment_is_found_by_its_token_until_it_expires(store: Store, box: SecretBox,
                                                                    clock: Clock) -> None:
    enrollments = Enrollments(store, box, clock, lifetime=600)
    pending = await enrollments.start(ALICE, "10.0.0.5")
    found = await enrollments.get(pending.token)
    assert found is not None and (found.identity, found.secret, found.source) == (ALICE, pending.secret, "10.0.0.5")
    async with store.read() as connection:
        row = (await connection.execute(select(totp_enrollments))).one()
    assert row.id_hash == token_hash(pending.token) and pending.token not in row
    assert pending.secret not in row.secret
    assert await enrollments.get("not-the-token") is None
    clock.advance(600)
    assert await enrollments.get(pending.token) is None
    assert await enrollments.purge_expired() == 1


async def test_a_new_enrollment_replaces_the_users_earlier_one(store: Store, box: SecretBox) -> None:
    enrollments = Enrollments(store, box)
    first = await enrollments.start(ALICE, "10.0.0.5")
    second = await enrollments.start(ALICE, "10.0.0.6")
    assert await enrollments.get(first.token) is None
    assert await enrollments.get(second.token) is not None


async def test_an_enrollment_is_used_up_by_wrong_codes(store: Store, box: SecretBox) -> None:
    enrollments = Enrollments(store, box, max_failures=3)
    pending = await enrollments.start(ALICE, "10.0.0.5")
    assert await enrollments.record_failure(pending)
    assert await enrollments.record_failure(pending)
    assert not await enrollments.record_failure(pending)
    assert await enrollments.get(pending.token) is None
