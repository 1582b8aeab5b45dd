"""The gateway's own errors, above the RFB core's (:mod:`gateway.rfb.errors`).

    GatewayError
     ├── PolicyDenied          no policy allows this user, source and target
     └── TargetInUse           the target already holds its max_sessions operators' sessions

Configuration errors are :class:`base.errors.ConfigError`; protocol and target errors
are :class:`gateway.rfb.errors.RFBError`. The asyncio edge turns them into a WebSocket
close reason, an HTTP status, a log line and a metric.
"""

from __future__ import annotations

from gateway.i18n import Translator


class GatewayError(Exception):
    """Base class of the errors the gateway itself raises on purpose."""


class PolicyDenied(GatewayError):
    """No policy allows this user, from this address, to this target."""


class TargetInUse(GatewayError):
    """The target already holds its ``max_sessions`` operators' sessions (live viewers aside)."""

    def __init__(self, target: str, max_sessions: int, holders: tuple[str, ...], username: str) -> None:
        self.target = target
        self.max_sessions = max_sessions
        self.holders = holders  # who holds them (user names, for the log and the audit event, never the page)
        self.username = username  # who was refused
        super().__init__(self.reason)

    @property
    def metric_reason(self) -> str:
        """``sessions_refused_total{reason}``: in_use (a one-operator target), too_many (a shared one)."""
        return "in_use" if self.max_sessions == 1 else "too_many"

    @property
    def reason(self) -> str:
        """What the refused operator reads, in English (the audit log, the close frame)."""
        return self.explain()

    def explain(self, translator: Translator | None = None) -> str:
        """What the refused operator reads, in ``translator``'s language (English without one)."""
        gettext = translator.gettext if translator is not None else _english
        if self.username in self.holders and self.max_sessions == 1:
            return gettext("you already have {target} open in another window or tab; "
                           "use that one, or close it and try again", target=self.target)
        if self.max_sessions == 1:
            return gettext("{target} is in use by another operator; choose another desktop or try again later",
                           target=self.target)
        return gettext("{target} already has {limit} sessions open, its limit; "
                       "try again later or choose another desktop", target=self.target, limit=self.max_sessions)


def _english(message: str, **values: object) -> str:
    return message.format(**values)


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
