"""Who may watch whom: whose live sessions and recordings a signed-in user may see.

A policy's ``watch`` names groups (or ``"*"``, everyone). A viewer's :class:`WatchScope` is
the union of the ``watch`` of every policy matching the viewer's groups and source address —
like ``recordings: own|all``, it does not depend on a target. Administrators see everyone.
An operator is covered when any of their groups is watched; an operator whose groups are not
known (a recording made before groups were recorded) only by ``"*"``.

Watching someone lets a user list and end their live sessions and play their recordings;
``recordings: own|all`` keeps working beside it (:mod:`gateway.web.recording_routes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from auth.identity import Identity
from gateway.policy import ANY_GROUP, IPAddress, PolicySet, normalize_source


@dataclass(frozen=True, slots=True)
class WatchScope:
    """Whose work a viewer may see: everyone, or the members of ``groups``; ``granted_by`` names why."""

    everyone: bool
    groups: frozenset[str]
    granted_by: tuple[str, ...]  # the policies that grant it, in order; "admin" for an administrator

    @property
    def nobody(self) -> bool:
        return not self.everyone and not self.groups

    def covers(self, operator_groups: Iterable[str] | None) -> bool:
        """Whether an operator in ``operator_groups`` (None: not known) is within this scope."""
        if self.everyone:
            return True
        return operator_groups is not None and not self.groups.isdisjoint(operator_groups)

    def describe(self) -> str:
        """One sentence for ``deskgate policy explain`` and refusals."""
        if self.nobody:
            return "may watch nobody's live sessions or recordings (no matching policy has watch)"
        whom = "everyone" if self.everyone else "users in groups " + ", ".join(sorted(self.groups))
        granted = ", ".join(name if name == "admin" else f"policy '{name}'" for name in self.granted_by)
        return f"may watch the live sessions and recordings of {whom} ({granted})"


NOBODY = WatchScope(False, frozenset(), ())


def watch_scope(identity: Identity, source: IPAddress, policies: PolicySet) -> WatchScope:
    """The scope every policy matching ``identity``'s groups and ``source`` grants together."""
    if identity.admin:
        return WatchScope(True, frozenset(), ("admin",))
    source = normalize_source(source)
    groups: set[str] = set()
    granted_by = []
    for policy in policies.policies:
        if policy.watch and policy.group_matches(identity) and policy.source_matches(source):
            groups.update(policy.watch)
            granted_by.append(policy.name)
    if not granted_by:
        return NOBODY
    if ANY_GROUP in groups:
        return WatchScope(True, frozenset(), tuple(granted_by))
    return WatchScope(False, frozenset(groups), tuple(granted_by))
