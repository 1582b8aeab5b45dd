from __future__ import annotations

import os
import textwrap
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.netacl import ProxyHeader
from base.errors import ConfigError
from gateway.config import Address, ConnectionLimits, LiveViewConfig, PublicURL, load_config, parse_duration
from gateway.config.model import KNOWN_HOSTS_UNCHECKED
from gateway.policy import Clipboard
from gateway.rfb.messages import Encoding

DESIGN_EXAMPLE = """\
listen: {http: "127.0.0.1:8080", metrics: "127.0.0.1:9108"}
tls: {cert: null, key: null}
network: {allow: ["127.0.0.0/8", "::1/128"], trusted_proxies: []}
auth:
  local: {users_file: "var/users.yaml"}
  ldap: null          # {url, start_tls, bind_dn, bind_password_file, user_base, user_filter, group_base, group_filter, timeout}
  totp: {required: true, issuer: "deskgate"}
  web_session: {idle_timeout: "15m", absolute_timeout: "12h"}
storage: {recordings: "var/recordings", database: "sqlite:///var/deskgate.db", fsync_interval: "1s"}
targets:
  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901, password_file: "var/desk-01.pass"}
  shell-01: {protocol: ssh, host: 127.0.0.1, port: 22, username: ops, key_file: "var/id_ed25519"}
policies:             # first match wins; no match means deny
  - name: operators
    groups: [operators]
    from: ["127.0.0.0/8"]
    targets: ["desk-*"]
    clipboard: off    # off | to-remote | to-local | both
    idle_timeout: "10m"
    max_session: "9h"
"""

TARGETS = """\
targets:
  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}
"""


