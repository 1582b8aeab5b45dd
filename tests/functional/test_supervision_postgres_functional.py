"""Two gateway processes on one PostgreSQL: each lists the other's live sessions and ends them, within 2 s.

Node A runs in this process, node B is ``deskgate serve`` in a child process; both use the same
configuration (but their own listeners), database, users and Xvnc desktop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import text

from base.db import Store
from gateway.config import load_config
from gateway.errors import TargetInUse
from gateway.session_directory import SessionDirectory
from gateway.session_watch import CloseCode
from gateway.sessions import LiveSession
from gateway.web.app import start_gateway
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)
from tests.functional.auth_helpers import (
    AuthGateway,
    Clock,
    add_local_users,
    cookie_session,
    free_port,
    gateway_process,
    wait_ready,
    write_config,
)
from tests.functional.supervision_helpers import POLICIES, USERS, EventStream, closed_with, open_desktop
from tests.recorder.test_index import awkward_index, check_visibility

pytestmark = pytest.mark.functional


@pytest.fixture
async def clean_database(postgres_url: str) -> AsyncIterator[str]:  # noqa: F811
    store = await Store.open(postgres_url)
    try:
        async with store.transaction() as connection:
            await connection.execute(text("TRUNCATE live_sessions, live_session_events, notices, recordings, "
                                          "recording_events, "
                                          "audit_events, web_sessions, totp_used_steps RESTART IDENTITY CASCADE"))
    finally:
        await store.close()
    yield postgres_url


async def sign_in(http: aiohttp.ClientSession, url: str, gateway: AuthGateway, user: str, steps: int = 0) -> str:
    body = {"username": user, "password": "correct-horse-battery-staple", "totp": gateway.code(user, steps)}
    response = await http.post(f"{url}/api/v1/login", json=body)
    assert response.status == 200, await response.text()
    token: str = (await response.json())["csrf_token"]
    return token


async def sessions_of(http: aiohttp.ClientSession, url: str) -> dict[str, dict[str, Any]]:
    response = await http.get(f"{url}/api/v1/sessions")
    assert response.status == 200, await response.text()
    return {session["user"]: session for session in (await response.json())["sessions"]}


def without_idle(sessions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {user: {key: value for key, value in fields.items() if key != "idle_seconds"}
            for user, fields in sessions.items()}


async def end(http: aiohttp.ClientSession, url: str, token: str, session_id: str, reason: str) -> int:
    response = await http.delete(f"{url}/api/v1/sessions/{session_id}", json={"reason": reason},
                                 headers={"Origin": url, "X-CSRF-Token": token})
    return response.status


async def test_two_nodes_list_each_others_sessions_and_end_them(tmp_path: Path, clean_database: str,
                                                                desktop: Any) -> None:
    changes = {**POLICIES, "storage": {"database": clean_database}}
    config_path = write_config(tmp_path, changes, desktop.port)
    config = load_config(config_path)
    secrets = add_local_users(config, USERS)
    port = free_port()
    settings = yaml.safe_load(config_path.read_text())
    settings["listen"] = {"http": f"127.0.0.1:{port}", "metrics": f"127.0.0.1:{free_port()}"}
    node_b_config = tmp_path / "node-b.yaml"
    node_b_config.write_text(yaml.safe_dump(settings))

    running = await start_gateway(config)
    node_a = AuthGateway(running, config, Clock(), secrets)
    a = node_a.url
    try:
        with gateway_process(node_b_config, port) as b:
            await wait_ready(b)
            async with cookie_session() as alice, cookie_session() as bob, cookie_session() as sam_a, \
                    cookie_session() as sam_b, cookie_session() as tess:
                await sign_in(alice, a, node_a, "alice")
                await sign_in(bob, b, node_a, "bob")
                alice_desktop, bob_desktop = await open_desktop(alice, a), await open_desktop(bob, b)
                alice_notices = await EventStream.open(alice, a)  # alice's page is on node A
                await alice_notices.next()
                token_a = await sign_in(sam_a, a, node_a, "sam")
                token_b = await sign_in(sam_b, b, node_a, "sam", steps=1)  # a code is used once, on every node
                tess_token = await sign_in(tess, b, node_a, "tess")

                on_a, on_b = await sessions_of(sam_a, a), await sessions_of(sam_b, b)
                assert sorted(on_a) == sorted(on_b) == ["alice", "bob"]
                assert without_idle(on_a) == without_idle(on_b)
                for user in on_a:  # the two requests may fall either side of a second's rounding
                    assert abs(on_a[user]["idle_seconds"] - on_b[user]["idle_seconds"]) <= 1
                # A trainer on node B may not see them, nor end an operator's session held by node A.
                assert await sessions_of(tess, b) == {}
                assert await end(tess, b, tess_token, on_a["alice"]["id"], "not mine to end") == 403

                # Node A ends bob's session, which node B holds; node B ends alice's, which node A holds.
                asked = time.monotonic()
                assert await end(sam_a, a, token_a, on_a["bob"]["id"], "shift change") == 202
                closed = await closed_with(bob_desktop, within=2)
                assert (closed.code, closed.reason) == (CloseCode.TERMINATED, "ended by sam: shift change")
                assert time.monotonic() - asked < 2
                asked = time.monotonic()
                assert await end(sam_b, b, token_b, on_b["alice"]["id"], "system maintenance") == 202
                closed = await closed_with(alice_desktop, within=2)
                assert (closed.code, closed.reason) == (CloseCode.TERMINATED, "ended by sam: system maintenance")
                assert time.monotonic() - asked < 2
                # Posted on node B, shown on alice's page connected to node A.
                notice = await alice_notices.next_notice(timeout=5)
                assert (notice["type"], notice["by"], notice["reason"]) == ("session_ended", "sam",
                                                                           "system maintenance")
                alice_notices.close()
    finally:
        await running.stop()
    ends = [(e.user, e.target, e.outcome, e.reason) for e in await node_a.audit() if e.action == "session.end"]
    assert ends == [("tess", "alice", "denied", ends[0][3]), ("sam", "bob", "allowed", "shift change"),
                    ("sam", "alice", "allowed", "system maintenance")]


async def test_recordings_are_found_by_the_users_groups_on_postgresql(clean_database: str) -> None:
    store = await Store.open(clean_database)
    try:
        await check_visibility(await awkward_index(store))
    finally:
        await store.close()


async def test_of_simultaneous_opens_of_one_desktop_on_two_nodes_one_wins(clean_database: str) -> None:
    """max_sessions on PostgreSQL: the count and the insert are serialized per target across connections."""
    stores = [await Store.open(clean_database) for _ in range(2)]
    try:
        nodes = [SessionDirectory(store, f"gw-{index}") for index, store in enumerate(stores)]
        for round_ in range(3):
            opens = [nodes[index % 2].publish(LiveSession(f"6b062500-{round_:04x}{index:04x}", "vnc", f"user{index}",
                                                          "127.0.0.1", "desk-07", f"web-{index}",
                                                          frozenset({"operators"})), max_sessions=1)
                     for index in range(6)]
            results = await asyncio.gather(*opens, return_exceptions=True)
            assert sum(result is None for result in results) == 1, results
            assert all(isinstance(result, TargetInUse) for result in results if result is not None)
            assert len(await nodes[1].holders("desk-07")) == 1
            async with stores[0].transaction() as connection:
                await connection.execute(text("DELETE FROM live_sessions"))
    finally:
        for store in stores:
            await store.close()
