"""One native SSH client's connection: sign-in by keyboard-interactive, and everything but a shell refused.

:class:`GatewaySshServer` is the asyncssh server object of one connection. The user name says
who signs in and, after the last ``+``, which target they want (``alice+shell-01``; without
one they pick from a menu). Keyboard-interactive asks for the password, then the authenticator
code, and hands both to the same :class:`~auth.login.LoginService` as the web login — same
throttle, same audit events and metrics, with ``method="ssh:password+totp"``. A refusal is
told in an authentication banner, in the words the login page uses (a wrong code reads as a
wrong password); after :data:`MAX_FAILED_LOGINS` the connection is closed. Password, public-key
and host-based authentication are not offered.

Once signed in, the client may open one shell (on at most :data:`MAX_SESSION_CHANNELS` session channels). Port forwarding
(direct-tcpip, tcpip-forward, and their Unix-socket kinds), agent forwarding, X11, exec
requests and subsystems (``sftp``) are refused, each reported (audited as ``ssh.refused`` and
counted in ``deskgate_ssh_refusals_total{kind}``) through the listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

import asyncssh
from asyncssh.auth import KbdIntChallenge, KbdIntResponse
from sqlalchemy.exc import SQLAlchemyError

from auth.errors import AuthError
from auth.identity import Identity
from auth.login import SSH_PASSWORD_TOTP, answer_of
from gateway.i18n import Translator
from gateway.ssh.channel import SshChannelTerminal
from gateway.web.auth_messages import refusal_message
from gateway.web.keys import LOGIN
from gateway.web.messages import N_
from gateway.web.security import DATABASE_DOWN

log = logging.getLogger(__name__)

#: Session channels one connection may open (one shell; refused exec and subsystem requests use the others).
MAX_SESSION_CHANNELS = 4
#: Failed sign-ins on one connection before it is closed (the throttle counts every one, as for the web).
MAX_FAILED_LOGINS = 3
PASSWORD_PROMPT = N_("Password: ")
CODE_PROMPT = N_("Authenticator code: ")
#: Channel requests asyncssh looks up by name (``_process_<request>_request``) that the gateway refuses.
REFUSED_CHANNEL_REQUESTS = {"x11": "_process_x11_req_request",
                            "agent": "_process_auth_agent_req_at_openssh_dot_com_request"}


def split_username(text: str) -> tuple[str, str | None]:
    """``alice+shell-01`` → (alice, shell-01); without a ``+``, no target (the menu)."""
    user, plus, target = text.rpartition("+")
    return (user, target or None) if plus and user else (text, None)


class ConnectionHub(Protocol):
    """What a connection needs of its listener."""

    app: Any  # the aiohttp application (services, settings)

    def translator(self) -> Translator: ...

    def report_refusal(self, kind: str, detail: str, user: str | None, source: IPv4Address | IPv6Address) -> None:
        """Count and audit something the client asked for that the gateway refuses."""

    def start_shell(self, server: GatewaySshServer, terminal: SshChannelTerminal) -> None:
        """Run the signed-in person's terminal on ``terminal``."""


class GatewaySshServer(asyncssh.SSHServer):
    """The server side of one client's connection (see the module docstring)."""

    def __init__(self, hub: ConnectionHub, source: IPv4Address | IPv6Address, *,
                 max_failed_logins: int = MAX_FAILED_LOGINS, max_session_channels: int = MAX_SESSION_CHANNELS) -> None:
        self.hub = hub
        self.max_failed_logins = max_failed_logins
        self.max_session_channels = max_session_channels
        self.source = source
        self.identity: Identity | None = None
        self.login_name = ""
        self.requested_target: str | None = None
        self.connection: asyncssh.SSHServerConnection | None = None
        self._password: str | None = None
        self._failures = 0
        self._channels = 0
        self.shell_started = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn

    # -- authentication ------------------------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        self.login_name, self.requested_target = split_username(username)
        return True  # always: nobody is let in without a password and a code

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> KbdIntChallenge:
        self._password = None
        return "", "", "", [(self.hub.translator().gettext(PASSWORD_PROMPT), False)]

    async def validate_kbdint_response(self, username: str,
                                       responses: KbdIntResponse) -> KbdIntChallenge:
        if len(responses) != 1:
            return False
        if self._password is None:
            self._password = responses[0]
            return "", "", "", [(self.hub.translator().gettext(CODE_PROMPT), True)]
        password, self._password = self._password, None
        try:
            self.identity = await self.hub.app[LOGIN].login(self.login_name.strip(), password, responses[0].strip(),
                                                            self.source, method=SSH_PASSWORD_TOTP)
            return True
        except AuthError as error:
            self._refused(refusal_message(answer_of(error), self.hub.translator()))
        except SQLAlchemyError as error:
            log.error("SSH login failed on the database: %s", error)
            self._refused(self.hub.translator().gettext(DATABASE_DOWN))
        return False

    def _refused(self, message: str) -> None:
        self._failures += 1
        if self.connection is None:
            return
        self.connection.send_auth_banner(f"{message}\r\n")
        if self._failures >= self.max_failed_logins:
            self.connection.close()

    # -- what a signed-in client may ask for ---------------------------------------------------------------

    def session_requested(self) -> tuple[asyncssh.SSHServerChannel[bytes], SshChannelTerminal] | bool:
        assert self.connection is not None
        if self._channels >= self.max_session_channels:
            self._report("session", f"more than {self.max_session_channels} session channels on one connection")
            return False
        self._channels += 1
        channel: asyncssh.SSHServerChannel[bytes] = self.connection.create_server_channel(encoding=None)
        for kind, handler in REFUSED_CHANNEL_REQUESTS.items():
            setattr(channel, handler, self._refuse_request(kind))
        terminal = SshChannelTerminal(lambda started: self.hub.start_shell(self, started), self._report)
        return channel, terminal

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self._report("direct_tcpip", f"{dest_host}:{dest_port}")
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._report("tcpip_forward", f"{listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self._report("direct_streamlocal", dest_path[:200])
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self._report("streamlocal_forward", listen_path[:200])
        return False

    def _refuse_request(self, kind: str) -> Callable[[object], bool]:
        def refuse(packet: object) -> bool:
            self._report(kind, "")
            return False

        return refuse

    def _report(self, kind: str, detail: str) -> None:
        self.hub.report_refusal(kind, detail, self.identity.username if self.identity else None, self.source)