def write(tmp_path: Path, text: str, name: str = "deskgate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_design_example_loads_into_typed_objects(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_EXAMPLE))
    assert config.path == tmp_path / "deskgate.yaml"
    assert config.listen.http == Address("127.0.0.1", 8080)
    assert config.listen.metrics == Address("127.0.0.1", 9108)
    assert not config.tls.enabled
    assert config.network.allow == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    assert config.auth.local is not None and config.auth.local.users_file == tmp_path / "var/users.yaml"
    assert config.auth.ldap is None
    assert config.auth.totp.required and config.auth.totp.issuer == "deskgate"
    assert (config.auth.web_session.idle_timeout, config.auth.web_session.absolute_timeout) == (900, 43200)
    assert config.storage.recordings == tmp_path / "var/recordings"
    assert config.storage.database == f"sqlite:///{tmp_path}/var/deskgate.db"
    assert config.storage.fsync_interval == 1.0
    assert list(config.targets) == ["desk-01", "shell-01"]
    desk, shell = config.targets["desk-01"], config.targets["shell-01"]
    assert (desk.protocol, desk.host, desk.port, desk.password_file) == ("vnc", "127.0.0.1", 5901, tmp_path / "var/desk-01.pass")
    assert (shell.protocol, shell.username, shell.key_file) == ("ssh", "ops", tmp_path / "var/id_ed25519")
    (policy,) = config.policies
    assert policy.name == "operators" and policy.groups == ("operators",) and policy.targets == ("desk-*",)
    assert policy.from_networks == (ip_network("127.0.0.0/8"),)
    assert policy.clipboard is Clipboard.OFF  # bare `off` is YAML false
    assert (policy.idle_timeout, policy.max_session) == (600, 9 * 3600)


def test_empty_file_means_safe_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.listen.http == Address("127.0.0.1", 8080) and config.listen.http.is_loopback
    assert config.listen.metrics == Address("127.0.0.1", 9108)
    assert config.network.allow == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    assert config.network.trusted_proxies == ()
    assert config.auth.totp.required
    assert config.auth.local is not None and config.auth.local.users_file == tmp_path / "var/users.yaml"
    assert config.storage.recordings == tmp_path / "var/recordings"
    assert dict(config.targets) == {} and config.policies == ()


def test_exports_are_capped_at_10_frames_a_second_unless_configured(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).storage.export_fps == 10
    assert load_config(write(tmp_path, "storage:\n  export_fps: 25\n")).storage.export_fps == 25


def test_journal_writers_are_pinned_only_when_configured(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).storage.writer_cpus == ()
    cpu = (os.cpu_count() or 1) - 1
    assert load_config(write(tmp_path, f"storage:\n  writer_cpus: [{cpu}, {cpu}]\n")).storage.writer_cpus == (cpu,)


def test_render_workers_are_half_the_usable_cpus_unless_configured(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).storage.render_workers is None
    assert load_config(write(tmp_path, "storage:\n  render_workers: 6\n")).storage.render_workers == 6


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_EXAMPLE))
    with pytest.raises(AttributeError):
        config.listen = config.listen  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.targets["x"] = config.targets["desk-01"]  # type: ignore[index]


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", """\
        tls: {cert: tls/cert.pem, key: /abs/key.pem}
        listen: {http: "0.0.0.0:443"}
        auth: {local: {users_file: users.yaml}}
        storage: {recordings: ../rec, database: "sqlite:///db/x.db"}
        """)
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.tls.cert == tmp_path / "etc/tls/cert.pem"
    assert config.tls.key == Path("/abs/key.pem") and config.tls.enabled
    assert config.listen.http == Address("0.0.0.0", 443)  # allowed: TLS is on
    assert config.auth.local is not None and config.auth.local.users_file == tmp_path / "etc/users.yaml"
    assert config.storage.recordings == tmp_path / "etc/../rec"
    assert config.storage.database == f"sqlite:///{tmp_path}/etc/db/x.db"


def test_relative_config_path_is_resolved_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "auth: {local: {users_file: u.yaml}}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("deskgate.yaml")
    assert config.path == tmp_path / "deskgate.yaml"
    assert config.auth.local is not None and config.auth.local.users_file == tmp_path / "u.yaml"


def test_ipv6_listen_address_and_absolute_sqlite_and_postgres(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        listen: {http: "[::1]:8443", metrics: "[::]:9108"}
        storage: {database: "postgresql+asyncpg://db.example/deskgate"}
        """))
    assert config.listen.http == Address("::1", 8443) and config.listen.http.is_loopback
    assert str(config.listen.http) == "[::1]:8443"
    assert config.listen.metrics == Address("::", 9108)
    assert config.storage.database == "postgresql+asyncpg://db.example/deskgate"


