from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from auth.identity import Identity
from gateway.policy import Clipboard, Policy, PolicySet

ALICE = Identity("alice", frozenset({"operators"}), admin=False, backend="local")
BOB = Identity("bob", frozenset({"contractors", "vendors"}), admin=False, backend="local")
NOBODY = Identity("eve", frozenset(), admin=False, backend="local")
LOCALHOST = ip_address("127.0.0.1")

OPERATORS = Policy(
    name="operators",
    groups=("operators",),
    from_networks=(ip_network("127.0.0.0/8"), ip_network("fd00::/8")),
    targets=("desk-*",),
    clipboard=Clipboard.BOTH,
)
CONTRACTORS = Policy(
    name="contractors",
    groups=("contractors",),
    from_networks=(),
    targets=("desk-0[1-3]", "shell-01"),
)
EVERYONE_KIOSK = Policy(name="kiosk", groups=("*",), from_networks=(ip_network("10.9.0.0/16"),), targets=("kiosk",))
OPERATORS_FALLBACK = Policy(name="operators-wide", groups=("operators",), from_networks=(), targets=("*",))

POLICIES = PolicySet([OPERATORS, CONTRACTORS, EVERYONE_KIOSK, OPERATORS_FALLBACK])


def test_first_match_wins() -> None:
    decision = POLICIES.decide(ALICE, LOCALHOST, "desk-01")
    assert decision.allowed and decision.policy is OPERATORS
    assert decision.reason == "policy 'operators' allows alice from 127.0.0.1 to desk-01"
    # From elsewhere, the first policy's source list fails and the later, wider one decides.
    decision = POLICIES.decide(ALICE, ip_address("192.0.2.7"), "desk-01")
    assert decision.allowed and decision.policy is OPERATORS_FALLBACK


def test_no_match_denies_with_a_sentence() -> None:
    decision = POLICIES.decide(BOB, ip_address("10.1.2.3"), "desk-09")
    assert not decision.allowed and decision.policy is None
    assert decision.reason == "no policy allows bob (groups: contractors, vendors) from 10.1.2.3 to desk-09"
    assert POLICIES.decide(NOBODY, LOCALHOST, "desk-01").reason == (
        "no policy allows eve (groups: none) from 127.0.0.1 to desk-01"
    )
    assert not PolicySet([]).decide(ALICE, LOCALHOST, "desk-01").allowed


@pytest.mark.parametrize(("target", "allowed"), [
    ("desk-01", True), ("desk-03", True), ("desk-04", False), ("shell-01", True), ("shell-010", False),
    ("DESK-01", False),  # patterns are case-sensitive
])
def test_glob_patterns(target: str, allowed: bool) -> None:
    assert POLICIES.decide(BOB, ip_address("203.0.113.5"), target).allowed is allowed


def test_star_group_matches_any_authenticated_user() -> None:
    decision = POLICIES.decide(NOBODY, ip_address("10.9.3.4"), "kiosk")
    assert decision.allowed and decision.policy is EVERYONE_KIOSK
    assert not POLICIES.decide(NOBODY, ip_address("10.8.3.4"), "kiosk").allowed


@pytest.mark.parametrize(("source", "allowed"), [
    ("fd12::1", True), ("fe80::1", False), ("::1", False), ("::ffff:127.0.0.5", True), ("127.255.0.1", True),
])
def test_from_networks_with_ipv6_and_mapped_ipv4(source: str, allowed: bool) -> None:
    policies = PolicySet([OPERATORS])
    assert policies.decide(ALICE, ip_address(source), "desk-01").allowed is allowed


def test_allowed_targets_keeps_order() -> None:
    targets = ["shell-01", "desk-02", "kiosk", "desk-07"]
    assert POLICIES.allowed_targets(BOB, LOCALHOST, targets) == ["shell-01", "desk-02"]
    assert PolicySet([OPERATORS]).allowed_targets(ALICE, LOCALHOST, targets) == ["desk-02", "desk-07"]


def test_explain_gives_one_line_per_policy() -> None:
    assert POLICIES.explain(ALICE, LOCALHOST, "desk-01") == [
        "1. policy 'operators': matches and decides: allow",
        "2. policy 'contractors': no match: alice is not in any of groups contractors",
        "3. policy 'kiosk': no match: source 127.0.0.1 is not in 10.9.0.0/16; target desk-01 does not match kiosk",
        "4. policy 'operators-wide': matches, but policy 'operators' decided first",
    ]


def test_explain_a_denial() -> None:
    assert POLICIES.explain(BOB, ip_address("10.1.2.3"), "desk-09") == [
        "1. policy 'operators': no match: bob is not in any of groups operators; "
        "source 10.1.2.3 is not in 127.0.0.0/8, fd00::/8",
        "2. policy 'contractors': no match: target desk-09 does not match desk-0[1-3], shell-01",
        "3. policy 'kiosk': no match: source 10.1.2.3 is not in 10.9.0.0/16; target desk-09 does not match kiosk",
        "4. policy 'operators-wide': no match: bob is not in any of groups operators",
        "no policy matches: deny",
    ]


def test_clipboard_directions() -> None:
    assert [(mode.allows_to_remote, mode.allows_to_local) for mode in Clipboard] == [
        (False, False), (True, False), (False, True), (True, True),
    ]
    assert Clipboard("to-remote") is Clipboard.TO_REMOTE and str(Clipboard.BOTH) == "both"
    assert CONTRACTORS.clipboard is Clipboard.OFF  # the default


OWN_DESKTOP = Policy(name="own-desktop", groups=("operators",), from_networks=(), targets=("desk-{user}",))


@pytest.mark.parametrize(("username", "target", "allowed"), [
    ("alice", "desk-alice", True),
    ("alice", "desk-bob", False),
    ("Alice", "desk-alice", True),  # the name as a directory compares it
    ("ａｌｉｃｅ", "desk-alice", True),
    ("a*", "desk-alice", False),  # glob characters in a name are literal
    ("a*", "desk-a*", True),
    ("[ab]", "desk-a", False),
    ("?", "desk-x", False),
])
def test_user_placeholder_is_the_signed_in_users_name(username: str, target: str, allowed: bool) -> None:
    identity = Identity(username, frozenset({"operators"}), admin=False, backend="local")
    assert PolicySet([OWN_DESKTOP]).decide(identity, LOCALHOST, target).allowed is allowed


def test_user_placeholder_in_the_portal_list_and_explain() -> None:
    policies = PolicySet([OWN_DESKTOP])
    assert policies.allowed_targets(ALICE, LOCALHOST, ["desk-alice", "desk-bob", "desk-01"]) == ["desk-alice"]
    assert policies.explain(ALICE, LOCALHOST, "desk-bob") == [
        "1. policy 'own-desktop': no match: target desk-bob does not match desk-{user} (for alice: desk-alice)",
        "no policy matches: deny",
    ]
