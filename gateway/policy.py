"""Access policies: who may open which target, from where, with what clipboard.

Policies are evaluated in order and the first one that matches decides; when none
matches, access is denied. A policy matches when all three hold:

- the user is in one of its ``groups`` (``"*"`` matches any authenticated user);
- the source address is in one of its ``from_networks`` (empty: any source that
  already passed the global allow list);
- the target name matches one of its ``targets`` glob patterns (case-sensitive).

A policy may also say whose work its users may look after (``watch``: groups, or ``"*"``
for everyone): their live sessions and their recordings. That grant does not depend on a
target; :mod:`gateway.watch` gathers it from every policy matching the viewer's groups and source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from auth.identity import Identity

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ANY_GROUP = "*"


class Clipboard(StrEnum):
    """Which way clipboard text may cross the gateway."""

    OFF = "off"
    TO_REMOTE = "to-remote"
    TO_LOCAL = "to-local"
    BOTH = "both"

    @property
    def allows_to_remote(self) -> bool:
        """Text may go from the operator's browser to the target."""
        return self in (Clipboard.TO_REMOTE, Clipboard.BOTH)

    @property
    def allows_to_local(self) -> bool:
        """Text may go from the target to the operator's browser."""
        return self in (Clipboard.TO_LOCAL, Clipboard.BOTH)


class RecordingAccess(StrEnum):
    """Which recordings the users of a policy may find and play back."""

    NONE = "none"
    OWN = "own"
    ALL = "all"


class InputRecording(StrEnum):
    """How much of the operator's input a recording keeps."""

    FULL = "full"  # every key, pointer and clipboard message, as forwarded
    COUNTS = "counts"  # only how many of each, for privacy-sensitive desks


@dataclass(frozen=True, slots=True)
class Policy:
    """One access rule; durations are in seconds, ``None`` meaning no policy-specific limit."""

    name: str
    groups: tuple[str, ...]
    from_networks: tuple[IPNetwork, ...]
    targets: tuple[str, ...]
    clipboard: Clipboard = Clipboard.OFF
    idle_timeout: float | None = None
    max_session: float | None = None
    recordings: RecordingAccess = RecordingAccess.NONE
    record_input: InputRecording = InputRecording.FULL
    watch: tuple[str, ...] = ()  # groups whose live sessions and recordings these users may see; ("*",): all
    origin: str = field(default="", compare=False)  # where it was written, "FILE:LINE" (for the admin console)

    def group_matches(self, identity: Identity) -> bool:
        return ANY_GROUP in self.groups or not identity.groups.isdisjoint(self.groups)

    def source_matches(self, source: IPAddress) -> bool:
        return not self.from_networks or any(source in network for network in self.from_networks)

    def target_matches(self, target: str) -> bool:
        return any(fnmatchcase(target, pattern) for pattern in self.targets)

    def mismatches(self, identity: Identity, source: IPAddress, target: str) -> list[str]:
        """Why this policy does not match, one clause per failed condition (empty: it matches)."""
        reasons = []
        if not self.group_matches(identity):
            reasons.append(f"{identity.username} is not in any of groups {', '.join(self.groups)}")
        if not self.source_matches(source):
            networks = ", ".join(str(network) for network in self.from_networks)
            reasons.append(f"source {source} is not in {networks}")
        if not self.target_matches(target):
            reasons.append(f"target {target} does not match {', '.join(self.targets)}")
        return reasons


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating the policies, with a sentence saying why."""

    allowed: bool
    policy: Policy | None
    reason: str


def normalize_source(source: IPAddress) -> IPAddress:
    """Treat an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, from dual-stack sockets) as IPv4."""
    if isinstance(source, IPv6Address) and source.ipv4_mapped is not None:
        return source.ipv4_mapped
    return source


class PolicySet:
    """An ordered list of policies; the first match wins and no match means deny."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)

    def decide(self, identity: Identity, source: IPAddress, target: str) -> Decision:
        """Whether ``identity`` may open ``target`` from ``source``, and which policy says so."""
        source = normalize_source(source)
        for policy in self.policies:
            if not policy.mismatches(identity, source, target):
                reason = f"policy '{policy.name}' allows {identity.username} from {source} to {target}"
                return Decision(True, policy, reason)
        groups = ", ".join(sorted(identity.groups)) or "none"
        reason = f"no policy allows {identity.username} (groups: {groups}) from {source} to {target}"
        return Decision(False, None, reason)

    def allowed_targets(self, identity: Identity, source: IPAddress, targets: Iterable[str]) -> list[str]:
        """The subset of ``targets``, in their order, that ``identity`` may open from ``source``."""
        return [target for target in targets if self.decide(identity, source, target).allowed]

    def explain(self, identity: Identity, source: IPAddress, target: str) -> list[str]:
        """One line per policy, in evaluation order: whether it matches, and if not, why not."""
        source = normalize_source(source)
        lines = []
        decided_by: Policy | None = None
        for index, policy in enumerate(self.policies, start=1):
            reasons = policy.mismatches(identity, source, target)
            if reasons:
                verdict = "no match: " + "; ".join(reasons)
            elif decided_by is None:
                decided_by = policy
                verdict = "matches and decides: allow"
            else:
                verdict = f"matches, but policy '{decided_by.name}' decided first"
            lines.append(f"{index}. policy '{policy.name}': {verdict}")
        if decided_by is None:
            lines.append("no policy matches: deny")
        return lines
