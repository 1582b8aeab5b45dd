"""The HTML pages: static files whose scripts fetch what they show (CSP forbids inline script)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from gateway.web.security import current_session

WEB_DIR = Path(__file__).parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"


def page(name: str) -> web.FileResponse:
    return web.FileResponse(TEMPLATES / name, headers={"Content-Type": "text/html; charset=utf-8"})


def redirect_to_login() -> web.HTTPFound:
    return web.HTTPFound("/login")


def signed_in_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler serving the page ``name`` to a signed-in caller and sending anyone else to the login page."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if current_session(request) is None:
            raise redirect_to_login()
        return page(name)

    return serve
