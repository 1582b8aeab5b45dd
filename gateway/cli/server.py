"""``deskgate serve``, ``demo``, ``health``, ``config check`` and ``config reload``: run the gateway, probe it, check
its configuration, or have the running gateway reload it."""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from base.errors import ConfigError
from gateway.cli.common import CommandGroups
from gateway.config import load_config
from gateway.config.schema import DEFAULT_PID_FILE
from gateway.reload import request_reload


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

    health = commands.add_parser("health", parents=[common],
                                 help="exit 0 when this host's gateway answers /healthz (or /readyz): a container probe")
    health.add_argument("--ready", action="store_true", help="ask /readyz: fails while the gateway drains")
    health.set_defaults(handler=cmd_health)

    config = commands.add_parser("config", help="configuration files").add_subparsers(
        dest="config_command", required=True, metavar="COMMAND")
    check = config.add_parser("check", parents=[common], help="validate a configuration file")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=cmd_config_check)

    reload = config.add_parser("reload", parents=[common],
                               help="have the gateway running with this configuration reload it (as SIGHUP does)")
    reload.add_argument("--pid-file", type=Path, default=None, metavar="FILE",
                        help="the gateway's pid file (default: storage.pid_file of the configuration)")
    reload.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                        help="how long to wait for the gateway's answer (default: 15)")
    reload.set_defaults(handler=cmd_config_reload)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.web.app import run_gateway

    run_gateway(load_config(args.config))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.worker import run_worker

    asyncio.run(run_worker(load_config(args.config)))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """GET /healthz (or /readyz) of ``listen.http`` on this host, over TLS when ``tls`` is set."""
    config = load_config(args.config)
    address = config.listen.http
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host)  # a wildcard: ask loopback
    scheme = "https" if config.tls.enabled else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{address.port}/{'readyz' if args.ready else 'healthz'}"
    context = ssl.create_default_context()
    context.check_hostname = False  # this host's own listener, whatever name its certificate carries
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=4, context=context if scheme == "https" else None) as response:
            print(f"{url}: {response.status}")
            return 0
    except (urllib.error.URLError, OSError) as error:
        print(f"deskgate: {url} does not answer: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return int(run_demo(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.targets)} targets, {len(config.policies)} policies)")
    return 0


def cmd_config_reload(args: argparse.Namespace) -> int:
    """Ask the gateway to reload; print its outcome (exit 1 when it refused the file)."""
    pid_file = args.pid_file
    if pid_file is None:
        try:
            pid_file = load_config(args.config).storage.pid_file
        except ConfigError:  # the gateway will refuse it and say why; find it where it is by default
            pid_file = args.config.absolute().parent / DEFAULT_PID_FILE
    outcome = request_reload(pid_file, args.timeout)
    print(outcome.describe())
    return 0 if outcome.result == "ok" else 1
