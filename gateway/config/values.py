"""Reading single values of the configuration: paths, durations, networks, counts, choices.

:class:`ValueReader` is the bottom of the config readers: the section readers
(:mod:`gateway.config.access`, :mod:`gateway.config.schema`) build on its helpers.
"""

from __future__ import annotations

import re
from enum import StrEnum
from ipaddress import ip_network
from pathlib import Path

from yaml.nodes import Node

from base.yamlnodes import IPNetwork, NodeReader

HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")
DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_TOKEN = re.compile(r"(\d+)(ms|d|h|m|s)")
DURATION_HINT = "use e.g. 90s, 10m, 1h30m, 2d or a number of seconds"


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"250ms"`` or a bare number; > 0."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; {DURATION_HINT}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        compact = text.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", compact):
            seconds = float(compact)
        else:
            seconds = _parse_units(text, compact)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a positive duration; {DURATION_HINT}")
    return seconds


def _parse_units(original: str, compact: str) -> float:
    tokens = list(DURATION_TOKEN.finditer(compact))
    order = list(DURATION_UNITS)
    units = [token.group(2) for token in tokens]
    well_formed = (
        tokens
        and "".join(token.group(0) for token in tokens) == compact
        and units == sorted(set(units), key=order.index)  # each unit once, largest first
    )
    if not well_formed:
        raise ValueError(f"{original!r} is not a duration; {DURATION_HINT}")
    return sum(int(token.group(1)) * DURATION_UNITS[token.group(2)] for token in tokens)


class ValueReader:
    """Single values read from YAML nodes, relative paths resolved against ``base``."""

    def __init__(self, reader: NodeReader, base: Path) -> None:
        self.r = reader
        self.base = base

    def path(self, node: Node | None, key: str, default: str) -> Path:
        return self.base / Path(self.r.string(node, key, default)).expanduser()

    def optional_path(self, node: Node | None, key: str) -> Path | None:
        text = self.r.optional_string(node, key)
        return None if text is None else self.base / Path(text).expanduser()

    def duration(self, node: Node | None, key: str, default: float) -> float:
        value = self.optional_duration(node, key)
        return default if value is None else value

    def optional_duration(self, node: Node | None, key: str) -> float | None:
        if node is None or self.r.is_null(node):
            return None
        value = self.r.scalar(node, key, (str, int, float), "a duration")
        assert isinstance(value, (str, int, float))
        try:
            return parse_duration(value)
        except ValueError as error:
            raise self.r.error(node, key, str(error)) from None

    def networks(self, node: Node | None, key: str, default: tuple[str, ...] = ()) -> tuple[IPNetwork, ...]:
        if node is None:
            return tuple(ip_network(text, strict=True) for text in default)
        return tuple(self.r.network(item, item_key) for item, item_key in self.r.sequence(node, key))

    def count(self, node: Node | None, key: str, default: int) -> int:
        if node is None:
            return default
        value = self.r.integer(node, key)
        if value < 1:
            raise self.r.error(node, key, f"{value} is not a positive number; use 1 or more")
        return value

    def choice_or(self, node: Node | None, key: str, choices: type[StrEnum], default: StrEnum) -> str:
        if node is None:
            return str(default)
        return self.r.choice(node, key, [choice.value for choice in choices])
