"""The ``deskgate`` command.

Errors a person can act on (bad configuration, refused change, unreachable file)
end the command with one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from ipaddress import ip_address
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from auth.errors import AuthError
from auth.local import LocalUserStore
from auth.netacl import NetworkACL
from auth.totp import provisioning_uri, terminal_qr
from gateway.config import Config, load_config
from gateway.errors import ConfigError, GatewayError
from gateway.logfmt import setup_logging
from gateway.policy import PolicySet, normalize_source
from gateway.users_cli import run_user_admin
from recorder.errors import RecordingError

MIN_PASSWORD_LENGTH = 12
LOG_LEVELS = ("debug", "info", "warning", "error")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``deskgate`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("deskgate.yaml"), metavar="FILE",
                        help="configuration file (default: deskgate.yaml)")
    common.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help="log verbosity")

    parser = argparse.ArgumentParser(prog="deskgate", description="Remote-desktop gateway with server-side recording.")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (default: info)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the gateway in the foreground")
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", parents=[common], help="a demo desktop, a demo user and the gateway")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where the demo keeps its files")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port of the gateway (default: 8080)")
    demo.set_defaults(handler=cmd_demo)

    config = commands.add_parser("config", help="configuration files").add_subparsers(
        dest="config_command", required=True, metavar="COMMAND")
    check = config.add_parser("check", parents=[common], help="validate a configuration file")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=cmd_config_check)

    user = commands.add_parser("user", help="local users").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND")
    add = user.add_parser("add", parents=[common], help="add a local user and enroll their authenticator")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--group", action="append", default=[], metavar="G", help="a group (repeatable)")
    add.add_argument("--admin", action="store_true", help="may supervise and administer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(handler=cmd_user_add)
    totp_reset = user.add_parser("totp-reset", parents=[common],
                                 help="give a user (local or directory) a new TOTP secret")
    totp_reset.add_argument("name", metavar="NAME")
    totp_reset.set_defaults(handler=cmd_user_totp_reset)
    disable = user.add_parser("disable", parents=[common], help="refuse a user's logins and end their sessions")
    disable.add_argument("name", metavar="NAME")
    disable.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    disable.set_defaults(handler=cmd_user_disable)
    enable = user.add_parser("enable", parents=[common], help="let a disabled user log in again")
    enable.add_argument("name", metavar="NAME")
    enable.set_defaults(handler=cmd_user_enable)

    policy = commands.add_parser("policy", help="access policies").add_subparsers(
        dest="policy_command", required=True, metavar="COMMAND")
    explain = policy.add_parser("explain", parents=[common], help="which policy decides, and why")
    explain.add_argument("user", metavar="USER")
    explain.add_argument("--from", dest="source", required=True, metavar="IP", help="source address")
    explain.add_argument("--target", required=True, metavar="NAME", help="target name")
    explain.set_defaults(handler=cmd_policy_explain)

    recordings = commands.add_parser("recordings", help="session recordings").add_subparsers(
        dest="recordings_command", required=True, metavar="COMMAND")
    listing = recordings.add_parser("list", parents=[common], help="search recordings, newest first")
    listing.add_argument("--user", metavar="U", help="only this user's sessions")
    listing.add_argument("--target", metavar="T", help="only sessions to this target")
    listing.add_argument("--since", metavar="ISO", help="only sessions started at or after this time or date")
    listing.add_argument("--json", action="store_true", help="one JSON object per recording and line")
    listing.set_defaults(handler=cmd_recordings_list)
    render = recordings.add_parser("render", parents=[common], help="render one recording to an MP4 video")
    render.add_argument("id", metavar="ID")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.mp4")
    render.set_defaults(handler=cmd_recordings_render)
    verify = recordings.add_parser("verify", parents=[common], help="check a recording against its seal")
    verify.add_argument("id", metavar="ID")
    verify.set_defaults(handler=cmd_recordings_verify)

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="COMMAND")
    audit_list = audit.add_parser("list", parents=[common], help="audit events, oldest first")
    audit_list.add_argument("--user", metavar="U", help="only this user's events")
    audit_list.add_argument("--since", metavar="ISO", help="only events at or after this time or date")
    audit_list.add_argument("--json", action="store_true", help="one JSON object per event and line")
    audit_list.set_defaults(handler=cmd_audit_list)
    audit_verify = audit.add_parser("verify", parents=[common], help="check the audit log's hash chain")
    audit_verify.set_defaults(handler=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deskgate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except (ConfigError, AuthError, GatewayError, RecordingError, OSError, SQLAlchemyError) as error:
        print(str(error) if isinstance(error, ConfigError) else f"deskgate: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _one_line(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.web.app import run_gateway

    run_gateway(load_config(args.config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return int(run_demo(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.targets)} targets, {len(config.policies)} policies)")
    return 0


def _user_store(config: Config) -> LocalUserStore:
    if config.auth.local is None:
        raise ConfigError(config.path, None, "auth.local", "local users are switched off in this configuration")
    return LocalUserStore(config.auth.local.users_file)


def _print_enrollment(config: Config, name: str, secret: str) -> None:
    uri = provisioning_uri(secret, name, config.auth.totp.issuer)
    print(f"Scan this with an authenticator app for {name}, or enter the URI by hand:")
    print(uri)
    print(terminal_qr(uri))


def cmd_user_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        print("deskgate: pass the password on stdin with --password-stdin "
              "(it never goes on the command line)", file=sys.stderr)
        return 1
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("deskgate: the password on stdin is empty", file=sys.stderr)
        return 1
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"deskgate: the password is too short; use at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return 1
    config = load_config(args.config)
    secret = run_user_admin(config, lambda admin: admin.add_local(args.name, password, args.group, args.admin))
    assert config.auth.local is not None  # add_local refuses otherwise
    print(f"added user {args.name} to {config.auth.local.users_file}")
    _print_enrollment(config, args.name, secret)
    return 0


def cmd_user_totp_reset(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    name, secret = run_user_admin(config, lambda admin: admin.reset_totp(args.name))
    print(f"new TOTP secret for {name}; the previous authenticator no longer works and their sessions have ended")
    _print_enrollment(config, name, secret)
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    name, changed = run_user_admin(load_config(args.config),
                                   lambda admin: admin.set_disabled(args.name, True, args.reason))
    print(f"disabled {name}; every session of theirs is ending" if changed
          else f"{name} was already disabled; any session left is ending")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    name, changed = run_user_admin(load_config(args.config), lambda admin: admin.set_disabled(args.name, False, None))
    print(f"enabled {name}" if changed else f"{name} was not disabled")
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    try:
        source = normalize_source(ip_address(args.source))
    except ValueError:
        print(f"deskgate: --from {args.source!r} is not an IP address", file=sys.stderr)
        return 1
    config = load_config(args.config)
    store = _user_store(config)
    user = store.get(args.user)
    if user is None:
        print(f"deskgate: no local user {args.user!r} in {store.path}", file=sys.stderr)
        return 1
    if args.target not in config.targets:
        known = ", ".join(config.targets) or "none"
        print(f"deskgate: no target {args.target!r} in {args.config} (targets: {known})", file=sys.stderr)
        return 1
    identity = user.identity()
    policies = PolicySet(config.policies)
    decision = policies.decide(identity, source, args.target)
    refusals = []
    if user.disabled:
        refusals.append(f"account {user.name} is disabled")
    if not NetworkACL(config.network.allow).is_allowed(source):
        allow = ", ".join(str(network) for network in config.network.allow) or "nothing"
        refusals.append(f"source {source} is not in network.allow ({allow}); it is refused before any policy")
    allowed = decision.allowed and not refusals
    print(f"{'ALLOWED' if allowed else 'DENIED'}: {'; '.join(refusals + [decision.reason])}")
    for line in policies.explain(identity, source, args.target):
        print(f"  {line}")
    return 0 if allowed else 1


def cmd_recordings_list(args: argparse.Namespace) -> int:
    from recorder.index import recordings_list_command

    return recordings_list_command(load_config(args.config), args.user, args.target, args.since, args.json)


def cmd_recordings_render(args: argparse.Namespace) -> int:
    from gateway.recordings_cli import render_command

    return render_command(load_config(args.config), args.id, args.output)


def cmd_recordings_verify(args: argparse.Namespace) -> int:
    from gateway.recordings_cli import verify_command

    return verify_command(load_config(args.config), args.id)


def cmd_audit_list(args: argparse.Namespace) -> int:
    from gateway.audit import audit_list_command

    return audit_list_command(load_config(args.config), args.user, args.since, args.json)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import audit_verify_command

    return audit_verify_command(load_config(args.config))


if __name__ == "__main__":
    sys.exit(main())
