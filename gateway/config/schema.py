"""The configuration: one YAML file, validated once into frozen objects.

The file is composed (not constructed) with PyYAML's safe loader, so every node
keeps its line number; validation walks the nodes and raises
:class:`~base.errors.ConfigError` naming the file, line and dotted key
(``policies[0].idle_timeout``, ``targets.desk-01.port``). Every key has a safe
default: loopback listeners, a loopback allow list, TOTP required, no targets and
no policies (deny everything). Relative paths are resolved against the directory
of the configuration file.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import Node

from auth.netacl import ProxyHeader, is_ip_address
from auth.options import (
    AuthConfig,
    LDAPConfig,
    LocalAuthConfig,
    TOTPConfig,
    WebSessionConfig,
)
from base.yamlnodes import NodeReader, compose_yaml_file
from gateway.audit_checkpoints import NODE_NAME
from gateway.config.access import AccessReader
from gateway.config.masks import MaskReader
from gateway.config.model import (
    Address,
    AuditConfig,
    Config,
    ConnectionLimits,
    ListenConfig,
    LiveViewConfig,
    NetworkConfig,
    OcrConfig,
    PiiConfig,
    PublicURL,
    StorageConfig,
    TLSConfig,
    UIConfig,
)
from gateway.config.sizes import DEFAULT_MIN_FREE, MinFree, parse_min_free
from gateway.config.values import HOSTNAME
from gateway.i18n import LANGUAGES
from gateway.policy import ANY_GROUP, Policy
from recorder.jobs import LEASE_SECONDS
from recorder.ocr import LANGUAGE
from recorder.pii import BUILTIN_KINDS, MAX_PATTERNS, PiiPattern
from recorder.render import DEFAULT_MAX_FPS
from recorder.storage import S3Location
from recorder.upload import SEGMENT_BYTES, SEGMENT_SECONDS, UPLOAD_DEADLINE

#: The most frames a second a rendered video may have (``storage.export_fps``).
MAX_EXPORT_FPS = 60

#: Where ``deskgate serve`` writes its process id, relative to the config file's directory.
DEFAULT_PID_FILE = "var/deskgate.pid"
DATABASE_URL = re.compile(r"(sqlite|postgresql)(\+\w+)?://")


def load_config(path: Path | str) -> Config:
    """Read and validate a configuration file; an empty file means all defaults."""
    root = compose_yaml_file(Path(path))
    return _ConfigReader(NodeReader(Path(path)), Path(path).absolute().parent).config(root)


class _ConfigReader(AccessReader, MaskReader):
    """Walks the composed document section by section; every method returns a frozen object."""

    def config(self, root: Node | None) -> Config:
        top = self.r.mapping(root, "", ["listen", "tls", "network", "auth", "storage", "targets", "policies",
                                        "audit", "ui", "live_view", "ocr", "pii", "masks"])
        tls = self.tls(top.get("tls"))
        targets = self.targets(top.get("targets"))
        web_session = self.web_session(top.get("auth"))
        policies = self.policies(top.get("policies"), targets, web_session.idle_timeout)
        return Config(
            path=self.r.path.absolute(),
            listen=self.listen(top.get("listen"), tls),
            tls=tls,
            network=self.network(top.get("network")),
            auth=self.auth(top.get("auth"), policies, web_session),
            storage=self.storage(top.get("storage")),
            targets=MappingProxyType(targets),
            policies=policies,
            audit=self.audit(top.get("audit")),
            ui=self.ui(top.get("ui")),
            live_view=self.live_view(top.get("live_view")),
            ocr=self.ocr(top.get("ocr")),
            pii=self.pii(top.get("pii")),
            masks=self.masks(top.get("masks"), targets),
        )

    def address(self, node: Node | None, key: str, default: str) -> Address:
        text = self.r.string(node, key, default)
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", text)
        if not match:
            raise self.r.error(node, key, f"{text!r} is not HOST:PORT; use e.g. 127.0.0.1:8080 or [::1]:8080")
        port = int(match.group(2) or match.group(4))
        if port > 65535:
            raise self.r.error(node, key, f"port {port} is out of range; use 1-65535 (0 picks a free port)")
        return Address(match.group(1) or match.group(3), port)

    def listen(self, node: Node | None, tls: TLSConfig) -> ListenConfig:
        section = self.r.mapping(node, "listen", ["http", "metrics", "public_url", "drain_timeout", "ssh",
                                                  "ssh_host_key"])
        http = self.address(section.get("http"), "listen.http", "127.0.0.1:8080")
        if not http.is_loopback and not tls.enabled:
            raise self.r.error(section.get("http"), "listen.http", f"{http} is not a loopback address: "
                               "exposing the gateway without TLS; set tls.cert and tls.key")
        return ListenConfig(http, self.address(section.get("metrics"), "listen.metrics", "127.0.0.1:9108"),
                            self.public_url(section.get("public_url"), tls),
                            self.duration(section.get("drain_timeout"), "listen.drain_timeout", 20.0),
                            None if self.r.is_null(ssh := section.get("ssh")) or ssh is None
                            else self.address(ssh, "listen.ssh", ""),
                            self.path(section.get("ssh_host_key"), "listen.ssh_host_key", "var/ssh_host_ed25519_key"))

    def public_url(self, node: Node | None, tls: TLSConfig) -> PublicURL | None:
        """``scheme://host[:port]`` and nothing else; https unless the host is this machine."""
        key = "listen.public_url"
        text = self.r.optional_string(node, key)
        if text is None:
            return None
        hint = "use e.g. https://gateway.example.com or https://gateway.example.com:8443"
        parts = urlsplit(text.strip())
        try:
            port = parts.port
        except ValueError:
            raise self.r.error(node, key, f"{text!r} has a bad port; {hint}") from None
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme not in ("http", "https") or not host:
            raise self.r.error(node, key, f"{text!r} is not an http(s) URL; {hint}")
        if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise self.r.error(node, key, f"{text!r} has more than scheme, host and port; {hint}")
        if not HOSTNAME.fullmatch(host) and not is_ip_address(host):
            raise self.r.error(node, key, f"{host!r} is not a host name or IP address; {hint}")
        if parts.scheme == "http" and not Address(host, 0).is_loopback:
            raise self.r.error(node, key, "http:// would carry passwords in clear between the browser and the "
                               "gateway; use https:// (a TLS-terminating proxy in front is fine)")
        if parts.scheme == "http" and tls.enabled:
            raise self.r.error(node, key, "the gateway speaks TLS (tls.cert and tls.key), so browsers use https://")
        return PublicURL(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))

    def tls(self, node: Node | None) -> TLSConfig:
        section = self.r.mapping(node, "tls", ["cert", "key"])
        cert = self.optional_path(section.get("cert"), "tls.cert")
        key = self.optional_path(section.get("key"), "tls.key")
        if (cert is None) != (key is None):
            missing = "tls.key" if key is None else "tls.cert"
            raise self.r.error(node, missing, "tls.cert and tls.key go together; set both or neither")
        return TLSConfig(cert, key)

    def network(self, node: Node | None) -> NetworkConfig:
        limits = ["header_timeout", "body_timeout", "max_connections", "max_connections_per_source"]
        section = self.r.mapping(node, "network", ["allow", "trusted_proxies", "proxy_header", "metrics_allow", *limits])
        header = section.get("proxy_header")
        metrics_allow = section.get("metrics_allow")
        default = ConnectionLimits()
        return NetworkConfig(
            allow=self.networks(section.get("allow"), "network.allow", ("127.0.0.0/8", "::1/128")),
            trusted_proxies=self.networks(section.get("trusted_proxies"), "network.trusted_proxies"),
            proxy_header=ProxyHeader(self.r.choice(header, "network.proxy_header", list(ProxyHeader)))
            if header is not None else ProxyHeader.X_FORWARDED_FOR,
            metrics_allow=None if metrics_allow is None else self.networks(metrics_allow, "network.metrics_allow"),
            connections=ConnectionLimits(
                header_timeout=self.duration(section.get("header_timeout"), "network.header_timeout",
                                             default.header_timeout),
                body_timeout=self.duration(section.get("body_timeout"), "network.body_timeout", default.body_timeout),
                max_connections=self.count(section.get("max_connections"), "network.max_connections",
                                           default.max_connections),
                max_connections_per_source=self.count(section.get("max_connections_per_source"),
                                                      "network.max_connections_per_source",
                                                      default.max_connections_per_source),
            ),
        )

    def web_session(self, auth_node: Node | None) -> WebSessionConfig:
        """``auth.web_session`` (read before the policies: its idle timeout is theirs by default)."""
        r = self.r
        section = r.mapping(auth_node, "auth", None)
        web = r.mapping(section.get("web_session"), "auth.web_session", ["idle_timeout", "absolute_timeout"])
        idle = self.duration(web.get("idle_timeout"), "auth.web_session.idle_timeout", 15 * 60.0)
        absolute = self.duration(web.get("absolute_timeout"), "auth.web_session.absolute_timeout", 12 * 3600.0)
        if idle > absolute:
            raise r.error(web.get("idle_timeout"), "auth.web_session.idle_timeout",
                          "is longer than auth.web_session.absolute_timeout; make it shorter")
        return WebSessionConfig(idle, absolute)

    def auth(self, node: Node | None, policies: tuple[Policy, ...], web_session: WebSessionConfig) -> AuthConfig:
        r = self.r
        section = r.mapping(node, "auth", ["local", "ldap", "totp", "web_session", "order"])
        local = None
        if not r.is_null(section.get("local")):  # absent means the default; null switches it off
            local_section = r.mapping(section.get("local"), "auth.local", ["users_file"])
            local = LocalAuthConfig(self.path(local_section.get("users_file"), "auth.local.users_file", "var/users.yaml"))
        ldap_node = section.get("ldap")
        ldap = None if ldap_node is None or r.is_null(ldap_node) else self.ldap(ldap_node, policies)
        if local is None and ldap is None:
            raise r.error(node, "auth", "no way to log in; configure auth.local or auth.ldap")
        totp = r.mapping(section.get("totp"), "auth.totp", ["required", "issuer", "secret_key_file"])
        return AuthConfig(
            local=local,
            ldap=ldap,
            totp=TOTPConfig(
                required=r.boolean(totp.get("required"), "auth.totp.required", True),
                issuer=r.string(totp.get("issuer"), "auth.totp.issuer", "deskgate"),
                secret_key_file=self.path(totp.get("secret_key_file"), "auth.totp.secret_key_file", "var/totp.key"),
            ),
            web_session=web_session,
            order=self.backend_order(section.get("order"), {"local": local, "ldap": ldap}),
        )

    def backend_order(self, node: Node | None, configured: Mapping[str, object]) -> tuple[str, ...]:
        if node is None:
            return tuple(name for name, backend in configured.items() if backend is not None)
        order = []
        for item, key in self.r.sequence(node, "auth.order"):
            name = self.r.choice(item, key, list(configured))
            if configured[name] is None:
                raise self.r.error(item, key, f"auth.{name} is not configured; configure it or remove it here")
            if name in order:
                raise self.r.error(item, key, f"{name} is listed twice; keep one")
            order.append(name)
        missing = [name for name, backend in configured.items() if backend is not None and name not in order]
        if missing:
            raise self.r.error(node, "auth.order", f"auth.{missing[0]} is configured but not listed; add it")
        return tuple(order)

    def ldap(self, node: Node, policies: tuple[Policy, ...]) -> LDAPConfig:
        r = self.r
        keys = ["url", "start_tls", "bind_dn", "bind_password_file", "user_base", "user_filter",
                "group_base", "group_filter", "timeout", "ca_file", "allowed_groups", "admin_groups",
                "display_name_attribute"]
        section = r.mapping(node, "auth.ldap", keys, required=["url", "user_base"])
        url = r.string(section["url"], "auth.ldap.url")
        start_tls = r.boolean(section.get("start_tls"), "auth.ldap.start_tls", False)
        if not url.startswith(("ldap://", "ldaps://")):
            raise r.error(section["url"], "auth.ldap.url", f"{url!r} is not an LDAP URL; use ldaps://HOST or ldap://HOST")
        if url.startswith("ldap://") and not start_tls:
            raise r.error(section["url"], "auth.ldap.url",
                          "ldap:// without start_tls sends passwords in clear; use ldaps:// or set start_tls: true")
        if url.startswith("ldaps://") and start_tls:
            raise r.error(section["start_tls"], "auth.ldap.start_tls", "ldaps:// is already TLS; remove start_tls")
        bind_dn = r.optional_string(section.get("bind_dn"), "auth.ldap.bind_dn")
        password_file = self.optional_path(section.get("bind_password_file"), "auth.ldap.bind_password_file")
        if (bind_dn is None) != (password_file is None):
            raise r.error(node, "auth.ldap.bind_dn", "bind_dn and bind_password_file go together; set both or neither")
        user_filter = r.string(section.get("user_filter"), "auth.ldap.user_filter", "(uid={username})")
        if "{username}" not in user_filter:
            raise r.error(section.get("user_filter"), "auth.ldap.user_filter",
                          "must contain {username}, e.g. (uid={username})")
        admin_groups = self.admin_groups(section.get("admin_groups"))
        allowed_groups = self.allowed_groups(section.get("allowed_groups"), policies)
        return LDAPConfig(
            url=url,
            start_tls=start_tls,
            bind_dn=bind_dn,
            bind_password_file=password_file,
            user_base=r.string(section["user_base"], "auth.ldap.user_base"),
            user_filter=user_filter,
            group_base=r.optional_string(section.get("group_base"), "auth.ldap.group_base"),
            group_filter=r.optional_string(section.get("group_filter"), "auth.ldap.group_filter"),
            timeout=self.duration(section.get("timeout"), "auth.ldap.timeout", 5.0),
            ca_file=self.optional_path(section.get("ca_file"), "auth.ldap.ca_file"),
            allowed_groups=None if allowed_groups is None else allowed_groups | admin_groups,
            admin_groups=admin_groups,
            display_name_attribute=r.string(section.get("display_name_attribute"), "auth.ldap.display_name_attribute",
                                            "displayName"),
        )

    def admin_groups(self, node: Node | None) -> frozenset[str]:
        """``auth.ldap.admin_groups``: directory groups whose members are administrators; absent: none."""
        groups = set()
        for item, key in self.r.sequence(node, "auth.ldap.admin_groups"):
            group = self.r.string(item, key)
            if group == ANY_GROUP:
                raise self.r.error(item, key, '"*" would make every directory user an administrator; name the groups')
            groups.add(group)
        return frozenset(groups)

    def allowed_groups(self, node: Node | None, policies: tuple[Policy, ...]) -> frozenset[str] | None:
        """The listed groups; absent: the groups the policies name; ``"*"`` anywhere: no restriction (None)."""
        if node is None:
            groups = {group for policy in policies for group in policy.groups}
        else:
            items = self.r.sequence(node, "auth.ldap.allowed_groups")
            groups = {self.r.string(item, key) for item, key in items}
            if not groups:
                raise self.r.error(node, "auth.ldap.allowed_groups",
                                   'is empty, which would let no directory user in; list groups, or "*" for all')
        return None if ANY_GROUP in groups else frozenset(groups)

    def storage(self, node: Node | None) -> StorageConfig:
        section = self.r.mapping(node, "storage", ["recordings", "database", "fsync_interval", "recording_key_file",
                                                       "pid_file", "spool", "s3", "segment_bytes", "segment_interval",
                                                       "upload_deadline", "retention", "workers", "job_lease", "min_free",
                                                       "export_fps", "recording_keys", "encrypt_recordings", "spool_keep",
                                                       "writer_cpus", "render_workers"])
        database = self.r.string(section.get("database"), "storage.database", "sqlite:///var/deskgate.db")
        if not DATABASE_URL.match(database):
            raise self.r.error(section.get("database"), "storage.database",
                               f"{database!r} is not a database URL; use sqlite:///PATH or postgresql://HOST/DB")
        scheme, _, sqlite_path = database.partition(":///")
        if scheme.startswith("sqlite") and sqlite_path and not sqlite_path.startswith(("/", ":memory:")):
            database = f"{scheme}:///{self.base / sqlite_path}"  # relative to the config file, like other paths
        recordings_node = section.get("recordings")
        s3 = self.s3(recordings_node, section.get("s3"))
        segment_node = section.get("segment_bytes")
        segment_bytes = SEGMENT_BYTES if segment_node is None else self.r.integer(segment_node, "storage.segment_bytes")
        if segment_bytes < 1:
            raise self.r.error(segment_node, "storage.segment_bytes", "must be a positive number of bytes")
        return StorageConfig(
            recordings=self.path(section.get("spool"), "storage.spool", "var/spool") if s3 is not None
            else self.path(recordings_node, "storage.recordings", "var/recordings"),
            database=database,
            fsync_interval=self.duration(section.get("fsync_interval"), "storage.fsync_interval", 1.0),
            recording_key_file=self.path(section.get("recording_key_file"), "storage.recording_key_file",
                                         "var/recording.key"),
            pid_file=self.path(section.get("pid_file"), "storage.pid_file", DEFAULT_PID_FILE),
            s3=s3,
            segment_bytes=segment_bytes,
            segment_interval=self.duration(section.get("segment_interval"), "storage.segment_interval",
                                           SEGMENT_SECONDS),
            upload_deadline=self.duration(section.get("upload_deadline"), "storage.upload_deadline", UPLOAD_DEADLINE),
            retention=self.optional_duration(section.get("retention"), "storage.retention"),
            job_lease=self.duration(section.get("job_lease"), "storage.job_lease", LEASE_SECONDS),
            spool_keep=self.duration(section.get("spool_keep"), "storage.spool_keep", 3600.0),
            workers=self.r.boolean(section.get("workers"), "storage.workers", True),
            min_free=self.min_free(section.get("min_free")),
            export_fps=self.export_fps(section.get("export_fps")),
            recording_keys=self.path(section.get("recording_keys"), "storage.recording_keys", "var/recording-keys"),
            encrypt_recordings=self.r.boolean(section.get("encrypt_recordings"), "storage.encrypt_recordings", True),
            writer_cpus=self.writer_cpus(section.get("writer_cpus")),
            render_workers=self.processes(section.get("render_workers"), "storage.render_workers",
                                          " (unset: half the CPUs this node may use); size it from the render "
                                          "speed, see Sizing in the README"),
        )

    def writer_cpus(self, node: Node | None) -> tuple[int, ...]:
        """``storage.writer_cpus``: the CPUs the journal writer threads run on; empty: wherever the OS puts them."""
        if node is None:
            return ()
        machine = os.cpu_count() or 1
        cpus = []
        for item, key in self.r.sequence(node, "storage.writer_cpus"):
            cpu = self.r.integer(item, key)
            if not 0 <= cpu < machine:
                raise self.r.error(item, key, f"there is no CPU {cpu}: this machine has CPUs 0 to {machine - 1}")
            cpus.append(cpu)
        return tuple(sorted(set(cpus)))

    def processes(self, node: Node | None, key: str, advice: str = "") -> int | None:
        """A count of worker processes at ``key``, 1 to 64; None when unset. ``advice`` follows the refusal."""
        if node is None:
            return None
        workers = self.r.integer(node, key)
        if not 1 <= workers <= 64:
            raise self.r.error(node, key, f"must be from 1 to 64 processes{advice}")
        return workers

    def export_fps(self, node: Node | None) -> int:
        """``storage.export_fps``: frames a second at most in rendered videos, 1 to 60."""
        fps = self.count(node, "storage.export_fps", DEFAULT_MAX_FPS)
        if fps > MAX_EXPORT_FPS:
            raise self.r.error(node, "storage.export_fps", f"{fps} frames a second is more than a screen recording "
                               f"shows; use 1 to {MAX_EXPORT_FPS} (default {DEFAULT_MAX_FPS})")
        return fps

    def s3(self, recordings: Node | None, node: Node | None) -> S3Location | None:
        """``storage.recordings: s3://…`` with ``storage.s3``; None for a directory."""
        url = self.r.string(recordings, "storage.recordings", "var/recordings")
        if not url.startswith("s3://"):
            if node is not None:
                raise self.r.error(node, "storage.s3", "is set but storage.recordings is a directory; "
                                   "write storage.recordings: s3://BUCKET/PREFIX to keep recordings in a bucket")
            return None
        section = self.r.mapping(node, "storage.s3", ["endpoint", "region", "access_key_file", "secret_key_file"])
        access, secret = section.get("access_key_file"), section.get("secret_key_file")
        if (access is None) != (secret is None):
            raise self.r.error(access or secret, "storage.s3", "give both access_key_file and secret_key_file, "
                               "or neither (then the AWS variables, e.g. AWS_ACCESS_KEY_ID, are used)")
        try:
            return S3Location.parse(
                url, endpoint=self.r.optional_string(section.get("endpoint"), "storage.s3.endpoint"),
                region=self.r.optional_string(section.get("region"), "storage.s3.region"),
                access_key_file=self.optional_path(access, "storage.s3.access_key_file"),
                secret_key_file=self.optional_path(secret, "storage.s3.secret_key_file"))
        except ValueError as error:
            raise self.r.error(recordings, "storage.recordings", str(error)) from None


    def min_free(self, node: Node | None) -> MinFree:
        if node is None or self.r.is_null(node):
            return DEFAULT_MIN_FREE
        value = self.r.scalar(node, "storage.min_free", (str, int), "an amount of disk space")
        assert isinstance(value, (str, int))
        try:
            return parse_min_free(value)
        except ValueError as error:
            raise self.r.error(node, "storage.min_free", str(error)) from None

    def audit(self, node: Node | None) -> AuditConfig:
        section = self.r.mapping(node, "audit", ["checkpoint_key_file", "checkpoint_dir", "checkpoint_interval",
                                                 "node"])
        name = self.r.string(section.get("node"), "audit.node", default_node_name())
        if not NODE_NAME.fullmatch(name):
            raise self.r.error(section.get("node"), "audit.node", f"{name!r} is not a node name; use letters, "
                               "digits, '_' and '-' (at most 63), e.g. the host name without its domain")
        return AuditConfig(
            checkpoint_key_file=self.path(section.get("checkpoint_key_file"), "audit.checkpoint_key_file",
                                          "var/audit.key"),
            checkpoint_dir=self.path(section.get("checkpoint_dir"), "audit.checkpoint_dir", "var/audit-checkpoints"),
            checkpoint_interval=self.duration(section.get("checkpoint_interval"), "audit.checkpoint_interval", 60.0),
            node=name,
        )

    def ui(self, node: Node | None) -> UIConfig:
        section = self.r.mapping(node, "ui", ["language", "timezone"])
        language_node = section.get("language")
        language = "en" if language_node is None else self.r.choice(language_node, "ui.language", LANGUAGES)
        default_zone = "Asia/Tokyo" if language == "ja" else "UTC"
        zone_node = section.get("timezone")
        zone = self.r.string(zone_node, "ui.timezone", default_zone)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.r.error(zone_node, "ui.timezone", f"{zone!r} is not a time zone; use an IANA name such as "
                               "Asia/Tokyo, Europe/Berlin or UTC") from None
        return UIConfig(language=language, timezone=zone)

    def live_view(self, node: Node | None) -> LiveViewConfig:
        section = self.r.mapping(node, "live_view", ["interval", "tile_interval", "tile_quality"])
        default = LiveViewConfig()
        intervals = {}
        for name in ("interval", "tile_interval"):
            key = f"live_view.{name}"
            intervals[name] = value = self.duration(section.get(name), key, getattr(default, name))
            if not 0 <= value <= 60:
                raise self.r.error(section.get(name), key, "must be from 0 to 60 s (e.g. 100ms, 2s)")
        quality = default.tile_quality
        if (node_quality := section.get("tile_quality")) is not None:
            quality = self.r.integer(node_quality, "live_view.tile_quality")
            if not 0 <= quality <= 9:
                raise self.r.error(node_quality, "live_view.tile_quality", "must be a JPEG quality level from 0 to 9")
        return LiveViewConfig(interval=intervals["interval"], tile_interval=intervals["tile_interval"],
                              tile_quality=quality)

    def ocr(self, node: Node | None) -> OcrConfig:
        section = self.r.mapping(node, "ocr", ["enabled", "languages", "workers", "interval"])
        default = OcrConfig()
        enabled_node = section.get("enabled")
        enabled = default.enabled
        if enabled_node is not None:  # YAML reads a bare on/off as a boolean
            value = self.r.scalar(enabled_node, "ocr.enabled", (str, bool), "auto, on or off")
            enabled = ("on" if value else "off") if isinstance(value, bool) else str(value)
            if enabled not in ("auto", "on", "off"):
                raise self.r.error(enabled_node, "ocr.enabled", f"{enabled!r} is not auto, on or off")
        languages = self.r.string(section.get("languages"), "ocr.languages", default.languages)
        if not LANGUAGE.fullmatch(languages):
            raise self.r.error(section.get("languages"), "ocr.languages",
                               f"{languages!r} is not a list of Tesseract languages; use e.g. jpn+eng")
        workers = self.processes(section.get("workers"), "ocr.workers") or default.workers
        interval = self.duration(section.get("interval"), "ocr.interval", default.interval)
        if not 0.2 <= interval <= 60:
            raise self.r.error(section.get("interval"), "ocr.interval", "must be from 200ms to 60s (e.g. 1s)")
        return OcrConfig(enabled=enabled, languages=languages, workers=workers, interval=interval)

    def pii(self, node: Node | None) -> PiiConfig:
        section = self.r.mapping(node, "pii", ["kinds", "patterns"])
        kinds: tuple[str, ...] = BUILTIN_KINDS
        if (kinds_node := section.get("kinds")) is not None:
            kinds = tuple(self.r.choice(item, key, BUILTIN_KINDS) for item, key in self.r.sequence(kinds_node, "pii.kinds"))
        patterns = []
        items = self.r.sequence(section.get("patterns"), "pii.patterns")
        if len(items) > MAX_PATTERNS:
            raise self.r.error(section.get("patterns"), "pii.patterns", f"at most {MAX_PATTERNS} patterns")
        for item, key in items:
            entry = self.r.mapping(item, key, ["kind", "pattern"], required=["kind", "pattern"])
            kind, pattern = self.r.string(entry["kind"], f"{key}.kind"), self.r.string(entry["pattern"], f"{key}.pattern")
            try:
                PiiPattern.configured(kind, pattern)
            except ValueError as error:
                raise self.r.error(item, key, str(error)) from None
            patterns.append((kind, pattern))
        return PiiConfig(kinds=kinds, patterns=tuple(patterns))


def default_node_name() -> str:
    """This host's name without its domain, in the characters a node name allows."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:63].lstrip("_-")
    return name or "node"

