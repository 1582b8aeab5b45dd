"""Login: latency of ``POST /api/v1/login`` one at a time, and logins per second; local users and LDAP.

Each kind runs against a fresh gateway on one core. A run is ``SEQUENTIAL`` logins one
after another — their p50 and p99 — then ``CONCURRENT`` logins from ``CLIENTS`` clients at
once, for the rate. Each login is a new connection with no cookie.

- Local users: ``LOCAL_USERS`` operators with argon2id hashes (as ``deskgate user add``
  makes them) and TOTP; every user logs in once before the measurement (a first login moves
  the TOTP secret from the users file into the database), and every login uses a code its
  user has not used yet, valid for at least 10 s more (:class:`bench.deployment.UserPool`), so
  that a login waiting behind others never crosses a step boundary; a refusal as "wrong or
  expired" is retried with a fresh code all the same (``RETRIES``), and listed in results.json.
- LDAP: a real slapd (:class:`tests.ldap_server.SlapdServer`: StartTLS, a service account,
  search then bind, groups) as the only backend. Its few users have no authenticator and
  TOTP is not required for them — with TOTP each could log in only about once per 30 s step —
  so this figure is password and directory only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.deployment import BenchUser, LoginRefused, UserPool, http_session, log_in, write_config
from bench.harness import Harness
from bench.report import Figure, Measured, Summary, percentile
from tests.ldap_server import (
    GROUPS_BASE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USERS,
    SlapdServer,
)

LOCAL_USERS = 80  # each can log in about twice at once, then once per 30 s time step
DIRECTORY_USERS = ("alice", "neil, j (ops)*")  # the directory's members of "operators"
SEQUENTIAL = 20
CONCURRENT = 24
CLIENTS = 8
TARGETS = {"bench-desk": 1}  # a target nobody opens: the config needs one for its policy

Credentials = Callable[[], Awaitable[tuple[BenchUser, str]]]


RETRIES = 2  # a code refused as expired (a step boundary despite the margin) is retried with a fresh one
retried: list[str] = []  # what was retried in this run, for results.json


async def timed_login(url: str, credentials: Credentials) -> float:
    """Milliseconds one login takes (the attempt that succeeded)."""
    attempt = 0
    while True:
        user, code = await credentials()
        async with http_session() as http:
            started = time.perf_counter()
            try:
                await log_in(http, url, user, code)
            except LoginRefused as exc:
                if exc.status != 401 or not code or attempt >= RETRIES:
                    raise
                attempt += 1
                retried.append(str(exc))
                continue
            return (time.perf_counter() - started) * 1000


async def concurrent_logins(url: str, credentials: Credentials, count: int) -> float:
    """Log in ``count`` times from :data:`CLIENTS` clients at once; return logins per second."""
    async def client(logins: int) -> None:
        for _ in range(logins):
            await timed_login(url, credentials)

    started = time.perf_counter()
    await asyncio.gather(*(client(count // CLIENTS + (index < count % CLIENTS)) for index in range(CLIENTS)))
    return count / (time.perf_counter() - started)


async def login_runs(url: str, credentials: Credentials, runs: int) -> tuple[list[list[float]], list[float]]:
    latencies: list[list[float]] = []
    rates: list[float] = []
    for _ in range(runs):
        latencies.append([await timed_login(url, credentials) for _ in range(SEQUENTIAL)])
        rates.append(await concurrent_logins(url, credentials, CONCURRENT))
    return latencies, rates


async def local_logins(workdir: Path, runs: int) -> tuple[list[list[float]], list[float]]:
    async with Harness(workdir) as harness:
        gateway = await harness.gateway("gateway", TARGETS, user_count=LOCAL_USERS)
        pool = UserPool(gateway.users[1:])  # the first one is logged in already
        await concurrent_logins(gateway.url, pool.take, LOCAL_USERS - 1)
        return await login_runs(gateway.url, pool.take, runs)


async def ldap_logins(workdir: Path, runs: int) -> tuple[list[list[float]], list[float]]:
    users = itertools.cycle([BenchUser(uid, USERS[uid], "") for uid in DIRECTORY_USERS])

    async def credentials() -> tuple[BenchUser, str]:
        return next(users), ""

    with SlapdServer(workdir) as slapd:
        (workdir / "ldap.pass").write_text(SERVICE_PASSWORD + "\n")
        ldap = {"url": slapd.url, "start_tls": True, "ca_file": str(slapd.ca_file), "bind_dn": SERVICE_DN,
                "bind_password_file": str(workdir / "ldap.pass"), "user_base": PEOPLE,
                "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))", "group_base": GROUPS_BASE}
        config = write_config(workdir / "gateway", TARGETS, {"local": None, "ldap": ldap, "order": ["ldap"],
                                                             "totp": {"required": False}})
        async with Harness(workdir) as harness:
            _, url = await harness.serve(config)
            await concurrent_logins(url, credentials, CLIENTS)  # the first logins open the directory connections
            return await login_runs(url, credentials, runs)


def _figures(key: str, kind: str, latencies: list[list[float]], rates: list[float], note: str) -> list[Figure]:
    figures = [Figure(f"login_{key}_p{q}", f"login latency p{q}, {kind}", "ms",
                      Summary.of([percentile(run, q) for run in latencies]), None, higher_is_better=False,
                      note=note if q == 50 else "one login at a time")
               for q in (50, 99)]
    figures.append(Figure(f"logins_per_second_{key}", f"logins per second, {kind}", "logins/s",
                          Summary.of(rates), None, note=f"{CLIENTS} clients at once, gateway on one core"))
    return figures


async def measure_login(workdir: Path, runs: int) -> Measured:
    retried.clear()
    local = await local_logins(workdir / "local", runs)
    ldap = await ldap_logins(workdir / "ldap", runs)
    return Measured(
        _figures("local", "local users", *local, "argon2id + TOTP")
        + _figures("ldap", "LDAP", *ldap, "slapd, StartTLS; no TOTP"),
        {"local": {"latency_ms": local[0], "logins_per_second": local[1]},
         "ldap": {"latency_ms": ldap[0], "logins_per_second": ldap[1]},
         "retried_logins": list(retried)},
    )
