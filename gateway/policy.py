"""Access policies: who may open which target, from where, with what clipboard.

Policies are evaluated in order and the first one that matches decides; when none
matches, access is denied. A policy matches when all three hold:

- the user is in one of its ``groups`` (``"*"`` matches any authenticated user);
- the source address is in one of its ``from_networks`` (empty: any source that
  already passed the global allow list);
- the target name matches one of its ``targets`` glob patterns (case-sensitive), in which
  ``{user}`` stands for the signed-in user's name (:func:`user_pattern`): ``desk-{user}``
  gives each operator their own desktop;
- the time of the decision is inside its ``hours`` (:mod:`gateway.hours`; absent: any time).

A policy may also say whose work its users may look after (``watch``: groups, or ``"*"``
for everyone): their live sessions and their recordings. That grant does not depend on a
target; :mod:`gateway.watch` gathers it from every policy matching the viewer's groups and source.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from auth.identity import Identity
from auth.names import name_key
from gateway.hours import TimeWindow

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ANY_GROUP = "*"
#: In a policy's target pattern, the signed-in user's name.
USER_PLACEHOLDER = "{user}"
_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]", "]": "[]]"})


def user_pattern(pattern: str, username: str) -> str:
    """``pattern`` with ``{user}`` replaced by ``username`` as a directory compares it (:func:`auth.names.name_key`:
    ``Alice`` opens ``desk-alice``), its glob characters escaped so that a name never widens the pattern."""
    if USER_PLACEHOLDER not in pattern:
        return pattern
    return pattern.replace(USER_PLACEHOLDER, name_key(username).translate(_GLOB_SPECIAL))


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
    OFF = "off"  # neither the input nor its counts (the idle watchdog still sees activity)


@dataclass(frozen=True, slots=True)
class Policy:
    """One access rule; durations are in seconds, ``None`` meaning no limit (a loaded config always sets
    ``idle_timeout``: by default the web sign-in's, see :mod:`gateway.config.schema`)."""

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
    unmask: bool = False  # these users may view recordings unmasked and typed text, giving a reason (audited)
    hours: TimeWindow | None = None  # when the policy applies; None: at any time
    origin: str = field(default="", compare=False)  # where it was written, "FILE:LINE" (for the admin console)

    def group_matches(self, identity: Identity) -> bool:
        return ANY_GROUP in self.groups or not identity.groups.isdisjoint(self.groups)

    def source_matches(self, source: IPAddress) -> bool:
        return not self.from_networks or any(source in network for network in self.from_networks)

    def target_matches(self, target: str, username: str) -> bool:
        return any(fnmatchcase(target, user_pattern(pattern, username)) for pattern in self.targets)

    def hours_mismatch(self, at: float) -> str | None:
        """Why the time ``at`` (epoch seconds) is outside :attr:`hours`, with when they open next; None when inside."""
        if self.hours is None or self.hours.is_open(at):
            return None
        opening = self.hours.next_opening(at)
        when = f"opens next {self.hours.local_time(opening)}" if opening is not None else "never opens"
        return f"outside hours {self.hours}; {when}"

    def mismatches(self, identity: Identity, source: IPAddress, target: str, at: float) -> list[str]:
        """Why this policy does not match at ``at``, one clause per failed condition (empty: it matches)."""
        reasons = []
        if not self.group_matches(identity):
            reasons.append(f"{identity.username} is not in any of groups {', '.join(self.groups)}")
        if not self.source_matches(source):
            networks = ", ".join(str(network) for network in self.from_networks)
            reasons.append(f"source {source} is not in {networks}")
        if not self.target_matches(target, identity.username):
            patterns = (pattern if USER_PLACEHOLDER not in pattern
                        else f"{pattern} (for {identity.username}: {user_pattern(pattern, identity.username)})"
                        for pattern in self.targets)
            reasons.append(f"target {target} does not match {', '.join(patterns)}")
        outside = self.hours_mismatch(at)
        if outside is not None:
            reasons.append(outside)
        return reasons


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating the policies, with a sentence saying why."""

    allowed: bool
    policy: Policy | None
    reason: str
    #: Denied only because a policy that would allow it is outside its ``hours`` now.
    outside_hours: bool = False


def normalize_source(source: IPAddress) -> IPAddress:
    """Treat an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, from dual-stack sockets) as IPv4."""
    if isinstance(source, IPv6Address) and source.ipv4_mapped is not None:
        return source.ipv4_mapped
    return source


class PolicySet:
    """An ordered list of policies; the first match wins and no match means deny."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)

    def decide(self, identity: Identity, source: IPAddress, target: str, at: float | None = None) -> Decision:
        """Whether ``identity`` may open ``target`` from ``source`` at ``at`` (epoch; None: now), and which policy."""
        source = normalize_source(source)
        at = time.time() if at is None else at
        closed: Policy | None = None  # the first policy that would allow it at another time
        for policy in self.policies:
            reasons = policy.mismatches(identity, source, target, at)
            if not reasons:
                reason = f"policy '{policy.name}' allows {identity.username} from {source} to {target}"
                return Decision(True, policy, reason)
            if closed is None and reasons == [policy.hours_mismatch(at)]:
                closed = policy
        groups = ", ".join(sorted(identity.groups)) or "none"
        reason = f"no policy allows {identity.username} (groups: {groups}) from {source} to {target}"
        if closed is not None:
            reason += f" now: policy '{closed.name}' is {closed.hours_mismatch(at)}"
        return Decision(False, None, reason, outside_hours=closed is not None)

    def allowed_targets(self, identity: Identity, source: IPAddress, targets: Iterable[str],
                        at: float | None = None) -> list[str]:
        """The subset of ``targets``, in their order, that ``identity`` may open from ``source`` at ``at``."""
        return [target for target in targets if self.decide(identity, source, target, at).allowed]

    def explain(self, identity: Identity, source: IPAddress, target: str, at: float | None = None) -> list[str]:
        """One line per policy, in evaluation order: whether it matches at ``at`` (None: now), and if not, why not."""
        source = normalize_source(source)
        at = time.time() if at is None else at
        lines = []
        decided_by: Policy | None = None
        for index, policy in enumerate(self.policies, start=1):
            reasons = policy.mismatches(identity, source, target, at)
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
