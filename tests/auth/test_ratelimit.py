"""Brute force: backoff per user and per source, a cap within ASVS, and no lever to lock a user out."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from auth.errors import RateLimited
from auth.ratelimit import Backoff, LoginThrottle, network_of, user_key
from base.db import Store
from tests.auth.conftest import Clock

HOME = ip_address("198.51.100.7")
ATTACKER = ip_address("203.0.113.66")


@pytest.fixture
def throttle(store: Store, clock: Clock) -> LoginThrottle:
    return LoginThrottle(store, clock)


async def fail(throttle: LoginThrottle, user: str, source: object, times: int = 1) -> None:
    for _ in range(times):
        await throttle.reserve(user, source)  # type: ignore[arg-type]  # reserved = counted until settled


async def wait_of(throttle: LoginThrottle, user: str, source: object) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        await throttle.reserve(user, source)  # type: ignore[arg-type]
    return refused.value


def test_backoff_doubles_after_the_free_failures_up_to_the_cap() -> None:
    backoff = Backoff(free_failures=5, base_delay=1, max_delay=900, window=3600, max_failures=100)
    assert [backoff.wait(n, 0, 0) for n in range(4, 10)] == [0, 1, 2, 4, 8, 16]
    assert backoff.wait(30, 0, 0) == 900
    assert backoff.wait(7, since_latest=3, since_oldest=3) == 1
    assert backoff.wait(100, since_latest=0, since_oldest=3000) == 600  # the cap: until the oldest leaves


async def test_five_failures_are_free_then_each_doubles_the_wait(throttle: LoginThrottle, clock: Clock) -> None:
    await fail(throttle, "alice", ATTACKER, 5)
    refused = await wait_of(throttle, "alice", ATTACKER)
    assert (refused.retry_after, refused.scope) == (1, "user")
    clock.advance(1)
    await fail(throttle, "alice", ATTACKER)
    assert (await wait_of(throttle, "alice", ATTACKER)).retry_after == 2
    clock.advance(2)
    await fail(throttle, "alice", ATTACKER)
    assert (await wait_of(throttle, "alice", ATTACKER)).retry_after == 4


async def test_the_name_is_counted_however_it_is_typed(throttle: LoginThrottle) -> None:
    await fail(throttle, "alice", ATTACKER, 2)
    await fail(throttle, "ALICE", ATTACKER, 2)
    await fail(throttle, " Alice ", ATTACKER)
    await wait_of(throttle, "alice", ATTACKER)
    assert user_key(" ÄLICE ") == "älice"


async def test_full_width_and_compatibility_spellings_share_the_names_counter(throttle: LoginThrottle) -> None:
    for spelling in ("ａｌｉｃｅ", "ＡＬＩＣＥ", "Ａlice", "alice", "ａｌｉｃｅ\u3000"):
        await fail(throttle, spelling, ATTACKER)
    for spelling in ("alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"):
        assert (await wait_of(throttle, spelling, ATTACKER)).scope == "user"


async def test_an_attacker_gets_far_fewer_than_100_guesses_an_hour(throttle: LoginThrottle, clock: Clock) -> None:
    start, guesses = clock.now, 0
    while clock.now - start < 3600:
        try:
            await fail(throttle, "alice", ATTACKER)
            guesses += 1
        except RateLimited as refused:
            clock.advance(refused.retry_after)
    assert 10 <= guesses <= 25  # ASVS 2.2.1 / NIST 800-63B: at most 100 per hour and account


async def test_password_spraying_is_stopped_per_source(throttle: LoginThrottle) -> None:
    for n in range(20):
        await fail(throttle, f"user{n}", ATTACKER)
    refused = await wait_of(throttle, "user99", ATTACKER)
    assert refused.scope == "source"
    await throttle.reserve("user99", HOME)  # other sources are not affected


async def test_a_success_starts_the_users_count_again(throttle: LoginThrottle) -> None:
    await fail(throttle, "alice", HOME, 4)
    await throttle.succeeded(await throttle.reserve("alice", HOME))
    await fail(throttle, "alice", HOME, 5)
    await wait_of(throttle, "alice", HOME)


async def test_a_withdrawn_attempt_does_not_count(throttle: LoginThrottle) -> None:
    for _ in range(10):
        await throttle.withdraw(await throttle.reserve("alice", HOME))
    await throttle.reserve("alice", HOME)


async def test_strangers_cannot_lock_a_user_out_of_a_network_they_logged_in_from(
        throttle: LoginThrottle, clock: Clock) -> None:
    await throttle.succeeded(await throttle.reserve("alice", HOME))
    start = clock.now
    while clock.now - start < 1800:  # for half an hour an attacker fails as often as let, from anywhere
        try:
            await fail(throttle, "alice", ATTACKER)
        except RateLimited as refused:
            clock.advance(refused.retry_after - 0.5)  # and keeps the lock on by coming back just in time
    assert (await wait_of(throttle, "alice", ATTACKER)).scope == "user"
    home_again = ip_address("198.51.100.7")
    await throttle.succeeded(await throttle.reserve("alice", home_again))  # her network is judged on its own


async def test_a_familiar_network_still_has_its_own_backoff(throttle: LoginThrottle) -> None:
    await throttle.succeeded(await throttle.reserve("alice", HOME))
    await fail(throttle, "alice", HOME, 5)
    assert (await wait_of(throttle, "alice", HOME)).scope == "user_source"


def test_ipv6_sources_are_judged_by_their_64() -> None:
    assert network_of(ip_address("2001:db8:1:2:aaaa::1")) == network_of(ip_address("2001:db8:1:2:bbbb::9"))
    assert network_of(ip_address("2001:db8:1:2::1")) != network_of(ip_address("2001:db8:1:3::1"))
    assert network_of(ip_address("::ffff:203.0.113.66")) == network_of(ATTACKER) == "203.0.113.66/32"
    assert network_of(ip_address("::ffff:203.0.113.66")) != network_of(ip_address("::ffff:203.0.113.67"))


async def test_spraying_from_addresses_rotating_through_one_64_is_stopped_like_from_one_address(
        throttle: LoginThrottle) -> None:
    for n in range(20):  # a host owns its /64: every address in it is the same source
        await fail(throttle, f"user{n}", ip_address(f"2001:db8:1:2:{n:x}:{n:x}::1"))
    refused = await wait_of(throttle, "user99", ip_address("2001:db8:1:2:ffff::99"))
    assert refused.scope == "source"
    await throttle.reserve("user99", ip_address("2001:db8:1:3::1"))  # the next /64 is someone else


async def test_a_network_is_familiar_to_a_user_who_logged_in_from_it_lately(
        throttle: LoginThrottle, clock: Clock) -> None:
    assert not await throttle.familiar("alice", HOME)
    await throttle.succeeded(await throttle.reserve("alice", HOME))
    assert await throttle.familiar("ＡＬＩＣＥ", ip_address("198.51.100.7"))
    assert not await throttle.familiar("alice", ATTACKER) and not await throttle.familiar("bob", HOME)
    clock.advance(30 * 86400 + 1)
    assert not await throttle.familiar("alice", HOME)


async def test_a_burst_of_parallel_attempts_cannot_slip_through_together(throttle: LoginThrottle) -> None:
    outcomes = await asyncio.gather(*(throttle.reserve("alice", ATTACKER) for _ in range(20)),
                                    return_exceptions=True)
    assert sum(not isinstance(outcome, RateLimited) for outcome in outcomes) == 5


async def test_old_failures_are_forgotten_and_purged(throttle: LoginThrottle, clock: Clock) -> None:
    await fail(throttle, "alice", ATTACKER, 5)
    clock.advance(3601)
    await throttle.reserve("alice", ATTACKER)
    await throttle.purge()
    await fail(throttle, "alice", ATTACKER, 3)  # 1 + 3 failures in the window: still free
