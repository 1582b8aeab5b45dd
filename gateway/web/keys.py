"""Typed application state shared by the route modules."""

from __future__ import annotations

from aiohttp import web

from auth.login import LoginService
from auth.netacl import NetworkACL
from auth.websession import WebSessionStore
from gateway.config import Config
from gateway.desktop import TargetEndpoint
from gateway.metrics import Metrics
from gateway.policy import PolicySet
from gateway.sessions import SessionRegistry

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
NETACL = web.AppKey("netacl", NetworkACL)
LOGIN = web.AppKey("login", LoginService)
WEB_SESSIONS = web.AppKey("web_sessions", WebSessionStore)
POLICIES = web.AppKey("policies", PolicySet)
LIVE_SESSIONS = web.AppKey("live_sessions", SessionRegistry)
VNC_ENDPOINTS = web.AppKey("vnc_endpoints", dict[str, TargetEndpoint])
