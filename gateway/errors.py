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
