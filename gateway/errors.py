"""The gateway's exception tree.

    GatewayError
     ├── ConfigError           a configuration file is invalid; names file, line and key
     ├── ProtocolViolation     a peer broke the RFB protocol (remote error)
     │    ├── LimitExceeded        a length or size over a security limit
     │    └── UnsupportedEncoding  a message or encoding the gateway cannot frame
     ├── LocalProtocolError    we misused a protocol state machine (a bug in the caller)
     ├── TargetUnavailable     the target could not be reached or went away
     ├── TargetAuthFailed      the target refused the gateway's credentials
     └── PolicyDenied          no policy allows this user, source and target

Protocol code raises these; the asyncio edge turns them into a WebSocket close
reason, an HTTP status, a log line and a metric.
"""

from __future__ import annotations

from pathlib import Path


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A configuration file is invalid: ``FILE:LINE: key: message``."""

    def __init__(self, path: Path | str, line: int | None, key: str, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.key = key
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {key}: {message}")


class ProtocolViolation(GatewayError):
    """The peer sent something the protocol (or our limits) does not allow."""


class LimitExceeded(ProtocolViolation):
    """A length, size or count is over a configured security limit."""


class UnsupportedEncoding(ProtocolViolation):
    """The peer used a message type or encoding the gateway cannot frame."""


class LocalProtocolError(GatewayError):
    """A protocol state machine was driven wrongly by its caller."""


class TargetUnavailable(GatewayError):
    """The target could not be reached, or closed the connection."""


class TargetAuthFailed(GatewayError):
    """The target refused the gateway's credentials or offers no usable security type."""


class PolicyDenied(GatewayError):
    """No policy allows this user, from this address, to this target."""
