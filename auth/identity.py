"""Who a request belongs to, once authenticated."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: name, group memberships, admin flag, the backend that vouched, and the
    name people know them by (``display_name``, Unicode, e.g. 山田 太郎; None when there is none)."""

    username: str
    groups: frozenset[str]
    admin: bool
    backend: str
    display_name: str | None = None

    def attributes_json(self) -> str:
        """Everything but the name, as stored beside it in the database."""
        attributes: dict[str, object] = {"groups": sorted(self.groups), "admin": self.admin, "backend": self.backend}
        if self.display_name is not None:
            attributes["display_name"] = self.display_name
        return json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_attributes_json(cls, username: str, text: str) -> Identity:
        attributes = json.loads(text)
        display_name = attributes.get("display_name")
        return cls(username, frozenset(attributes["groups"]), bool(attributes["admin"]), str(attributes["backend"]),
                   str(display_name) if display_name else None)
