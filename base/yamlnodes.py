"""Reading YAML with line numbers: every failure is a :class:`~base.errors.ConfigError` naming file, line and key.

Used by the gateway's configuration and by ``auth.local`` for the users file.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TypeAlias

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from base.errors import ConfigError

IPNetwork: TypeAlias = IPv4Network | IPv6Network
NULL_TAG = "tag:yaml.org,2002:null"

def compose_yaml_file(path: Path) -> Node | None:
    """Parse ``path`` into a YAML node tree (safe loader, no objects built); ``None`` if empty."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigError(path, None, "(file)", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, None, "(file)", f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError(path, mark.line + 1 if mark else None, "(yaml)", f"invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(path, None, "(yaml)", f"invalid YAML: {error}") from None


def join_key(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return repr(node.value) if node.tag != NULL_TAG else "nothing (null)"


class NodeReader:
    """Typed accessors over composed YAML nodes; every failure is a ConfigError with a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._constructor = SafeConstructor()

    def error(self, node: Node | None, key: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(self.path, line, key or "(top level)", message)

    @staticmethod
    def is_null(node: Node | None) -> bool:
        return isinstance(node, ScalarNode) and node.tag == NULL_TAG

    def mapping(
        self, node: Node | None, key: str, known: Sequence[str] | None, required: Sequence[str] = ()
    ) -> dict[str, Node]:
        """Keys to value nodes; absent or null is empty. ``known=None`` accepts any key."""
        if node is None or self.is_null(node):
            values: dict[str, Node] = {}
        elif not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected a mapping of settings, got {describe(node)}")
        else:
            values = {}
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.error(key_node, key, f"keys must be plain names, got {describe(key_node)}")
                name = key_node.value
                child = join_key(key, name)
                if name in values:
                    raise self.error(key_node, child, f"duplicate key (first at line {lines[name]}); keep one")
                if known is not None and name not in known:
                    close = difflib.get_close_matches(name, known, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(known)}"
                    raise self.error(key_node, child, f"unknown key; {hint}")
                values[name] = value_node
                lines[name] = key_node.start_mark.line + 1
        for name in required:
            if name not in values:
                raise self.error(node, join_key(key, name), "is required but missing")
        return values

    @staticmethod
    def key_node(node: Node | None, name: str) -> Node | None:
        """The node of key ``name`` in a mapping node (to point errors at the key's own line)."""
        if isinstance(node, MappingNode):
            return next((key for key, _ in node.value if isinstance(key, ScalarNode) and key.value == name), None)
        return None

    def sequence(self, node: Node | None, key: str) -> list[tuple[Node, str]]:
        """Items with their dotted keys (``key[0]``); absent or null is empty."""
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            raise self.error(node, key, f"expected a list, got {describe(node)}")
        return [(item, f"{key}[{index}]") for index, item in enumerate(node.value)]

    def scalar(self, node: Node, key: str, types: tuple[type, ...], what: str) -> object:
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected {what}, got {describe(node)}")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            raise self.error(node, key, f"cannot read {node.value!r}: {error}") from None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(node, key, f"expected {what}, got {describe(node)}")
        return value

    def string(self, node: Node | None, key: str, default: str | None = None) -> str:
        if node is None and default is not None:
            return default
        if node is None:
            raise self.error(node, key, "is required but missing")
        value = self.scalar(node, key, (str,), "a string")
        assert isinstance(value, str)
        if not value.strip():
            raise self.error(node, key, "is empty; give a value or remove the key")
        return value

    def optional_string(self, node: Node | None, key: str) -> str | None:
        return None if node is None or self.is_null(node) else self.string(node, key)

    def boolean(self, node: Node | None, key: str, default: bool) -> bool:
        return default if node is None else bool(self.scalar(node, key, (bool,), "true or false"))

    def integer(self, node: Node, key: str) -> int:
        value = self.scalar(node, key, (int,), "a whole number")
        assert isinstance(value, int)
        return value

    def choice(self, node: Node, key: str, choices: Sequence[str]) -> str:
        value = self.scalar(node, key, (str,), f"one of {', '.join(choices)}")
        if value not in choices:
            raise self.error(node, key, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    def network(self, node: Node, key: str) -> IPNetwork:
        text = self.string(node, key)
        try:
            return ip_network(text, strict=True)
        except ValueError as error:
            if "host bits set" in str(error):
                suggestion = ip_network(text, strict=False)
                raise self.error(node, key, f"{text!r} has host bits set; did you mean {suggestion}?") from None
            raise self.error(node, key, f"{text!r} is not a network; use CIDR like 10.0.0.0/8 or fd00::/8") from None
