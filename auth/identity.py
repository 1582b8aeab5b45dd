"""Who a request belongs to, once authenticated."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: name, group memberships, admin flag and the backend that vouched."""

    username: str
    groups: frozenset[str]
    admin: bool
    backend: str

    def attributes_json(self) -> str:
        """Everything but the name, as stored beside it in the database."""
        return json.dumps({"groups": sorted(self.groups), "admin": self.admin, "backend": self.backend},
                          separators=(",", ":"))

    @classmethod
    def from_attributes_json(cls, username: str, text: str) -> Identity:
        attributes = json.loads(text)
        return cls(username, frozenset(attributes["groups"]), bool(attributes["admin"]), str(attributes["backend"]))
