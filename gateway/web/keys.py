"""Typed application state shared by the route modules.

``create_app`` sets the first group; the cleanup contexts set the services that need the
database (opened at start-up), and the recordings built from them.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from auth.ldap import LDAPBackend
from auth.login import LoginService
from auth.websession import WebSessionStore
from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.disk_space import DiskSpace
from gateway.journals import SessionRecordings
from gateway.notices import NoticeBoard
from gateway.reach import JumpHosts
from gateway.session_directory import SessionDirectory
from gateway.sessions import SessionRegistry
from gateway.settings import LiveSettings
from recorder.index import RecordingIndex

#: The config in force and what is built from it; a reload replaces it (see gateway.settings).
SETTINGS = web.AppKey("settings", LiveSettings)
METRICS = web.AppKey("metrics", Metrics)
#: The wall clock of everything time-bound in authentication (TOTP, web sessions, throttle); tests inject one.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
#: When this gateway started, on CLOCK (the admin console's "since start").
STARTED = web.AppKey("started", float)
LIVE_SESSIONS = web.AppKey("live_sessions", SessionRegistry)
#: Free space of the recordings' and database's disks; new sessions are refused while it is low.
DISK_SPACE = web.AppKey("disk_space", DiskSpace)

STORE = web.AppKey("store", Store)
AUDIT = web.AppKey("audit", AuditLog)
RECORDING_INDEX = web.AppKey("recording_index", RecordingIndex)
#: Every node's live sessions (listing, end requests across nodes) and the notices to users' pages.
SESSION_DIRECTORY = web.AppKey("session_directory", SessionDirectory)
NOTICES = web.AppKey("notices", NoticeBoard)
LOGIN = web.AppKey("login", LoginService)
LDAP = web.AppKey("ldap", LDAPBackend)  # present only when auth.ldap is configured
WEB_SESSIONS = web.AppKey("web_sessions", WebSessionStore)
RECORDINGS: web.AppKey[SessionRecordings] = web.AppKey("recordings")
JUMP_HOSTS = web.AppKey("jump_hosts", JumpHosts)  # the shared connections to jump hosts (gateway/reach.py)
