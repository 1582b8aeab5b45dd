"""Reading the targets and the access policies of the configuration (``targets:``, ``policies:``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from auth.netacl import is_ip_address
from base.yamlnodes import join_key
from gateway.config.model import (
    KNOWN_HOSTS_UNCHECKED,
    Target,
)
from gateway.config.values import HOSTNAME, ValueReader
from gateway.hours import DEFAULT_WARNING, TimeWindow, local_zone, parse_hours, zone_named
from gateway.policy import ANY_GROUP, USER_PLACEHOLDER, Clipboard, InputRecording, Policy, RecordingAccess
from gateway.rfb.messages import Encoding

TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
PROTOCOL_DEFAULT_PORTS = {"vnc": 5900, "ssh": 22}
#: ``prefer_encoding`` of a desktop. ZRLE by default: on the call-center workload its journals are 2.2x
#: smaller than Tight's and render faster (bench/README.md); ``browser`` keeps the browser's order.
PREFERRED_ENCODINGS: dict[str, int | None] = {"zrle": int(Encoding.ZRLE), "tight": int(Encoding.TIGHT),
                                              "hextile": int(Encoding.HEXTILE), "browser": None}


class AccessReader(ValueReader):
    """The targets and the policies: who may open what, from where, when, with which terms."""

    def targets(self, node: Node | None) -> dict[str, Target]:
        targets = {}
        for name, target_node in self.r.mapping(node, "targets", None).items():
            key = join_key("targets", name)
            if not TARGET_NAME.fullmatch(name):
                raise self.r.error(self.r.key_node(node, name), key, "is not a valid target name; "
                                   "use lowercase letters, digits, '.', '_' and '-' (at most 63)")
            targets[name] = self.target(name, target_node, key)
        for name, target in targets.items():
            if target.via is not None:
                self.check_via(target, targets, self.r.mapping(node, "targets", None)[name], join_key("targets", name))
        return targets

    def check_via(self, target: Target, targets: Mapping[str, Target], node: Node, key: str) -> None:
        """``via`` names an ssh target (its jump host) that is not itself reached via another."""
        via_node = self.r.mapping(node, key, None)["via"]
        jump = targets.get(target.via or "")
        if jump is None:
            raise self.r.error(via_node, f"{key}.via", f"there is no target called {target.via!r}; "
                               "name an ssh target (the jump host)")
        if jump.protocol != "ssh":
            raise self.r.error(via_node, f"{key}.via", f"{jump.name} is a {jump.protocol} target; "
                               "a jump host must be an ssh target")
        if jump.via is not None:
            raise self.r.error(via_node, f"{key}.via", f"{jump.name} is itself reached via {jump.via}; "
                               "chains of jump hosts are not supported, name the last one directly")

    def target(self, name: str, node: Node, key: str) -> Target:
        r = self.r
        keys = ["protocol", "host", "port", "password_file", "username", "key_file", "max_sessions", "known_hosts",
                "via", "prefer_encoding"]
        section = r.mapping(node, key, keys, required=["protocol", "host"])
        protocol = r.choice(section["protocol"], f"{key}.protocol", list(PROTOCOL_DEFAULT_PORTS))
        host = r.string(section["host"], f"{key}.host")
        if not HOSTNAME.fullmatch(host) and not is_ip_address(host):
            raise r.error(section["host"], f"{key}.host", f"{host!r} is not a host name or IP address")
        port_node = section.get("port")
        port = PROTOCOL_DEFAULT_PORTS[protocol] if port_node is None else r.integer(port_node, f"{key}.port")
        if not 1 <= port <= 65535:
            raise r.error(port_node, f"{key}.port", f"port {port} is out of range; use 1-65535")
        for option, wanted in {"username": "ssh", "key_file": "ssh", "known_hosts": "ssh",
                               "prefer_encoding": "vnc"}.items():
            if option in section and protocol != wanted:
                raise r.error(section[option], f"{key}.{option}", f"applies only to {wanted} targets, not {protocol}")
        if protocol == "ssh" and "username" not in section:
            raise r.error(node, f"{key}.username", "is required for ssh targets")
        return Target(
            name=name,
            protocol=protocol,
            host=host,
            port=port,
            password_file=self.optional_path(section.get("password_file"), f"{key}.password_file"),
            username=r.optional_string(section.get("username"), f"{key}.username"),
            key_file=self.optional_path(section.get("key_file"), f"{key}.key_file"),
            max_sessions=self.max_sessions(section, key, protocol),
            known_hosts=self.known_hosts(section.get("known_hosts"), f"{key}.known_hosts"),
            via=r.optional_string(section.get("via"), f"{key}.via"),
            prefer_encoding=self.prefer_encoding(section.get("prefer_encoding"), f"{key}.prefer_encoding", protocol),
        )

    def prefer_encoding(self, node: Node | None, key: str, protocol: str) -> int | None:
        """A desktop's preferred encoding: ``zrle`` unless set; ``browser`` keeps the browser's order."""
        if protocol != "vnc":
            return None
        name = "zrle" if node is None else self.r.choice(node, key, list(PREFERRED_ENCODINGS))
        return PREFERRED_ENCODINGS[name]

    def max_sessions(self, section: dict[str, Node], key: str, protocol: str) -> int | None:
        """``max_sessions``: how many operators' sessions a target holds at once (live viewers aside);
        absent: 1 for a desktop, any number for a terminal; null: any number."""
        if "max_sessions" not in section:
            return 1 if protocol == "vnc" else None
        node = section["max_sessions"]
        if self.r.is_null(node):
            return None
        value = self.r.integer(node, f"{key}.max_sessions")
        if value < 1:
            raise self.r.error(node, f"{key}.max_sessions", f"{value} is not a number of sessions; use 1 or more, "
                               "or null for no limit")
        return value

    def known_hosts(self, node: Node | None, key: str) -> Path | str | None:
        """An ssh target's known-hosts file, or ``none`` (its host key is not checked)."""
        if node is not None and self.r.string(node, key) == KNOWN_HOSTS_UNCHECKED:
            return KNOWN_HOSTS_UNCHECKED
        return self.optional_path(node, key)

    def policies(self, node: Node | None, targets: Mapping[str, Target], default_idle: float) -> tuple[Policy, ...]:
        policies: dict[str, Policy] = {}
        for item, key in self.r.sequence(node, "policies"):
            policy = self.policy(item, key, targets, default_idle)
            if policy.name in policies:
                name_node = self.r.mapping(item, key, None)["name"]
                raise self.r.error(name_node, f"{key}.name", f"policy name {policy.name!r} is used twice; rename one")
            policies[policy.name] = policy
        return tuple(policies.values())

    def policy(self, node: Node, key: str, targets: Mapping[str, Target], default_idle: float) -> Policy:
        r = self.r
        keys = ["name", "groups", "from", "targets", "clipboard", "idle_timeout", "idle_timeout_override",
                "max_session", "recordings", "record_input", "watch", "hours", "timezone", "hours_warning", "unmask"]
        section = r.mapping(node, key, keys, required=["name", "groups", "targets"])
        groups = tuple(r.string(item, item_key) for item, item_key in r.sequence(section["groups"], f"{key}.groups"))
        if not groups:
            raise r.error(section["groups"], f"{key}.groups", 'is empty; list at least one group, or "*" for everyone')
        patterns = []
        for item, item_key in r.sequence(section["targets"], f"{key}.targets"):
            pattern = r.string(item, item_key)
            if "{" in pattern.replace(USER_PLACEHOLDER, "") or "}" in pattern.replace(USER_PLACEHOLDER, ""):
                raise r.error(item, item_key, f"{pattern!r}: only {USER_PLACEHOLDER} may stand for something "
                              "(the signed-in user's name)")
            if not any(fnmatchcase(name, pattern.replace(USER_PLACEHOLDER, "*")) for name in targets):
                raise r.error(item, item_key, f"{pattern!r} matches no target defined under targets")
            patterns.append(pattern)
        if not patterns:
            raise r.error(section["targets"], f"{key}.targets", "is empty; list target names or patterns like desk-*")
        return Policy(
            name=r.string(section["name"], f"{key}.name"),
            groups=groups,
            from_networks=self.networks(section.get("from"), f"{key}.from"),
            targets=tuple(patterns),
            clipboard=self.clipboard(section.get("clipboard"), f"{key}.clipboard"),
            idle_timeout=self.idle_timeout(section, key, default_idle),
            max_session=self.optional_duration(section.get("max_session"), f"{key}.max_session"),
            recordings=RecordingAccess(self.choice_or(section.get("recordings"), f"{key}.recordings",
                                                      RecordingAccess, RecordingAccess.NONE)),
            record_input=self.record_input(section.get("record_input"), f"{key}.record_input"),
            watch=self.watch(section.get("watch"), f"{key}.watch"),
            unmask=r.boolean(section.get("unmask"), f"{key}.unmask", False),
            hours=self.hours(section, key),
            origin=f"{self.r.path}:{node.start_mark.line + 1}",
        )

    def hours(self, section: Mapping[str, Node], key: str) -> TimeWindow | None:
        """``hours`` (one string, ranges separated by ``;``, or a list of ranges) in ``timezone`` (default: local),
        with ``hours_warning`` (default 5m) before they close."""
        node, zone_node, warning_node = section.get("hours"), section.get("timezone"), section.get("hours_warning")
        warning = self.duration(warning_node, f"{key}.hours_warning", DEFAULT_WARNING)
        zone = local_zone()
        if zone_node is not None and not self.r.is_null(zone_node):
            try:
                zone = zone_named(self.r.string(zone_node, f"{key}.timezone"))
            except ValueError as error:
                raise self.r.error(zone_node, f"{key}.timezone", str(error)) from None
        if node is None or self.r.is_null(node):
            for name, extra in (("timezone", zone_node), ("hours_warning", warning_node)):
                if extra is not None:
                    raise self.r.error(extra, f"{key}.{name}", "applies only to hours; add hours or remove it")
            return None
        if isinstance(node, ScalarNode):
            ranges: list[str] | str = self.r.string(node, f"{key}.hours")
        else:
            ranges = [self.r.string(item, f"{key}.hours") for item, _ in self.r.sequence(node, f"{key}.hours")]
            if not ranges:
                raise self.r.error(node, f"{key}.hours", "is empty; list time ranges or remove the key")
        try:
            return parse_hours(ranges, zone, warning)
        except ValueError as error:
            raise self.r.error(node, f"{key}.hours", str(error)) from None

    def idle_timeout(self, section: dict[str, Node], key: str, default: float) -> float:
        """A policy's idle timeout: absent, the web sign-in's (``auth.web_session.idle_timeout``); a policy may
        shorten it, and make it longer only with ``idle_timeout_override: true`` (an administrator's explicit
        choice, not a slip of the pen)."""
        r = self.r
        override_node = section.get("idle_timeout_override")
        override = r.boolean(override_node, f"{key}.idle_timeout_override", False)
        value = self.optional_duration(section.get("idle_timeout"), f"{key}.idle_timeout")
        if value is None:
            if override:
                raise r.error(override_node, f"{key}.idle_timeout_override",
                              "applies only with an idle_timeout; add one, or remove this key")
            return default
        if value > default and not override:
            raise r.error(section["idle_timeout"], f"{key}.idle_timeout",
                          f"is longer than auth.web_session.idle_timeout ({default:g} s); shorten it, or add "
                          "idle_timeout_override: true to keep idle desktops open that long")
        return value

    def watch(self, node: Node | None, key: str) -> tuple[str, ...]:
        """``watch``: a list of groups, or ``"*"`` (alone, or as the only item) for everyone; absent: nobody."""
        if isinstance(node, ScalarNode) and not self.r.is_null(node):
            value = self.r.string(node, key)
            if value != ANY_GROUP:
                raise self.r.error(node, key, f'{value!r} is not a list of groups; write [{value}], or "*" for everyone')
            return (ANY_GROUP,)
        groups: list[str] = []
        for item, item_key in self.r.sequence(node, key):
            group = self.r.string(item, item_key)
            if group in groups:
                raise self.r.error(item, item_key, f"group {group!r} is listed twice; keep one")
            groups.append(group)
        if ANY_GROUP in groups and len(groups) > 1:
            raise self.r.error(node, key, '"*" already means every group; remove the other groups or the "*"')
        return tuple(groups)

    def record_input(self, node: Node | None, key: str) -> InputRecording:
        """``record_input``: full (default), counts or off (a bare YAML ``off`` reads as false: it means off)."""
        if node is None:
            return InputRecording.FULL
        value = self.r.scalar(node, key, (str, bool), "an input-recording mode")
        choices = ", ".join(mode.value for mode in InputRecording)
        if value is False:
            return InputRecording.OFF
        if value is True:
            raise self.r.error(node, key, f"YAML reads {node.value!r} as true, not a mode; use one of {choices}")
        try:
            return InputRecording(str(value))
        except ValueError:
            raise self.r.error(node, key, f"{value!r} is not an input-recording mode; use one of {choices}") from None

    def clipboard(self, node: Node | None, key: str) -> Clipboard:
        if node is None:
            return Clipboard.OFF
        value = self.r.scalar(node, key, (str, bool), "a clipboard mode")
        if value is False:  # YAML 1.1 reads a bare `off` (or `no`) as false
            return Clipboard.OFF
        choices = ", ".join(mode.value for mode in Clipboard)
        if value is True:
            raise self.r.error(node, key, f"YAML reads {node.value!r} as true, not a mode; use one of {choices}")
        try:
            return Clipboard(str(value))
        except ValueError:
            raise self.r.error(node, key, f"{value!r} is not a clipboard mode; use one of {choices}") from None