def test_ldap_section_is_validated(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        auth:
          local: null
          ldap:
            url: ldaps://ldap.example
            bind_dn: cn=gateway,dc=example
            bind_password_file: ldap.pass
            user_base: ou=people,dc=example
            timeout: 3s
        """))
    assert config.auth.local is None
    ldap = config.auth.ldap
    assert ldap is not None
    assert (ldap.url, ldap.start_tls, ldap.bind_dn) == ("ldaps://ldap.example", False, "cn=gateway,dc=example")
    assert ldap.bind_password_file == tmp_path / "ldap.pass"
    assert (ldap.user_filter, ldap.group_base, ldap.timeout) == ("(uid={username})", None, 3.0)


def test_auth_defaults_order_key_file_and_proxy_header(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.auth.order == ("local",)
    assert config.auth.totp.secret_key_file == tmp_path / "var/totp.key"
    assert config.network.proxy_header is ProxyHeader.X_FORWARDED_FOR
    config = load_config(write(tmp_path, """\
        network: {trusted_proxies: ["10.0.0.0/24"], proxy_header: Forwarded}
        auth:
          order: [ldap, local]
          ldap: {url: "ldaps://ldap.example", user_base: "ou=people,dc=example", ca_file: ca.pem}
          totp: {secret_key_file: /etc/deskgate/totp.key}
        """))
    assert config.network.proxy_header is ProxyHeader.FORWARDED
    assert config.auth.order == ("ldap", "local")
    assert config.auth.ldap is not None and config.auth.ldap.ca_file == tmp_path / "ca.pem"
    assert config.auth.totp.secret_key_file == Path("/etc/deskgate/totp.key")


def test_ldap_allowed_groups_default_to_the_groups_policies_name(tmp_path: Path) -> None:
    ldap = "auth:\n  ldap: {url: 'ldaps://l', user_base: 'ou=p,dc=e'%s}\n"
    policies = TARGETS + ("policies:\n  - {name: a, groups: [ops, staff], targets: [desk-01]}\n"
                          "  - {name: b, groups: [auditors], targets: [desk-01]}\n")
    config = load_config(write(tmp_path, ldap % "" + policies))
    assert config.auth.ldap is not None and config.auth.ldap.allowed_groups == frozenset({"ops", "staff", "auditors"})
    config = load_config(write(tmp_path, ldap % ", allowed_groups: [ops]" + policies))
    assert config.auth.ldap is not None and config.auth.ldap.allowed_groups == frozenset({"ops"})
    config = load_config(write(tmp_path, ldap % ", allowed_groups: ['*']" + policies))
    assert config.auth.ldap is not None and config.auth.ldap.allowed_groups is None
    no_policies = load_config(write(tmp_path, ldap % ""))
    assert no_policies.auth.ldap is not None and no_policies.auth.ldap.allowed_groups == frozenset()


def test_ldap_admin_groups_are_administrators_who_may_always_log_in(tmp_path: Path) -> None:
    ldap = "auth:\n  ldap: {url: 'ldaps://l', user_base: 'ou=p,dc=e'%s}\n"
    policies = TARGETS + "policies:\n  - {name: a, groups: [ops], targets: [desk-01]}\n"
    config = load_config(write(tmp_path, ldap % ", admin_groups: [it-admins]" + policies))
    assert config.auth.ldap is not None and config.auth.ldap.admin_groups == frozenset({"it-admins"})
    assert config.auth.ldap.allowed_groups == frozenset({"ops", "it-admins"})  # in no policy's groups, still let in
    config = load_config(write(tmp_path, ldap % ", allowed_groups: ['*'], admin_groups: [it-admins]" + policies))
    assert config.auth.ldap is not None and config.auth.ldap.allowed_groups is None
    assert load_config(write(tmp_path, ldap % "" + policies)).auth.ldap.admin_groups == frozenset()  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"admin_groups\[0\]: \"\*\" would make every directory user an admin"):
        load_config(write(tmp_path, ldap % ", admin_groups: ['*']" + policies))


def test_policies_remember_where_they_were_written(tmp_path: Path) -> None:
    path = write(tmp_path, TARGETS + "policies:\n  - name: a\n    groups: [ops]\n    targets: [desk-01]\n"
                                     "  - {name: b, groups: [ops], targets: [desk-01]}\n")
    lines = path.read_text().splitlines()
    assert [policy.origin for policy in load_config(path).policies] == [
        f"{path}:{lines.index('  - name: a') + 1}", f"{path}:{len(lines)}"]


def test_clipboard_modes(tmp_path: Path) -> None:
    for text, mode in [("both", Clipboard.BOTH), ('"to-remote"', Clipboard.TO_REMOTE), ("to-local", Clipboard.TO_LOCAL),
                       ('"off"', Clipboard.OFF), ("no", Clipboard.OFF)]:
        path = write(tmp_path, TARGETS + f"policies:\n  - {{name: p, groups: ['*'], targets: [desk-01], clipboard: {text}}}\n")
        assert load_config(path).policies[0].clipboard is mode


def test_watch_lists_groups_or_star_and_defaults_to_nobody(tmp_path: Path) -> None:
    for text, watch in (("", ()), (", watch: [operators, trainees]", ("operators", "trainees")),
                        (", watch: '*'", ("*",)), (", watch: ['*']", ("*",)), (", watch: []", ()),
                        (", watch: null", ())):
        path = write(tmp_path, TARGETS + f"policies:\n  - {{name: p, groups: [sv], targets: [desk-01]{text}}}\n")
        assert load_config(path).policies[0].watch == watch, text


def test_live_view_pacing_defaults_and_settings(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).live_view == LiveViewConfig(0.1, 2.0, 1)
    config = load_config(write(tmp_path, "live_view: {interval: 250ms, tile_interval: 5s, tile_quality: 0}\n"))
    assert config.live_view == LiveViewConfig(0.25, 5.0, 0)


def test_the_ssh_listener_is_off_by_default_and_has_a_host_key_beside_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.listen.ssh is None
    assert config.listen.ssh_host_key == tmp_path / "var/ssh_host_ed25519_key"
    config = load_config(write(tmp_path, "listen: {ssh: '[::1]:2222', ssh_host_key: keys/host}\n"))
    assert (config.listen.ssh, config.listen.ssh_host_key) == (Address("::1", 2222), tmp_path / "keys/host")
    assert load_config(write(tmp_path, "listen: {ssh: null}\n")).listen.ssh is None


def test_public_url_and_connection_limits(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.listen.public_url is None  # browsers use the listen address (and localhost on loopback)
    assert config.network.connections == ConnectionLimits(header_timeout=10.0, body_timeout=30.0,
                                                          max_connections=1024, max_connections_per_source=256)
    assert config.network.metrics_peers == config.network.allow
    config = load_config(write(tmp_path, """\
        listen: {http: "127.0.0.1:8080", public_url: "https://Gateway.Example.com./"}
        network:
          allow: [10.0.0.0/8]
          metrics_allow: [192.0.2.0/24]
          header_timeout: 5s
          body_timeout: 1m
          max_connections: 4096
          max_connections_per_source: 64
        """))
    assert config.listen.public_url == PublicURL("https", "gateway.example.com", 443)
    assert config.listen.public_url.origin == "https://gateway.example.com"
    assert config.network.connections == ConnectionLimits(5.0, 60.0, 4096, 64)
    assert config.network.metrics_peers == (ip_network("192.0.2.0/24"),)
    for url, origin in (("http://localhost:8080", "http://localhost:8080"), ("https://[2001:DB8::1]:8443",
                                                                            "https://[2001:db8::1]:8443"),
                        ("https://gw.example:443", "https://gw.example"), ("http://127.0.0.1", "http://127.0.0.1")):
        public = load_config(write(tmp_path, f"listen: {{public_url: '{url}'}}\n")).listen.public_url
        assert public is not None and public.origin == origin, url


# (file text, line, dotted key, part of the message)
BAD_FILES = [
    pytest.param(TARGETS + """\
policies:
  - name: ops
    idle_timeout: banana
    groups: [ops]
    targets: [desk-*]
""", 5, "policies[0].idle_timeout", "'banana' is not a duration; use e.g. 90s, 10m, 1h30m", id="duration"),
    pytest.param("listen:\n  http: 127.0.0.1:8080\n  metrics: 127.0.0.1:99999\n", 3, "listen.metrics",
                 "port 99999 is out of range", id="listen-port-range"),
    pytest.param("listen:\n  http: localhost\n", 2, "listen.http", "is not HOST:PORT", id="listen-no-port"),
    pytest.param("listen:\n  http: ::1:80\n", 2, "listen.http", "is not HOST:PORT; use e.g. 127.0.0.1:8080 or [::1]:8080",
                 id="ipv6-without-brackets"),
    pytest.param("\n\nlisten: {http: '0.0.0.0:8080'}\n", 3, "listen.http",
                 "exposing the gateway without TLS; set tls.cert and tls.key", id="exposed-without-tls"),
    pytest.param("tls:\n  cert: cert.pem\n", 2, "tls.key", "set both or neither", id="tls-half"),
    pytest.param("network:\n  allow:\n    - 10.0.0.0/8\n    - 192.168.1.1/24\n", 4, "network.allow[1]",
                 "'192.168.1.1/24' has host bits set; did you mean 192.168.1.0/24?", id="cidr-host-bits"),
    pytest.param("network:\n  trusted_proxies: [banana]\n", 2, "network.trusted_proxies[0]", "is not a network",
                 id="cidr-garbage"),
    pytest.param("network:\n  allow: 10.0.0.0/8\n", 2, "network.allow", "expected a list, got '10.0.0.0/8'",
                 id="allow-not-a-list"),
    pytest.param("auth:\n  totp:\n    requird: false\n", 3, "auth.totp.requird", "unknown key; did you mean 'required'?",
                 id="typo"),
    pytest.param("listen: {}\nrecordings: x\n", 2, "recordings", "unknown key; expected one of: listen, tls",
                 id="unknown-top-level"),
    pytest.param("auth:\n  totp:\n    required: 'yes please'\n", 3, "auth.totp.required", "expected true or false",
                 id="wrong-type-bool"),
    pytest.param("auth:\n  web_session: {idle_timeout: 0}\n", 2, "auth.web_session.idle_timeout",
                 "is not a positive duration", id="duration-zero"),
    pytest.param("auth:\n  web_session: {idle_timeout: 2h, absolute_timeout: 1h}\n", 2, "auth.web_session.idle_timeout",
                 "longer than auth.web_session.absolute_timeout", id="idle-over-absolute"),
    pytest.param("auth:\n  local: null\n", 2, "auth", "no way to log in", id="no-backend"),
    pytest.param("auth:\n  ldap: {url: ldap://x, user_base: dc=x}\n", 2, "auth.ldap.url", "sends passwords in clear",
                 id="ldap-cleartext"),
    pytest.param("auth:\n  ldap: {url: ldaps://x}\n", 2, "auth.ldap.user_base", "is required but missing",
                 id="ldap-missing-key"),
    pytest.param("storage:\n  database: mysql://x/y\n", 2, "storage.database", "is not a database URL", id="database"),
    pytest.param("storage:\n  export_fps: 0\n", 2, "storage.export_fps", "not a positive number", id="export-fps-0"),
    pytest.param("storage:\n  export_fps: 120\n", 2, "storage.export_fps", "use 1 to 60", id="export-fps-120"),
    pytest.param("storage:\n  writer_cpus:\n    - 4096\n", 3, "storage.writer_cpus[0]",
                 "there is no CPU 4096: this machine has CPUs 0 to", id="writer-cpus-missing"),
    pytest.param("storage:\n  writer_cpus: 1\n", 2, "storage.writer_cpus", "expected a list", id="writer-cpus-scalar"),
    pytest.param("storage:\n  render_workers: 0\n", 2, "storage.render_workers", "must be from 1 to 64 processes",
                 id="render-workers-0"),
    pytest.param("storage:\n  render_workers: auto\n", 2, "storage.render_workers", "expected a whole number",
                 id="render-workers-text"),
    pytest.param("tls:\n  cert: a\n  key: b\n  cert: c\n", 4, "tls.cert", "duplicate key (first at line 2)",
                 id="duplicate-key"),
    pytest.param("listen:\n  http: [1, 2\n", 3, "(yaml)", "invalid YAML", id="yaml-syntax"),
    pytest.param("- listen\n", 1, "(top level)", "expected a mapping of settings, got a list", id="top-level-list"),
    pytest.param("targets:\n  desk-01: {protocol: rdp, host: h}\n", 2, "targets.desk-01.protocol",
                 "'rdp' is not one of vnc, ssh", id="protocol"),
    pytest.param("targets:\n  desk-01:\n    protocol: vnc\n    host: h\n    port: 0\n", 5, "targets.desk-01.port",
                 "out of range; use 1-65535", id="target-port-zero"),
    pytest.param("targets:\n  desk-01: {protocol: vnc, host: h, port: '5900'}\n", 2, "targets.desk-01.port",
                 "expected a whole number, got '5900'", id="port-string"),
    pytest.param("targets:\n  desk-01:\n    protocol: vnc\n", 3, "targets.desk-01.host", "is required but missing",
                 id="target-missing-host"),
    pytest.param("targets:\n  desk-01: {protocol: vnc, host: 'a b'}\n", 2, "targets.desk-01.host",
                 "is not a host name or IP address", id="target-host"),
    pytest.param("targets:\n  ok: {protocol: vnc, host: h}\n  Desk_01:\n    protocol: vnc\n", 3, "targets.Desk_01",
                 "is not a valid target name", id="target-name"),
    pytest.param("targets:\n  desk: {protocol: vnc, host: h, known_hosts: k}\n", 2, "targets.desk.known_hosts",
                 "applies only to ssh targets", id="option-for-other-protocol"),
    pytest.param("targets:\n  shell: {protocol: ssh, host: h}\n", 2, "targets.shell.username", "is required for ssh",
                 id="ssh-username"),
    pytest.param("targets:\n  desk: {protocol: vnc, host: h}\n  d2:\n    protocol: vnc\n    host: h\n    via: jump\n",
                 6, "targets.d2.via", "no target called 'jump'", id="via-unknown"),
    pytest.param("targets:\n  desk: {protocol: vnc, host: h}\n  d2: {protocol: vnc, host: h, via: desk}\n",
                 3, "targets.d2.via", "a jump host must be an ssh target", id="via-not-ssh"),
    pytest.param("targets:\n  j1: {protocol: ssh, host: h, username: u}\n"
                 "  j2: {protocol: ssh, host: h, username: u, via: j1}\n  d: {protocol: vnc, host: h, via: j2}\n",
                 4, "targets.d.via", "chains of jump hosts are not supported", id="via-chain"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [], targets: [desk-01]}\n", 4, "policies[0].groups",
                 "is empty", id="groups-empty"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [ops]\n    targets: [desk-01, 'web-*']\n", 6,
                 "policies[0].targets[1]", "'web-*' matches no target defined under targets", id="pattern-matches-nothing"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [ops], targets: [desk-01], clipboard: on}\n", 4,
                 "policies[0].clipboard", "YAML reads 'on' as true, not a mode; use one of off, to-remote, to-local, both",
                 id="clipboard-true"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [ops], targets: [desk-01], clipboard: sideways}\n", 4,
                 "policies[0].clipboard", "'sideways' is not a clipboard mode", id="clipboard-unknown"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [ops], targets: [desk-01], from: ['10.0.0.1/8']}\n", 4,
                 "policies[0].from[0]", "has host bits set", id="policy-from"),
    pytest.param(TARGETS + "policies:\n  - {groups: [ops], targets: [desk-01]}\n", 4, "policies[0].name",
                 "is required but missing", id="policy-name-missing"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [ops], targets: [desk-01]}\n"
                 "  - {name: p, groups: [x], targets: [desk-01]}\n", 5, "policies[1].name", "is used twice",
                 id="policy-name-twice"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [ops], target: [desk-01]}\n", 4, "policies[0].target",
                 "did you mean 'targets'?", id="policy-typo"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [ops]\n    targets: [desk-01]\n    max_session: 1.5h\n", 7,
                 "policies[0].max_session", "is not a duration", id="policy-max-session"),
    pytest.param("auth:\n  order: [ldap]\n", 2, "auth.order[0]", "auth.ldap is not configured", id="order-unconfigured"),
    pytest.param("auth:\n  order: [local, local]\n", 2, "auth.order[1]", "listed twice", id="order-twice"),
    pytest.param("auth:\n  order: [radius]\n", 2, "auth.order[0]", "'radius' is not one of local, ldap",
                 id="order-unknown"),
    pytest.param("auth:\n  ldap: {url: 'ldaps://l', user_base: 'ou=p'}\n  order: [ldap]\n", 3, "auth.order",
                 "auth.local is configured but not listed", id="order-missing"),
    pytest.param("auth:\n  ldap: {url: 'ldaps://l', user_base: 'ou=p', allowed_groups: []}\n", 2,
                 "auth.ldap.allowed_groups", "would let no directory user in", id="allowed-groups-empty"),
    pytest.param("network: {proxy_header: X-Real-IP}\n", 1, "network.proxy_header",
                 "'X-Real-IP' is not one of X-Forwarded-For, Forwarded", id="proxy-header"),
    pytest.param("listen:\n  public_url: http://gateway.example.com\n", 2, "listen.public_url",
                 "http:// would carry passwords in clear", id="public-url-cleartext"),
    pytest.param("tls: {cert: c, key: k}\nlisten:\n  public_url: http://localhost:8080\n", 3, "listen.public_url",
                 "the gateway speaks TLS", id="public-url-http-under-tls"),
    pytest.param("listen:\n  public_url: https://gateway.example.com/deskgate\n", 2, "listen.public_url",
                 "has more than scheme, host and port", id="public-url-path"),
    pytest.param("listen:\n  public_url: gateway.example.com\n", 2, "listen.public_url",
                 "is not an http(s) URL; use e.g. https://gateway.example.com", id="public-url-no-scheme"),
    pytest.param("listen:\n  public_url: https://gateway.example.com:99999\n", 2, "listen.public_url",
                 "has a bad port", id="public-url-port"),
    pytest.param("listen:\n  public_url: https://bad_host!.example\n", 2, "listen.public_url",
                 "is not a host name or IP address", id="public-url-host"),
    pytest.param("listen:\n  ssh: ':2222:'\n", 2, "listen.ssh", "is not HOST:PORT", id="ssh-listen-bad-address"),
    pytest.param(TARGETS + "policies:\n  - {name: p, groups: [sv], targets: [desk-01], watch: operators}\n", 4,
                 "policies[0].watch", "'operators' is not a list of groups; write [operators]", id="watch-scalar"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [sv]\n    targets: [desk-01]\n    watch: [a, b, a]\n",
                 7, "policies[0].watch[2]", "group 'a' is listed twice", id="watch-twice"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [sv]\n    targets: [desk-01]\n    watch: [a, '*']\n",
                 7, "policies[0].watch", '"*" already means every group', id="watch-star-and-groups"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [sv]\n    targets: [desk-01]\n    watch: [a, '']\n",
                 7, "policies[0].watch[1]", "is empty", id="watch-empty-group"),
    pytest.param(TARGETS + "policies:\n  - name: p\n    groups: [sv]\n    targets: [desk-01]\n    watch: {a: 1}\n",
                 7, "policies[0].watch", "expected a list", id="watch-mapping"),
    pytest.param("network:\n  header_timeout: 0\n", 2, "network.header_timeout", "is not a positive duration",
                 id="header-timeout-zero"),
    pytest.param("network:\n  body_timeout: soon\n", 2, "network.body_timeout", "is not a duration",
                 id="body-timeout"),
    pytest.param("network:\n  max_connections: 0\n", 2, "network.max_connections", "0 is not a positive number",
                 id="max-connections-zero"),
    pytest.param("network:\n  max_connections_per_source: many\n", 2, "network.max_connections_per_source",
                 "expected a whole number", id="per-source-not-a-number"),
    pytest.param("network:\n  metrics_allow: [10.0.0.1/8]\n", 2, "network.metrics_allow[0]", "has host bits set",
                 id="metrics-allow"),
    pytest.param("live_view:\n  interval: 2m\n", 2, "live_view.interval", "from 0 to 60 s", id="live-interval"),
    pytest.param("live_view:\n  tile_quality: 10\n", 2, "live_view.tile_quality", "from 0 to 9", id="tile-quality"),
    pytest.param("live_view:\n  fps: 10\n", 2, "live_view.fps", "", id="live-view-unknown-key"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD_FILES)
def test_bad_files_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.line, error.key) == (line, key)
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}: {key}: ")


def test_idle_timeout_banana_message_in_full(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  web_session:\n    idle_timeout: 15m\n    absolute_timeout: 12h\n"
                 "    idle_timeout: banana\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        load_config(path)
    path = write(tmp_path, "auth:\n  totp: {required: true}\n  web_session:\n\n    idle_timeout: banana\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}:5: auth.web_session.idle_timeout: 'banana' is not a duration; "
                                 "use e.g. 90s, 10m, 1h30m, 2d or a number of seconds")


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file or directory") as caught:
        load_config(tmp_path / "absent.yaml")
    assert caught.value.line is None
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"tls: {cert: caf\xe9}\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  totp:\n    issuer: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.key) == (3, "auth.totp.issuer")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1d2h3m4s", 93784), ("250ms", 0.25),
    ("45", 45), (45, 45), (0.5, 0.5), (" 10M ", 600),
])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "banana", "0", "0s", "-5s", "1.5h", "30m1h", "1m1m", "10 m", "h", "1h 30m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="use e.g. 90s, 10m, 1h30m"):
        parse_duration(text)


def test_parse_duration_refuses_booleans_and_negative_numbers() -> None:
    for value in (True, False, -1, 0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            parse_duration(value)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 9), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_parse_duration_round_trips_units(days: int, hours: int, minutes: int, seconds: int) -> None:
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    text = "".join(f"{value}{unit}" for value, unit in parts if value)
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total == 0:
        with pytest.raises(ValueError):
            parse_duration(text or "0s")
    else:
        assert parse_duration(text) == total


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DESIGN_EXAMPLE)), st.integers(0, 40), st.text(max_size=20))
def test_mangled_files_either_load_or_raise_config_error(
    tmp_path_factory: pytest.TempPathFactory, start: int, length: int, junk: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "deskgate.yaml"
    path.write_text(DESIGN_EXAMPLE[:start] + junk + DESIGN_EXAMPLE[start + length:], encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as error:
        assert str(error).startswith(str(path))


def test_ssh_targets_take_a_known_hosts_file_a_password_file_or_no_host_key_check(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, textwrap.dedent("""\
        targets:
          shell-01: {protocol: ssh, host: h, username: ops, password_file: p.pass, known_hosts: var/known_hosts}
          shell-02: {protocol: ssh, host: h, username: ops, known_hosts: none}
          shell-03: {protocol: ssh, host: h, username: ops}
        """)))
    first, second, third = config.targets.values()
    assert (first.password_file, first.known_hosts) == (tmp_path / "p.pass", tmp_path / "var/known_hosts")
    assert second.known_hosts == KNOWN_HOSTS_UNCHECKED and third.known_hosts is None


def test_a_target_may_be_reached_via_an_ssh_jump_host(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        targets:
          jump-01: {protocol: ssh, host: bastion, username: ops}
          desk-01: {protocol: vnc, host: 10.0.0.5, via: jump-01}
          shell-01: {protocol: ssh, host: 10.0.0.6, username: ops, via: jump-01}
        """))
    assert config.targets["desk-01"].via == "jump-01" and config.targets["shell-01"].via == "jump-01"
    assert config.targets["jump-01"].via is None


def test_a_desktop_prefers_zrle_unless_told_and_only_desktops_take_the_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        targets:
          desk-01: {protocol: vnc, host: h}
          desk-02: {protocol: vnc, host: h, prefer_encoding: tight}
          desk-03: {protocol: vnc, host: h, prefer_encoding: browser}
          shell-01: {protocol: ssh, host: h, username: ops}
        """))
    assert [target.prefer_encoding for target in config.targets.values()] == [
        Encoding.ZRLE, Encoding.TIGHT, None, None]
    with pytest.raises(ConfigError, match=r"deskgate.yaml:3: targets.desk-01.prefer_encoding: 'jpeg' is not one of "
                                          r"zrle, tight, hextile, browser"):
        load_config(write(tmp_path, """\
            targets:
              desk-01: {protocol: vnc, host: h,
                        prefer_encoding: jpeg}
            """))
    with pytest.raises(ConfigError, match=r"targets.shell-01.prefer_encoding: applies only to vnc targets, not ssh"):
        load_config(write(tmp_path, """\
            targets:
              shell-01: {protocol: ssh, host: h, username: ops, prefer_encoding: zrle}
            """))
