"""The gateway's own errors, above the RFB core's (:mod:`gateway.rfb.errors`).

    GatewayError
     └── PolicyDenied          no policy allows this user, source and target

Configuration errors are :class:`base.errors.ConfigError`; protocol and target errors
are :class:`gateway.rfb.errors.RFBError`. The asyncio edge turns them into a WebSocket
close reason, an HTTP status, a log line and a metric.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of the errors the gateway itself raises on purpose."""


class PolicyDenied(GatewayError):
    """No policy allows this user, from this address, to this target."""


class TerminalProtocolError(GatewayError):
    """The browser sent a terminal WebSocket message the protocol (or its limits) does not allow."""


class TargetRefused(GatewayError):
    """An SSH target could not be reached, did not prove its identity, or refused the gateway's credentials.

    ``reason`` (the ``terminal_target_refusals_total`` label): ``host_key`` when its host key is unknown
    or does not match ``known_hosts``, ``auth`` when it refused the credentials, else ``unreachable``.
    """

    def __init__(self, message: str, *, reason: str = "unreachable") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def host_key(self) -> bool:
        return self.reason == "host_key"
