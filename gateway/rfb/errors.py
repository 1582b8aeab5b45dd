"""The RFB core's exception tree.

    RFBError
     ├── ProtocolViolation     the peer broke the RFB protocol (remote error)
     │    ├── LimitExceeded        a length or size over a security limit
     │    │    └── InputFlood          input faster than a person can make it
     │    └── UnsupportedEncoding  a message or encoding the gateway cannot frame
     ├── LocalProtocolError    we misused a state machine or built an invalid message (a bug of ours)
     ├── TargetUnavailable     the target refused the connection or went away
     │    └── SharingRefused      it closed on a shared ClientInit: no second connection (live view)
     └── TargetAuthFailed      the target refused the gateway's credentials

The state machines never raise a peer's error into their caller: they end with a
failure event carrying it. The asyncio edge turns these into a close reason, a log
line and a metric.
"""

from __future__ import annotations


class RFBError(Exception):
    """Base class of every error the RFB core raises on purpose."""


class ProtocolViolation(RFBError):
    """The peer sent something the protocol (or our limits) does not allow."""


class LimitExceeded(ProtocolViolation):
    """A length, size or count is over a configured security limit."""


class InputFlood(LimitExceeded):
    """The browser sent key or button events faster than a person can (see :mod:`gateway.rfb.browser_limits`)."""


class UnsupportedEncoding(ProtocolViolation):
    """The peer used a message type or encoding the gateway cannot frame."""


class LocalProtocolError(RFBError):
    """A protocol state machine was driven wrongly, or a message we build is invalid."""


class TargetUnavailable(RFBError):
    """The target could not be reached, refused the connection, or closed it."""


class SharingRefused(TargetUnavailable):
    """The target closed the connection on a shared ClientInit: it takes no second connection beside the operator's."""


class TargetAuthFailed(RFBError):
    """The target refused the gateway's credentials or offers no usable security type."""
