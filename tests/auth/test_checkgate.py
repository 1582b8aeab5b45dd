"""The bound on password checks in flight: slots, a line with a bounded wait, familiar networks first."""

from __future__ import annotations

import asyncio

import pytest

from auth.checkgate import QUEUE_FULL, WAITED_TOO_LONG, PasswordCheckGate
from auth.errors import ServerBusy
from base.metrics import Metrics


class Checks:
    """Password checks that end when the test says so, recording the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    def run(self, gate: PasswordCheckGate, name: str, *, familiar: bool = False) -> asyncio.Task[str]:
        """Admit a login now (raising ServerBusy at once, as the gate does) and run its check in a task."""
        admission = gate.admit(familiar=familiar)
        release = self.release[name] = asyncio.Event()

        async def check() -> str:
            self.started.append(name)
            await release.wait()
            return name

        return asyncio.create_task(admission.run(check))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def refused(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("deskgate_password_checks_refused_total", {"reason": reason}) or 0.0


async def test_at_most_slots_checks_run_and_the_rest_wait_their_turn_in_order() -> None:
    metrics, checks = Metrics(), Checks()
    gate = PasswordCheckGate(slots=2, queue=4, metrics=metrics)
    tasks = [checks.run(gate, f"login-{n}") for n in range(5)]
    await settle()
    assert checks.started == ["login-0", "login-1"]
    assert (gate.running, gate.waiting) == (2, 3)
    assert metrics.registry.get_sample_value("deskgate_password_checks_waiting") == 3
    for n in range(5):
        checks.release[f"login-{n}"].set()
        await settle()
    assert [await task for task in tasks] == [f"login-{n}" for n in range(5)]
    assert checks.started == [f"login-{n}" for n in range(5)]
    assert (gate.running, gate.waiting) == (0, 0)
    assert metrics.registry.get_sample_value("deskgate_password_checks_running") == 0


async def test_a_full_line_is_refused_on_arrival_with_retry_after() -> None:
    metrics, checks = Metrics(), Checks()
    gate = PasswordCheckGate(slots=1, queue=2, familiar_queue=0, retry_after=7, metrics=metrics)
    held = [checks.run(gate, f"login-{n}") for n in range(3)]
    with pytest.raises(ServerBusy) as busy:  # at once: no await between arrival and refusal
        gate.admit(familiar=False)
    assert (busy.value.retry_after, busy.value.reason) == (7, QUEUE_FULL)
    assert "busy" in str(busy.value) and "7 s" in str(busy.value)
    assert refused(metrics, "queue_full") == 1
    await settle()
    assert len(checks.started) == 1
    for event in checks.release.values():
        event.set()
    await asyncio.gather(*held)


async def test_a_wait_longer_than_max_wait_is_refused_and_gives_its_place_back() -> None:
    metrics, checks = Metrics(), Checks()
    gate = PasswordCheckGate(slots=1, queue=1, max_wait=0.05, metrics=metrics)
    first = checks.run(gate, "slow")
    late = gate.admit(familiar=False)
    with pytest.raises(ServerBusy) as busy:
        await late.run(lambda: asyncio.sleep(0))
    assert busy.value.reason == WAITED_TOO_LONG and refused(metrics, "wait_timeout") == 1
    assert gate.waiting == 0
    checks.release["slow"].set()
    await first
    assert (gate.running, gate.waiting) == (0, 0)


async def test_familiar_networks_have_their_own_places_and_go_first() -> None:
    checks = Checks()
    gate = PasswordCheckGate(slots=1, queue=2, familiar_queue=1)
    strangers = [checks.run(gate, f"stranger-{n}") for n in range(3)]  # one runs, two wait: the line is full
    with pytest.raises(ServerBusy):
        gate.admit(familiar=False)
    colleague = checks.run(gate, "colleague", familiar=True)
    await settle()
    assert gate.waiting == 3
    checks.release["stranger-0"].set()
    await settle()
    assert checks.started == ["stranger-0", "colleague"]  # ahead of the strangers who came first
    for event in checks.release.values():
        event.set()
    await asyncio.gather(colleague, *strangers)
    assert checks.started[2:] == ["stranger-1", "stranger-2"]


async def test_a_check_keeps_its_slot_until_it_ends_even_when_its_caller_gives_up() -> None:
    checks = Checks()
    gate = PasswordCheckGate(slots=1, queue=1)
    caller = checks.run(gate, "abandoned")
    await settle()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert gate.running == 1  # the hashing thread goes on: so does its claim on a slot
    waiting = checks.run(gate, "next")
    await settle()
    assert checks.started == ["abandoned"]
    checks.release["abandoned"].set()
    await settle()
    assert checks.started == ["abandoned", "next"]
    checks.release["next"].set()
    assert await waiting == "next"
    assert gate.running == 0


async def test_leaving_gives_back_the_place_or_the_slot_that_no_check_used() -> None:
    checks = Checks()
    gate = PasswordCheckGate(slots=1, queue=1)
    throttled = gate.admit(familiar=False)  # a free slot: granted on arrival
    in_line = gate.admit(familiar=False)
    assert (gate.running, gate.waiting) == (1, 1)
    in_line.leave()
    assert gate.waiting == 0
    throttled.leave()  # refused by the throttle before its check: the slot goes back
    throttled.leave()
    assert gate.running == 0
    after = checks.run(gate, "after")
    checks.release["after"].set()
    assert await after == "after" and gate.running == 0


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    checks = Checks()
    gate = PasswordCheckGate(slots=1, queue=1)
    first = checks.run(gate, "first")
    gone = checks.run(gate, "gone")
    await settle()
    gone.cancel()
    await settle()
    assert gate.waiting == 0
    after = checks.run(gate, "after")  # the place is free again
    await settle()
    checks.release["first"].set()
    checks.release["after"].set()
    assert (await first, await after) == ("first", "after")
    assert "gone" not in checks.started and gate.running == 0


def test_limits_must_make_sense() -> None:
    for arguments in ({"slots": 0}, {"queue": -1}, {"max_wait": 0}, {"retry_after": 0}):
        with pytest.raises(ValueError):
            PasswordCheckGate(**arguments)  # type: ignore[arg-type]
