"""Reading the masked regions of the configuration (``masks:``): which rectangles hide personal data on which targets.

::

    masks:
      - targets: ["crm-*"]          # target names or patterns (each must match a defined target)
        desktop: 1280x800           # the desktop size the rectangles are drawn for
        style: black                # black | blur
        regions:
          - {x: 100, y: 200, width: 300, height: 24, label: card number}

A target's masks are every entry whose patterns match its name (:func:`masks_for`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from yaml.nodes import Node

from gateway.config.values import ValueReader
from recorder.masking import MAX_REGIONS, MaskRegion, MaskSet, MaskStyle

if TYPE_CHECKING:  # the model imports MaskRule from here
    from gateway.config.model import Target

_DESKTOP = re.compile(r"([1-9]\d{0,4})x([1-9]\d{0,4})")
#: The longest label of a region (shown to administrators, journaled with each recording).
MAX_LABEL = 100


@dataclass(frozen=True, slots=True)
class MaskRule:
    """One ``masks:`` entry: its mask set applies to every target matching ``targets``."""

    targets: tuple[str, ...]
    masks: MaskSet
    origin: str = ""  # FILE:LINE


def masks_for(rules: tuple[MaskRule, ...], target: str) -> tuple[MaskSet, ...]:
    """The mask sets in force on ``target``."""
    return tuple(rule.masks for rule in rules if any(fnmatchcase(target, pattern) for pattern in rule.targets))


class MaskReader(ValueReader):
    """``masks:``: a list of mask sets, each for the targets its patterns match."""

    def masks(self, node: Node | None, targets: Mapping[str, Target]) -> tuple[MaskRule, ...]:
        return tuple(self.mask_rule(item, key, targets) for item, key in self.r.sequence(node, "masks"))

    def mask_rule(self, node: Node, key: str, targets: Mapping[str, Target]) -> MaskRule:
        r = self.r
        section = r.mapping(node, key, ["targets", "desktop", "style", "regions"],
                            required=["targets", "desktop", "regions"])
        patterns = []
        for item, item_key in r.sequence(section["targets"], f"{key}.targets"):
            pattern = r.string(item, item_key)
            if not any(fnmatchcase(name, pattern) and target.protocol == "vnc" for name, target in targets.items()):
                raise r.error(item, item_key, f"{pattern!r} matches no vnc target defined under targets")
            patterns.append(pattern)
        if not patterns:
            raise r.error(section["targets"], f"{key}.targets", "is empty; list target names or patterns like crm-*")
        desktop_text = r.string(section["desktop"], f"{key}.desktop")
        match = _DESKTOP.fullmatch(desktop_text.strip())
        if match is None:
            raise r.error(section["desktop"], f"{key}.desktop", f"{desktop_text!r} is not a desktop size; "
                          "write WIDTHxHEIGHT in pixels, e.g. 1280x800")
        desktop = (int(match.group(1)), int(match.group(2)))
        style_node = section.get("style")
        style = MaskStyle.BLACK if style_node is None else MaskStyle(
            r.choice(style_node, f"{key}.style", [style.value for style in MaskStyle]))
        regions = [self.region(item, item_key, desktop)
                   for item, item_key in r.sequence(section["regions"], f"{key}.regions")]
        if not regions:
            raise r.error(section["regions"], f"{key}.regions", "is empty; list at least one rectangle")
        if len(regions) > MAX_REGIONS:
            raise r.error(section["regions"], f"{key}.regions", f"has {len(regions)} rectangles; at most "
                          f"{MAX_REGIONS} per entry (cover neighbouring fields with one rectangle)")
        return MaskRule(tuple(patterns), MaskSet(desktop, tuple(regions), style),
                        f"{r.path}:{node.start_mark.line + 1}")

    def region(self, node: Node, key: str, desktop: tuple[int, int]) -> MaskRegion:
        r = self.r
        section = r.mapping(node, key, ["x", "y", "width", "height", "label"], required=["x", "y", "width", "height"])
        values = {}
        for name in ("x", "y", "width", "height"):
            value = r.integer(section[name], f"{key}.{name}")
            if value < (1 if name in ("width", "height") else 0):
                raise r.error(section[name], f"{key}.{name}", f"{value} is out of range; use "
                              f"{'1 or more' if name in ('width', 'height') else '0 or more'}")
            values[name] = value
        label = r.optional_string(section.get("label"), f"{key}.label") or ""
        if len(label) > MAX_LABEL:
            raise r.error(section["label"], f"{key}.label", f"is longer than {MAX_LABEL} characters")
        region = MaskRegion(values["x"], values["y"], values["width"], values["height"], label)
        if not region.inside(*desktop):
            raise r.error(node, key, f"the rectangle {region.width}x{region.height} at ({region.x}, {region.y}) "
                          f"reaches outside the {desktop[0]}x{desktop[1]} desktop; fix it or the desktop size")
        return region
