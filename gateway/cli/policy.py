"""``deskgate policy explain``: which policy decides for a user, a source address and a target, and why.

A policy with ``hours`` that is closed says when it opens next; one that decides says until when
it applies (``--at`` decides at another time). Its last line says whose live sessions and
recordings the user may watch from that address (``watch``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from ipaddress import ip_address

from auth.netacl import NetworkACL
from gateway.cli.common import CommandGroups, local_user_store
from gateway.cli.messages import _
from gateway.config import load_config
from gateway.policy import PolicySet, normalize_source
from gateway.watch import watch_scope


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    policy = commands.add_parser("policy", help="access policies").add_subparsers(
        dest="policy_command", required=True, metavar="COMMAND")
    explain = policy.add_parser("explain", parents=[common], help="which policy decides, and why")
    explain.add_argument("user", metavar="USER")
    explain.add_argument("--from", dest="source", required=True, metavar="IP", help="source address")
    explain.add_argument("--target", required=True, metavar="NAME", help="target name")
    explain.add_argument("--at", type=_instant, default=None, metavar="ISO",
                         help="decide at this time, e.g. 2026-12-07T09:00+09:00 (default: now)")
    explain.set_defaults(handler=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        source = normalize_source(ip_address(args.source))
    except ValueError:
        print(_("deskgate: --from {source} is not an IP address", source=repr(args.source)), file=sys.stderr)
        return 1
    config = load_config(args.config)
    store = local_user_store(config)
    user = store.get(args.user)
    if user is None:
        print(_("deskgate: no local user {user} in {path}", user=repr(args.user), path=store.path), file=sys.stderr)
        return 1
    if args.target not in config.targets:
        known = ", ".join(config.targets) or "none"
        print(_("deskgate: no target {target} in {path} (targets: {known})", target=repr(args.target),
                path=args.config, known=known), file=sys.stderr)
        return 1
    identity = user.identity()
    policies = PolicySet(config.policies)
    at = time.time() if args.at is None else args.at
    decision = policies.decide(identity, source, args.target, at)
    refusals = []
    if user.disabled:
        refusals.append(f"account {user.name} is disabled")
    if not NetworkACL(config.network.allow).is_allowed(source):
        allow = ", ".join(str(network) for network in config.network.allow) or "nothing"
        refusals.append(f"source {source} is not in network.allow ({allow}); it is refused before any policy")
    allowed = decision.allowed and not refusals
    print(f"{'ALLOWED' if allowed else 'DENIED'}: {'; '.join(refusals + [decision.reason])}")
    for line in policies.explain(identity, source, args.target, at):
        print(f"  {line}")
    hours = decision.policy.hours if decision.policy is not None else None
    closing = hours.closing(at) if hours is not None else None
    if decision.policy is not None and hours is not None and closing is not None:
        print(f"hours: policy '{decision.policy.name}' applies until {hours.local_time(closing)} ({hours})")
    print(f"watch: {user.name} {watch_scope(identity, source, policies).describe()}")
    return 0 if allowed else 1


def _instant(text: str) -> float:
    """An ISO 8601 time (without a zone: the gateway's local time) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time; use e.g. 2026-12-07T09:00+09:00") from None
    return moment.timestamp()
