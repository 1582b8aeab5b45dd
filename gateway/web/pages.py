"""The HTML pages: static files whose scripts fetch what they show (CSP forbids inline script)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"


def page(name: str) -> web.FileResponse:
    return web.FileResponse(TEMPLATES / name, headers={"Content-Type": "text/html; charset=utf-8"})


def redirect_to_login() -> web.HTTPFound:
    return web.HTTPFound("/login")
