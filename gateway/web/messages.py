"""The language of a request and the messages the gateway answers a person with, in that language.

The msgids are the English texts, so an English answer reads exactly as before. Texts kept in
constants are marked with :func:`N_` and translated where they are answered (``say(request, CONSTANT)``).
"""

from __future__ import annotations

from aiohttp import web

from gateway.i18n import negotiate, translator
from gateway.web.keys import SETTINGS

LANGUAGE_COOKIE = "deskgate_lang"


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate later"
    return message


def request_language(request: web.Request) -> str:
    """The language of the caller's pages and messages: cookie, ``Accept-Language``, the site's default."""
    settings = request.app.get(SETTINGS)
    default = settings.current.config.ui.language if settings is not None else "en"
    return negotiate(request.headers.get("Accept-Language"), request.cookies.get(LANGUAGE_COOKIE), default)


def say(request: web.Request, message: str, **values: object) -> str:
    """``message`` (a msgid) in the caller's language, its ``{placeholders}`` filled with ``values``."""
    return translator(request_language(request)).gettext(message, **values)
