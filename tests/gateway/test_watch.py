"""Who may watch whom: the union of the ``watch`` of every policy matching the viewer's groups and source."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from auth.identity import Identity
from gateway.policy import Policy, PolicySet
from gateway.watch import NOBODY, WatchScope, watch_scope

SAM = Identity("sam", frozenset({"supervisors"}), admin=False, backend="local")
TOM = Identity("tom", frozenset({"team-leads", "supervisors"}), admin=False, backend="local")
ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="local")
ROOT = Identity("root", frozenset(), admin=True, backend="local")
OFFICE = ip_address("10.1.2.3")
HOME = ip_address("192.0.2.7")

POLICIES = PolicySet([
    Policy("operators", ("operators",), (), ("desk-*",)),
    Policy("supervisors", ("supervisors",), (ip_network("10.0.0.0/8"),), ("desk-01",), watch=("operators", "trainees")),
    Policy("night", ("supervisors",), (), ("desk-02",), watch=("night-shift",)),
    Policy("leads", ("team-leads",), (ip_network("10.0.0.0/8"),), ("desk-01",), watch=("*",)),
])


def test_the_scope_is_the_union_of_the_matching_policies_whatever_the_target() -> None:
    scope = watch_scope(SAM, OFFICE, POLICIES)
    assert scope == WatchScope(False, frozenset({"operators", "trainees", "night-shift"}), ("supervisors", "night"))
    assert scope.covers({"operators"}) and scope.covers(["staff", "night-shift"])
    assert not scope.covers({"supervisors"}) and not scope.covers(set()) and not scope.covers(None)


def test_the_source_address_narrows_it() -> None:
    scope = watch_scope(SAM, HOME, POLICIES)
    assert scope.groups == {"night-shift"} and scope.granted_by == ("night",)
    assert not scope.covers({"operators"})


@pytest.mark.parametrize("source", ["10.1.2.3", "::ffff:10.1.2.3"])
def test_star_means_everyone_even_without_known_groups(source: str) -> None:
    scope = watch_scope(TOM, ip_address(source), POLICIES)
    assert scope.everyone and scope.granted_by == ("supervisors", "night", "leads")
    assert scope.covers({"anything"}) and scope.covers(set()) and scope.covers(None)


def test_admins_see_everyone_and_operators_nobody() -> None:
    assert watch_scope(ROOT, HOME, POLICIES) == WatchScope(True, frozenset(), ("admin",))
    assert watch_scope(ALICE, OFFICE, POLICIES) is NOBODY
    assert NOBODY.nobody and not NOBODY.covers({"operators"})


def test_describe_says_whom_and_why() -> None:
    assert watch_scope(SAM, HOME, POLICIES).describe() == (
        "may watch the live sessions and recordings of users in groups night-shift (policy 'night')")
    assert watch_scope(ROOT, HOME, POLICIES).describe() == "may watch the live sessions and recordings of everyone (admin)"
    assert NOBODY.describe() == "may watch nobody's live sessions or recordings (no matching policy has watch)"
