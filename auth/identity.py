"""Who a request belongs to, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: name, group memberships, admin flag and the backend that vouched."""

    username: str
    groups: frozenset[str]
    admin: bool
    backend: str
