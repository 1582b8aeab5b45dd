"""What a signed-in native SSH client gets: a target chosen (by name or from a menu), then its terminal session.

:func:`serve_shell` runs on the client's session channel once its shell request is accepted:

1. the target: the one after ``+`` in the user name, or a numbered menu of the ssh targets the
   policies let this person open from this address now (the config in force, read once; a
   choice within :data:`MENU_TIMEOUT`);
2. the policy is decided as for ``/ws/ssh/{target}`` (source address, groups, hours): an unknown
   target, a desktop, or a target not allowed is refused with a line saying why, counted and
   audited (``session.open`` outcome ``denied``, ``channel: ssh``);
3. a sign-in is recorded for the connection (a web session nobody holds a cookie of), so that
   logging out everywhere, disabling the user or its timeouts end the terminal as they end a
   browser's, and ended with the connection;
4. :func:`~gateway.terminal_launch.launch_terminal` runs the session (node refusals, listing,
   audit, recording, watchdog, live viewers), while the person's notices (someone viewing, idle
   warning, closing hours, the node draining) are written into the terminal as lines.

Messages are in the language of the client's ``LANG`` (sent by OpenSSH's default ``SendEnv``),
else the site's default (``ui.language``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from aiohttp import web

from auth.identity import Identity
from gateway.i18n import Translator, supported, translator
from gateway.notices import PostedNotice
from gateway.session_watch import CloseCode, SessionEnded
from gateway.ssh.channel import SshChannelTerminal
from gateway.terminal_launch import TerminalRequest, launch_terminal
from gateway.web.keys import AUDIT, CLOCK, METRICS, NOTICES, SETTINGS, WEB_SESSIONS
from gateway.web.messages import N_

log = logging.getLogger(__name__)

MENU_TITLE = N_("Terminals you may open from here now:")
MENU_PROMPT = N_("Type a number or a name (Ctrl-D to leave): ")
NO_TERMINALS = N_("there is no terminal you may open from here now; ask your administrator")
NO_SUCH_TERMINAL = N_("there is no terminal target called {name}")
A_DESKTOP = N_("{name} is a desktop, not a terminal: open it in the browser")
NOT_ALLOWED = N_("you may not open {name} from here: {reason}")
OUTSIDE_HOURS = N_("{name} is outside its working hours: {reason}")
MENU_TIMED_OUT = N_("no terminal was chosen in time; connect again to choose one")
CONNECTION_ENDED = "the SSH connection ended"
#: Seconds the menu waits for a choice.
MENU_TIMEOUT = 300.0
#: What each notice says in the terminal; notices of other kinds (the session's own end) are not written.
NOTICE_LINES = {
    "viewing_started": N_("{by} is now viewing this session"),
    "viewing_ended": N_("{by} stopped viewing this session"),
    "idle_warning": N_("no input for a while: this session ends at {time} unless you type"),
    "window_closing": N_("this session's working hours end at {time}: it ends then"),
    "node_draining": N_("the gateway is restarting: this session ends at {time}"),
}
#: Seconds between two looks at a notice stream with nothing in it.
NOTICE_WAIT = 30.0


def client_language(environment: Mapping[str, str], default: str) -> str:
    """The language of the client's ``LANG`` (``ja_JP.UTF-8`` → ja) when the gateway speaks it, else ``default``."""
    return supported(environment.get("LANG", "").split("_")[0].split(".")[0].lower()) or default


def notice_line(notice: PostedNotice, target: str, words: Translator) -> str | None:
    """The line a notice is written as in the terminal of ``target``; None for a notice not for it."""
    template = NOTICE_LINES.get(notice.type)
    if template is None or notice.fields.get("target") not in (None, target):
        return None
    fields: dict[str, Any] = dict(notice.fields)
    for name in ("deadline_epoch", "closing_epoch"):
        if name in fields:
            fields["time"] = datetime.fromtimestamp(float(fields[name])).strftime("%H:%M:%S")
    return words.gettext(template, **fields)


