"""The ``deskgate`` command.

Errors a person can act on (bad configuration, refused change, unreachable file)
end the command with one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from auth.errors import AuthError
from base.errors import ConfigError
from gateway.cli import audit, connect, db, policy, recordings, server, sessions, users
from gateway.cli.messages import _, cli_language, known
from gateway.errors import GatewayError, TargetInUse
from gateway.i18n import translator
from gateway.logfmt import setup_logging
from gateway.rfb.errors import RFBError
from recorder.errors import RecordingError

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

    for group in (server, users, policy, recordings, sessions, audit, db, connect):
        group.add_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deskgate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except ConfigError as error:
        where = f"{error.path}:{error.line}" if error.line is not None else str(error.path)
        print(_("{where}: {key}: {problem}", where=where, key=error.key, problem=known(error.message)), file=sys.stderr)
        return 1
    except (AuthError, GatewayError, RFBError, RecordingError, OSError, SQLAlchemyError) as error:
        print(_("deskgate: {error}", error=_one_line(error)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _one_line(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, TargetInUse):
        return error.explain(translator(cli_language()))
    return known(str(error))
