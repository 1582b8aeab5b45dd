"""Config of issue 11's access rules: the idle timeout's default and override, ``{user}`` patterns, ``max_sessions``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.config import load_config

HEAD = """\
auth:
  web_session: {idle_timeout: "15m"}
targets:
  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}
  desk-alice: {protocol: vnc, host: 127.0.0.1, port: 5902, max_sessions: 3}
  wall: {protocol: vnc, host: 127.0.0.1, port: 5903, max_sessions: null}
  shell-01: {protocol: ssh, host: 127.0.0.1, username: ops}
  shell-02: {protocol: ssh, host: 127.0.0.1, username: ops, max_sessions: 2}
policies:
"""


def load(tmp_path: Path, policies: str) -> list[float | None]:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD + textwrap.dedent(policies))
    return [policy.idle_timeout for policy in load_config(path).policies]


def test_idle_timeouts_default_shorten_and_lengthen_only_on_purpose(tmp_path: Path) -> None:
    assert load(tmp_path, """\
        - {name: default, groups: [a], targets: [desk-01]}
        - {name: shorter, groups: [b], targets: [desk-01], idle_timeout: 5m}
        - {name: longer, groups: [c], targets: [desk-01], idle_timeout: 1h, idle_timeout_override: true}
        """) == [900, 300, 3600]


@pytest.mark.parametrize(("policy", "key", "message"), [
    ("{name: p, groups: [a], targets: [desk-01],\n     idle_timeout: 16m}", "policies[0].idle_timeout",
     "is longer than auth.web_session.idle_timeout (900 s); shorten it, or add idle_timeout_override: true"),
    ("{name: p, groups: [a], targets: [desk-01],\n     idle_timeout_override: true}", "policies[0].idle_timeout_override",
     "applies only with an idle_timeout"),
    ("{name: p, groups: [a],\n     targets: ['desk-{name}']}", "policies[0].targets[0]", "only {user} may stand for"),
    ("{name: p, groups: [a],\n     targets: ['host-{user}']}", "policies[0].targets[0]", "matches no target defined"),
])
def test_mistakes_name_file_line_and_key(tmp_path: Path, policy: str, key: str, message: str) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD + f"  - {policy}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.key) == (HEAD.count("\n") + 2, key)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{caught.value.line}: {key}: ")


def test_user_patterns_load_when_they_could_match_a_target(tmp_path: Path) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD + "  - {name: own, groups: [a], targets: ['desk-{user}']}\n")
    assert load_config(path).policies[0].targets == ("desk-{user}",)


def test_max_sessions_one_for_desktops_unlimited_for_terminals_unless_set(tmp_path: Path) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD)
    targets = load_config(path).targets
    assert {name: target.max_sessions for name, target in targets.items()} == {
        "desk-01": 1, "desk-alice": 3, "wall": None, "shell-01": None, "shell-02": 2}
    path.write_text(HEAD.replace("max_sessions: 3", "max_sessions: 0"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.key) == (5, "targets.desk-alice.max_sessions")
    assert "use 1 or more, or null for no limit" in caught.value.message