async def serve_shell(app: web.Application, identity: Identity, source: IPv4Address | IPv6Address,
                      requested: str | None, terminal: SshChannelTerminal) -> SessionEnded:
    """Choose the target and run the session on ``terminal`` (see the module docstring); returns how it ended."""
    settings = app[SETTINGS].current
    words = translator(client_language(terminal.environment, settings.config.ui.language))
    name = requested if requested is not None else await _menu(app, identity, source, terminal, words)
    if not name:  # None: nothing to choose from; "": the person left the menu (or let it time out)
        ended = SessionEnded(CloseCode.NORMAL, words.gettext(NO_TERMINALS) if name is None else "")
        await terminal.close(ended)
        return ended
    settings = app[SETTINGS].current
    target = settings.config.targets.get(name)
    decision = settings.policies.decide(identity, source, name, app[CLOCK]())
    refusal = None
    if target is None:
        refusal, why = words.gettext(NO_SUCH_TERMINAL, name=repr(name)), "no such target"
    elif target.protocol != "ssh":
        refusal, why = words.gettext(A_DESKTOP, name=name), "a desktop, not a terminal"
    elif not decision.allowed or decision.policy is None:
        message = OUTSIDE_HOURS if decision.outside_hours else NOT_ALLOWED
        refusal, why = words.gettext(message, name=name, reason=decision.reason), decision.reason
    if refusal is not None or decision.policy is None:
        return await _deny(app, identity, source, name[:64], refusal or "", why, terminal)
    web_session = await app[WEB_SESSIONS].create(identity, str(source))
    notices = asyncio.create_task(_write_notices(app, identity.username, web_session.id, name, terminal, words))
    try:
        opening = TerminalRequest(identity, source, name, decision.policy, web_session.id, channel="ssh")
        return await launch_terminal(app, terminal, opening)
    finally:
        notices.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await notices
        await app[WEB_SESSIONS].end(web_session.id, CONNECTION_ENDED)


async def _menu(app: web.Application, identity: Identity, source: IPv4Address | IPv6Address,
                terminal: SshChannelTerminal, words: Translator) -> str | None:
    """The ssh target the person picks from those they may open now; None when there is none, "" when they leave."""
    settings, now = app[SETTINGS].current, app[CLOCK]()
    names = [name for name, target in sorted(settings.config.targets.items())
             if target.protocol == "ssh" and settings.policies.decide(identity, source, name, now).allowed]
    if not names:
        return None
    terminal.write_line(words.gettext(MENU_TITLE))
    while True:
        for number, name in enumerate(names, 1):
            terminal.write_line(f"  {number}) {name}")
        try:
            async with asyncio.timeout(MENU_TIMEOUT):
                choice = await terminal.read_line(words.gettext(MENU_PROMPT))
        except TimeoutError:
            terminal.write_line(words.gettext(MENU_TIMED_OUT))
            return ""
        if choice is None:
            return ""
        if choice.isdigit() and 1 <= int(choice) <= len(names):
            return names[int(choice) - 1]
        if choice in names:
            return choice
        if choice:
            return choice  # a name not on the menu: refused, with its reason, like one after "+"


async def _deny(app: web.Application, identity: Identity, source: IPv4Address | IPv6Address, name: str,
                message: str, why: str, terminal: SshChannelTerminal) -> SessionEnded:
    """Refuse a target: the person is told, the refusal counted and audited."""
    metrics = app[METRICS]
    metrics.policy_denied_total.inc()
    metrics.sessions_total.labels(protocol="ssh", outcome="denied").inc()
    await app[AUDIT].record("session.open", user=identity.username, source=source, target=name, outcome="denied",
                            reason=why, protocol="ssh", channel="ssh")
    ended = SessionEnded(CloseCode.PROTOCOL_ERROR, message)
    await terminal.close(ended)
    return ended


async def _write_notices(app: web.Application, username: str, web_session_id: str, target: str,
                         terminal: SshChannelTerminal, words: Translator) -> None:
    """Write the person's notices for this terminal into it as lines, until cancelled."""
    board = app[NOTICES]
    subscription = board.subscribe(username, web_session_id)
    try:
        while subscription.ended is None:
            notice = await subscription.next(NOTICE_WAIT)
            if notice is not None and (line := notice_line(notice, target, words)) is not None:
                terminal.write_line(line)
    finally:
        board.unsubscribe(subscription)
