"""Seeing a recording unmasked: only with ``unmask: true`` in a policy, only after a reason, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from auth.identity import Identity
from auth.websession import csrf_token_for
from base.metrics import Metrics
from gateway.config import Config
from gateway.unmask import GRANT_SECONDS, grant_valid, issue_grant
from gateway.web.keys import AUDIT, METRICS, RECORDING_INDEX, WEB_SESSIONS
from recorder.masking import MASKS_EVENT, MaskRegion, MaskSet, masks_event_fields
from tests.gateway.test_recording_routes import (
    ALICE_ID,
    Client,
    ClientFactory,
    add_recordings,
    audit_trail,
    build_app,
    write_config,
)
from tests.recorder.test_index import end_record, event, journal_header, write_journal

MASKED_ID = "20261127T110000Z-0000a5c0"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


@pytest.fixture
async def client(config: Config, aiohttp_client: ClientFactory) -> Client:
    client = await aiohttp_client(build_app(config))
    await add_recordings(client.app, config)
    return client


async def sign_in(client: Client, username: str, *groups: str) -> dict[str, str]:
    session = await client.app[WEB_SESSIONS].create(Identity(username, frozenset(groups), False, "local"), "127.0.0.1")
    return {"Cookie": f"deskgate={session.id}", "X-CSRF-Token": csrf_token_for(session.id)}


def test_a_grant_holds_for_its_web_session_recording_and_time_only() -> None:
    grant = issue_grant("session-a", ALICE_ID, 1000.0)
    assert grant_valid(grant, "session-a", ALICE_ID, 1000.0 + GRANT_SECONDS - 1)
    assert not grant_valid(grant, "session-a", ALICE_ID, 1000.0 + GRANT_SECONDS + 1)
    assert not grant_valid(grant, "session-b", ALICE_ID, 1000.0)
    assert not grant_valid(grant, "session-a", MASKED_ID, 1000.0)
    assert not grant_valid(grant[:-1] + ("0" if grant[-1] != "0" else "1"), "session-a", ALICE_ID, 1000.0)
    assert not grant_valid(None, "session-a", ALICE_ID, 1000.0)


async def test_without_unmask_in_a_policy_the_request_is_refused_and_audited(client: Client) -> None:
    headers = await sign_in(client, "sue", "supervisors")
    response = await client.post(f"/api/v1/recordings/{ALICE_ID}/unmask", json={"reason": "complaint 42"},
                                 headers=headers)
    assert response.status == 403 and "unmask: true" in (await response.json())["error"]
    assert await audit_trail(client) == [("sue", "recording.unmask", ALICE_ID, "denied")]
    metrics: Metrics = client.app[METRICS]
    assert metrics.unmask_requests_total.labels(result="denied")._value.get() == 1
    video = await client.get(f"/api/v1/recordings/{ALICE_ID}/video/unmasked?grant=1.ab", headers=headers)
    assert video.status == 403


async def test_a_reason_is_required(client: Client) -> None:
    headers = await sign_in(client, "pia", "privacy")
    for body in ({}, {"reason": "  "}, {"reason": "x" * 301}, {"reason": 7}):
        response = await client.post(f"/api/v1/recordings/{ALICE_ID}/unmask", json=body, headers=headers)
        assert response.status == 400, body
    assert await audit_trail(client) == []


async def test_a_reason_given_shows_typed_text_and_is_audited_and_in_the_events(client: Client) -> None:
    headers = await sign_in(client, "pia", "privacy")
    withheld = await (await client.get(f"/api/v1/recordings/{ALICE_ID}/typed", headers=headers)).json()
    assert withheld["withheld"] and withheld["entries"] == []
    response = await client.post(f"/api/v1/recordings/{ALICE_ID}/unmask", json={"reason": "customer complaint 42"},
                                 headers=headers)
    assert response.status == 200
    answer = await response.json()
    assert "video" not in answer  # alice's recording has no masks: its video is the one already shown
    typed = await (await client.get(answer["typed"], headers=headers)).json()
    assert typed["withheld"] is False and typed["entries"] == [{"t": 1.0, "end": 1.0, "text": "ab"}]
    assert ("pia", "recording.unmask", ALICE_ID, "allowed") in await audit_trail(client)
    reasons = [e.reason for e in await client.app[AUDIT].list() if e.action == "recording.unmask"]
    assert reasons == ["customer complaint 42"]
    events = await client.app[RECORDING_INDEX].events(ALICE_ID)
    unmasked = [timed.event for timed in events if timed.event.type == "unmasked"]
    assert [dict(e.fields) for e in unmasked] == [{"by": "pia", "reason": "customer complaint 42"}]

    # The grant is this sign-in's: another session of the same user, or someone else, gets counts only.
    other = await sign_in(client, "pia", "privacy")
    again = await (await client.get(answer["typed"], headers={"Cookie": other["Cookie"]})).json()
    assert again["withheld"] is True
    sue = await sign_in(client, "sue", "supervisors")
    assert (await (await client.get(answer["typed"], headers={"Cookie": sue["Cookie"]})).json())["withheld"] is True


async def test_the_raw_journal_of_a_masked_recording_needs_unmask(client: Client, config: Config) -> None:
    started = datetime(2026, 11, 27, 11, tzinfo=UTC)
    masks = (MaskSet((1024, 768), (MaskRegion(10, 10, 100, 20, "card"),)),)
    journal = write_journal(config.storage.recordings,
                            [event(0.0, "session_start"), event(0.0, MASKS_EVENT, **masks_event_fields(masks)),
                             end_record(5.0, started=started)],
                            journal_header(MASKED_ID, started, user="carl"))
    await client.app[RECORDING_INDEX].add_journal(journal, None, "gw-1")
    sue = await sign_in(client, "sue", "supervisors")
    assert (await client.get(f"/api/v1/recordings/{MASKED_ID}/journal", headers=sue)).status == 403
    assert (await client.get(f"/api/v1/recordings/{ALICE_ID}/journal", headers=sue)).status == 200
    pia = await sign_in(client, "pia", "privacy")
    assert (await client.get(f"/api/v1/recordings/{MASKED_ID}/journal", headers=pia)).status == 200
    answer = await (await client.post(f"/api/v1/recordings/{MASKED_ID}/unmask", json={"reason": "dispute"},
                                      headers=pia)).json()
    assert answer["video"].startswith(f"/api/v1/recordings/{MASKED_ID}/video/unmasked?grant=")
