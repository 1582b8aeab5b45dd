"""The HTML pages: Jinja2 templates rendered once per language, whose scripts fetch what they show
(CSP forbids inline script).

A page is static apart from its language and the site's time zone, so each rendering is cached
per (template, language, time zone). The language of a request: ``?lang=`` (remembered in the
``deskgate_lang`` cookie, then a redirect to the same address without it), else the cookie,
else ``Accept-Language``, else the site's ``ui.language``. The page carries its language
(``<html lang>``), the site's time zone (``<meta name="deskgate-timezone">``) and the messages
its scripts show (``<script type="application/json" id="deskgate-catalog">``), which
``static/i18n.js`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from gateway.i18n import LANGUAGE_NAMES, LANGUAGES, supported, translator
from gateway.web.keys import SETTINGS
from gateway.web.messages import LANGUAGE_COOKIE, request_language
from gateway.web.security import TERMINAL_CONTENT_SECURITY_POLICY, current_session, served_over_tls

WEB_DIR = Path(__file__).parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_PARAMETER = "lang"


def environment(language: str) -> Environment:
    """The Jinja2 environment of one language: autoescaping, the i18n extension with its catalog."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      extensions=["jinja2.ext.i18n"], auto_reload=False, keep_trailing_newline=True)
    env.install_gettext_translations(translator(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def script_catalog(language: str) -> Markup:
    """The scripts' messages as JSON inside a ``<script type="application/json">``: ``<`` escaped, so
    no text can close the element."""
    text = json.dumps(translator(language).script_catalog_json(), ensure_ascii=False, sort_keys=True)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


class PageRenderer:
    """Renders templates through one Jinja2 environment per language, each result once."""

    def __init__(self) -> None:
        self._environments = {language: environment(language) for language in LANGUAGES}
        self._rendered: dict[tuple[str, str, str], bytes] = {}

    def warm(self, timezone: str) -> None:
        """Renders every page in every language now, so no request pays for compiling a template."""
        for template in TEMPLATES.glob("[!_]*.html"):
            for language in LANGUAGES:
                self.render(template.name, language, timezone)

    def render(self, name: str, language: str, timezone: str) -> bytes:
        key = (name, language, timezone)
        body = self._rendered.get(key)
        if body is None:
            template = self._environments[language].get_template(name)
            body = template.render(lang=language, timezone=timezone, catalog=script_catalog(language),
                                   languages=LANGUAGE_NAMES).encode()
            self._rendered[key] = body
        return body


_renderer: PageRenderer | None = None


def renderer() -> PageRenderer:
    """The renderer, built at the first call (``create_app`` makes it at start-up)."""
    global _renderer
    if _renderer is None:
        _renderer = PageRenderer()
    return _renderer


def remember_language(request: web.Request) -> web.HTTPFound | None:
    """For ``?lang=``: a redirect to the same address without it that sets the remembered language
    (an unsupported value is dropped without being remembered); None when there is no ``lang``."""
    if LANGUAGE_PARAMETER not in request.query:
        return None
    rest = [(name, value) for name, value in request.query.items() if name != LANGUAGE_PARAMETER]
    redirect = web.HTTPFound(request.path + (f"?{urlencode(rest)}" if rest else ""))
    language = supported(request.query[LANGUAGE_PARAMETER])
    if language is not None:
        redirect.set_cookie(LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_AGE, path="/", samesite="Lax",
                            secure=served_over_tls(request.app), httponly=True)
    return redirect


def page(request: web.Request, name: str) -> web.Response:
    """The template ``name`` in the caller's language (raises the redirect that remembers ``?lang=``)."""
    redirect = remember_language(request)
    if redirect is not None:
        raise redirect
    ui = request.app[SETTINGS].current.config.ui
    language = request_language(request)
    body = renderer().render(name, language, ui.timezone)
    return web.Response(body=body, content_type="text/html", charset="utf-8",
                        headers={"Content-Language": language, "Vary": "Accept-Language, Cookie"})


def redirect_to_login() -> web.HTTPFound:
    return web.HTTPFound("/login")


def signed_in_page(name: str, *, terminal_assets: bool = False) -> Callable[[web.Request],
                                                                          Awaitable[web.StreamResponse]]:
    """A handler serving the page ``name`` to a signed-in caller and sending anyone else to the login page.

    ``terminal_assets``: the page runs xterm.js or asciinema-player (:data:`TERMINAL_CONTENT_SECURITY_POLICY`).
    """

    async def serve(request: web.Request) -> web.StreamResponse:
        redirect = remember_language(request)
        if redirect is not None:
            raise redirect
        if current_session(request) is None:
            raise redirect_to_login()
        response = page(request, name)
        if terminal_assets:
            response.headers["Content-Security-Policy"] = TERMINAL_CONTENT_SECURITY_POLICY
        return response

    return serve
