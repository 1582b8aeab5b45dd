from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import logging
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
import yaml

from auth.secretbox import SecretBox
from auth.totp_store import TOTPSecrets
from base.db import Store
from gateway.audit import AuditLog
from gateway.cli import main
from gateway.config import Config, load_config

CONFIG = """\
auth:
  local: {users_file: users.yaml}
  totp: {issuer: "Example Corp"}
targets:
  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}
  desk-02: {protocol: vnc, host: 127.0.0.1, port: 5902}
  shell-01: {protocol: ssh, host: 127.0.0.1, username: ops}
policies:
  - name: operators
    groups: [operators]
    from: ["127.0.0.0/8", "::1/128"]
    targets: ["desk-*"]
  - name: admins-anywhere
    groups: [admins]
    targets: ["*"]
"""
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() installs its own log handler on the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text(CONFIG)
    return path


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def add_user(config_file: Path, monkeypatch: pytest.MonkeyPatch, name: str, *groups: str) -> int:
    group_args = [arg for group in groups for arg in ("--group", group)]
    return run(["user", "add", name, *group_args, "--password-stdin", "--config", str(config_file)],
               monkeypatch, PASSWORD + "\n")


def test_config_check_ok(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(config_file)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{config_file}: OK (3 targets, 2 policies)\n" and err == ""


def test_config_check_error_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.replace('targets: ["desk-*"]', 'targets: ["desk-*"]\n    idle_timeout: banana'))
    assert main(["config", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"{path}:13: policies[0].idle_timeout: 'banana' is not a duration; "
                   "use e.g. 90s, 10m, 1h30m, 2d or a number of seconds\n")


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "nope.yaml: (file): cannot read" in err and "Traceback" not in err and err.count("\n") == 1


def test_user_add_prints_uri_and_qr(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert add_user(config_file, monkeypatch, "alice", "operators", "viewers") == 0
    out = capsys.readouterr().out
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    assert "secret=" in uri
    query = parse_qs(urlparse(uri).query)
    assert query["issuer"] == ["Example Corp"]
    assert "▀" in out or "▄" in out  # the QR code
    users = yaml.safe_load((config_file.parent / "users.yaml").read_text())["users"]
    assert users["alice"]["groups"] == ["operators", "viewers"] and users["alice"]["admin"] is False
    assert users["alice"]["totp_secret"] is None  # not in the file: sealed in the database
    assert stored_secret(config_file, "alice") == query["secret"][0]
    assert PASSWORD not in out
    assert audit_actions(config_file) == [(getpass.getuser(), "user.add", "alice")]


def test_user_add_admin_and_password_without_newline(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["user", "add", "root_", "--admin", "--password-stdin", "--config", str(config_file)]
    assert run(argv, monkeypatch, PASSWORD) == 0
    users = yaml.safe_load((config_file.parent / "users.yaml").read_text())["users"]
    assert users["root_"]["admin"] is True and users["root_"]["groups"] == []


def test_user_add_existing_user(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert add_user(config_file, monkeypatch, "alice") == 0
    capsys.readouterr()
    assert add_user(config_file, monkeypatch, "alice") == 1
    out, err = capsys.readouterr()
    assert out == "" and "user 'alice' already exists" in err and err.count("\n") == 1


@pytest.mark.parametrize(("stdin", "message"), [
    ("", "the password on stdin is empty"),
    ("\n", "the password on stdin is empty"),
    ("short-pass1\n", "at least 12 characters"),
])
def test_user_add_refuses_weak_passwords(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], stdin: str, message: str) -> None:
    argv = ["user", "add", "alice", "--password-stdin", "--config", str(config_file)]
    assert run(argv, monkeypatch, stdin) == 1
    assert message in capsys.readouterr().err
    assert not (config_file.parent / "users.yaml").exists()


def test_user_add_requires_password_stdin(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["user", "add", "alice", "--config", str(config_file)], monkeypatch, PASSWORD) == 1
    assert "--password-stdin" in capsys.readouterr().err


def test_user_add_invalid_name(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert add_user(config_file, monkeypatch, "Bad Name") == 1
    assert "not a valid user name" in capsys.readouterr().err


def test_user_totp_reset(config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "alice")
    first = parse_qs(urlparse(next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("otpauth://"))).query)["secret"][0]
    assert main(["user", "totp-reset", "alice", "--config", str(config_file)]) == 0
    uri = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("otpauth://"))
    second = parse_qs(urlparse(uri).query)["secret"][0]
    assert second != first and len(pyotp.TOTP(second).now()) == 6
    assert stored_secret(config_file, "alice") == second
    assert main(["user", "totp-reset", "bob", "--config", str(config_file)]) == 1
    assert "no user 'bob' in the users file" in capsys.readouterr().err
    assert [action for _, action, _ in audit_actions(config_file)] == ["user.add", "user.totp_reset"]


def test_user_totp_reset_also_clears_a_secret_handed_over_in_the_users_file(
        config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "alice")
    users_file = config_file.parent / "users.yaml"
    users_file.write_text(users_file.read_text().replace("totp_secret: null", "totp_secret: AAAAAAAAAAAAAAAA"))
    assert main(["user", "totp-reset", "alice", "--config", str(config_file)]) == 0
    assert yaml.safe_load(users_file.read_text())["users"]["alice"]["totp_secret"] is None


def test_user_disable_and_enable(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "alice")
    capsys.readouterr()
    argv = ["--config", str(config_file)]
    assert main(["user", "disable", "alice", "--reason", "left the company", *argv]) == 0
    assert "disabled alice" in capsys.readouterr().out
    assert main(["user", "disable", "alice", *argv]) == 0
    assert "already disabled" in capsys.readouterr().out
    assert main(["user", "enable", "alice", *argv]) == 0
    assert "enabled alice" in capsys.readouterr().out
    assert main(["user", "disable", "nobody", *argv]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err
    assert [action for _, action, _ in audit_actions(config_file)] == [
        "user.add", "user.disable", "user.disable", "user.enable"]


def stored_secret(config_file: Path, name: str) -> str | None:
    config = load_config(config_file)

    async def read() -> str | None:
        store = await Store.open(config.storage.database)
        try:
            return await TOTPSecrets(store, SecretBox.from_file(config.auth.totp.secret_key_file)).get(name)
        finally:
            await store.close()

    return asyncio.run(read())


def audit_actions(config_file: Path) -> list[tuple[str | None, str, str | None]]:
    config = load_config(config_file)

    async def read() -> list[tuple[str | None, str, str | None]]:
        store = await Store.open(config.storage.database)
        try:
            return [(event.user, event.action, event.target) for event in await AuditLog(store).list()]
        finally:
            await store.close()

    return asyncio.run(read())


def test_policy_explain_allowed(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "alice", "operators")
    capsys.readouterr()
    argv = ["policy", "explain", "alice", "--from", "127.0.0.1", "--target", "desk-02", "--config", str(config_file)]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ALLOWED: policy 'operators' allows alice from 127.0.0.1 to desk-02",
        "  1. policy 'operators': matches and decides: allow",
        "  2. policy 'admins-anywhere': no match: alice is not in any of groups admins",
        "watch: alice may watch nobody's live sessions or recordings (no matching policy has watch)",
    ]


def test_policy_explain_denied(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "alice", "operators")
    capsys.readouterr()
    argv = ["policy", "explain", "alice", "--from", "::1", "--target", "shell-01", "--config", str(config_file)]
    assert main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "DENIED: no policy allows alice (groups: operators) from ::1 to shell-01"
    assert lines[1] == "  1. policy 'operators': no match: target shell-01 does not match desk-*"
    assert lines[-2] == "  no policy matches: deny"


def test_policy_explain_source_outside_allow_list(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    add_user(config_file, monkeypatch, "root_", "admins")
    capsys.readouterr()
    argv = ["policy", "explain", "root_", "--from", "192.0.2.1", "--target", "desk-01", "--config", str(config_file)]
    assert main(argv) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("DENIED: source 192.0.2.1 is not in network.allow (127.0.0.0/8, ::1/128)")
    assert first.endswith("policy 'admins-anywhere' allows root_ from 192.0.2.1 to desk-01")


def test_policy_explain_shows_whom_a_supervisor_may_watch(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config_file.write_text(CONFIG + textwrap.indent(textwrap.dedent("""\
        - name: supervisors
          groups: [supervisors]
          from: ["127.0.0.0/8"]
          targets: ["desk-01"]
          watch: [operators, trainees]
        - name: night-shift
          groups: [supervisors]
          targets: ["desk-02"]
          watch: [night]
        """), "  "))
    add_user(config_file, monkeypatch, "sam", "supervisors")
    run(["user", "add", "root_", "--admin", "--password-stdin", "--config", str(config_file)], monkeypatch,
        PASSWORD + "\n")
    capsys.readouterr()
    explain = ["policy", "explain", "--target", "desk-02", "--config", str(config_file)]
    assert main([*explain, "sam", "--from", "127.0.0.1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "watch: sam may watch the live sessions and recordings of users in groups night, operators, trainees "
        "(policy 'supervisors', policy 'night-shift')")
    main([*explain, "sam", "--from", "::1"])  # outside the supervisors policy's networks
    assert capsys.readouterr().out.splitlines()[-1] == (
        "watch: sam may watch the live sessions and recordings of users in groups night (policy 'night-shift')")
    main([*explain, "root_", "--from", "127.0.0.1"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        "watch: root_ may watch the live sessions and recordings of everyone (admin)")


def test_policy_explain_says_when_the_hours_open_and_close(config_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config_file.write_text(CONFIG + textwrap.indent(textwrap.dedent("""\
        - name: day-shift
          groups: [day]
          targets: ["desk-01"]
          hours: "Mon-Fri 08:00-20:00"
          timezone: Asia/Tokyo
        """), "  "))
    add_user(config_file, monkeypatch, "dana", "day")
    capsys.readouterr()
    explain = ["policy", "explain", "dana", "--from", "127.0.0.1", "--target", "desk-01", "--config", str(config_file)]
    assert main([*explain, "--at", "2026-12-11T21:00+09:00"]) == 1  # a Friday evening
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("DENIED: no policy allows dana (groups: day) from 127.0.0.1 to desk-01 now: policy "
                        "'day-shift' is outside hours Mon-Fri 08:00-20:00 Asia/Tokyo; opens next Mon 08:00")
    assert "  3. policy 'day-shift': no match: outside hours Mon-Fri 08:00-20:00 Asia/Tokyo; opens next Mon 08:00" \
        in lines
    assert main([*explain, "--at", "2026-12-11T10:00+09:00"]) == 0
    assert "hours: policy 'day-shift' applies until Fri 20:00 (Mon-Fri 08:00-20:00 Asia/Tokyo)" in \
        capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("argv", "message"), [
    (["bob", "--from", "127.0.0.1", "--target", "desk-01"], "no local user 'bob'"),
    (["alice", "--from", "127.0.0.1", "--target", "desk-99"], "no target 'desk-99'"),
    (["alice", "--from", "localhost", "--target", "desk-01"], "is not an IP address"),
])
def test_policy_explain_errors(config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               argv: list[str], message: str) -> None:
    add_user(config_file, monkeypatch, "alice", "operators")
    capsys.readouterr()
    assert main(["policy", "explain", *argv, "--config", str(config_file)]) == 1
    assert message in capsys.readouterr().err


def test_default_config_is_deskgate_yaml_in_the_working_directory(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(config_file.parent)
    assert run(["user", "add", "alice", "--password-stdin"], monkeypatch, PASSWORD) == 0
    assert (config_file.parent / "users.yaml").exists()
    monkeypatch.chdir(config_file.parent.parent)
    assert run(["user", "add", "bob", "--password-stdin"], monkeypatch, PASSWORD) == 1
    assert "deskgate.yaml: (file): cannot read" in capsys.readouterr().err


def test_serve_loads_the_config_and_runs_the_gateway(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Config] = []
    fake = types.ModuleType("gateway.web.app")
    fake.run_gateway = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.web.app", fake)
    assert main(["serve", "--config", str(config_file)]) == 0
    assert [config.path for config in seen] == [config_file]


def test_serve_with_a_bad_config_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fake = types.ModuleType("gateway.web.app")
    fake.run_gateway = lambda config: pytest.fail("must not run")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.web.app", fake)
    path = tmp_path / "deskgate.yaml"
    path.write_text(textwrap.dedent("listen:\n  htp: 127.0.0.1:8080\n"))
    assert main(["serve", "--config", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}:2: listen.htp: unknown key; did you mean 'http'?\n"


def test_demo_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def run_demo(args: argparse.Namespace) -> int:
        seen.append((args.workdir, args.port))
        return 7

    fake = types.ModuleType("gateway.demo")
    fake.run_demo = run_demo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.demo", fake)
    assert main(["demo"]) == 7
    assert main(["demo", "--workdir", "/tmp/d", "--port", "9000"]) == 7
    assert seen == [(Path("var/demo"), 8080), (Path("/tmp/d"), 9000)]


def test_log_level(config_file: Path) -> None:
    assert main(["--log-level", "warning", "config", "check", str(config_file)]) == 0
    assert logging.getLogger().level == logging.WARNING
    assert main(["config", "check", str(config_file), "--log-level", "debug"]) == 0
    assert logging.getLogger().level == logging.DEBUG


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["policy", "explain", "alice"])
    assert caught.value.code == 2
    assert "--from" in capsys.readouterr().err
