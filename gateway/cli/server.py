"""``deskgate serve``, ``demo`` and ``config check``: run the gateway, or check its configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import CommandGroups
from gateway.config import load_config


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the gateway in the foreground")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", parents=[common],
                                 help="recorder workers only: indexing, recovery, videos, retention")
    worker.set_defaults(handler=cmd_worker)

    demo = commands.add_parser("demo", parents=[common], help="a demo desktop, a demo user and the gateway")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where the demo keeps its files")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port of the gateway (default: 8080)")
    demo.set_defaults(handler=cmd_demo)

    config = commands.add_parser("config", help="configuration files").add_subparsers(
        dest="config_command", required=True, metavar="COMMAND")
    check = config.add_parser("check", parents=[common], help="validate a configuration file")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=cmd_config_check)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.web.app import run_gateway

    run_gateway(load_config(args.config))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.worker import run_worker

    asyncio.run(run_worker(load_config(args.config)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return int(run_demo(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.targets)} targets, {len(config.policies)} policies)")
    return 0
