"""Translations: the gettext catalogs (``gateway/locale/<lang>/LC_MESSAGES/deskgate.po``), choosing a
language for a request, and the catalog the pages' scripts read.

The msgids are the English source texts. The ``.po`` files are read at start-up with Babel and
compiled in memory (no ``.mo`` in the repository); fuzzy entries are left out, so an entry
waiting for review shows in English rather than wrong. Placeholders are ``{name}``, filled in
after translation, so a translator may move them.

Adding a string: write it in English, marked (``_("…")`` in templates, ``t("…")`` in scripts,
``Translator.gettext`` in Python), run ``make messages``, translate the new ``msgstr`` in
``ja/…/deskgate.po``; ``tests/gateway/test_i18n.py`` fails until every string is translated
and no catalog entry is left unused.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("ja", "en")  # supported, in the switcher's order
SOURCE_LANGUAGE = "en"  # the language of the msgids
DOMAIN = "deskgate"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGE_NAMES = MappingProxyType({"ja": "日本語", "en": "English"})  # each in its own language: not translated
SCRIPT_SUFFIX = ".js"  # messages used by a script go into the catalog the page hands to scripts


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    """The ``.po`` catalog of ``language`` as Babel reads it."""
    with catalog_path(language).open("rb") as file:
        return read_po(file, locale=language, domain=DOMAIN)


@dataclass(frozen=True, slots=True)
class Translator:
    """One language's messages: ``gettext`` and ``ngettext`` fill ``{name}`` placeholders after translating.

    Jinja2's i18n extension calls ``gettext(message)`` and ``ngettext(singular, plural, n)`` without
    parameters and formats the result itself.
    """

    language: str
    translations: Translations
    script_catalog: Mapping[str, str | tuple[str, ...]]  # msgid → text (or plural forms) used by scripts

    def gettext(self, message: str, **params: object) -> str:
        text = self.translations.gettext(message)
        return text.format(**params) if params else text

    def ngettext(self, singular: str, plural: str, count: int, **params: object) -> str:
        """The form for ``count``; ``{n}`` in it is the count (when parameters are given)."""
        text = self.translations.ngettext(singular, plural, count)
        return text.format(**{"n": count, **params}) if params else text

    def script_catalog_json(self) -> dict[str, object]:
        """What a page hands to ``static/i18n.js``: its language and the scripts' translated messages."""
        return {"language": self.language, "messages": dict(self.script_catalog)}


def build_translator(language: str) -> Translator:
    """Reads and compiles ``language``'s catalog (fuzzy entries left out)."""
    catalog = read_catalog(language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    script: dict[str, str | tuple[str, ...]] = {}
    for message in catalog:
        if not message.id or message.fuzzy or not any(path.endswith(SCRIPT_SUFFIX) for path, _ in message.locations):
            continue
        if isinstance(message.id, (tuple, list)) and isinstance(message.string, (tuple, list)):
            forms = tuple(str(form) for form in message.string)
            if all(forms):
                script[str(message.id[0])] = forms
        elif isinstance(message.id, str) and isinstance(message.string, str) and message.string:
            script[message.id] = message.string
    return Translator(language, Translations(compiled, domain=DOMAIN), MappingProxyType(script))


@cache
def translator(language: str) -> Translator:
    """The translator of a supported language, built once."""
    if language not in LANGUAGES:
        raise ValueError(f"{language!r} is not a supported language; use one of {', '.join(LANGUAGES)}")
    return build_translator(language)


def load_all() -> None:
    """Read every catalog now, so a broken ``.po`` stops the start-up rather than the first page."""
    for language in LANGUAGES:
        translator(language)


def supported(tag: str | None) -> str | None:
    """The supported language a tag such as ``ja-JP`` or ``EN`` names, or None."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else None


def parse_accept_language(header: str) -> list[str]:
    """The supported languages an ``Accept-Language`` header asks for, best first (``q=0``: refused).

    ``*`` stands for any language and is kept as ``"*"``; malformed entries are ignored.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, parameters = item.partition(";")
        tag = tag.strip()
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if not 0 < quality <= 1:
            continue
        language = "*" if tag == "*" else supported(tag)
        if language is not None:
            ranked.append((-quality, position, language))
    ranked.sort()
    return [language for _, _, language in ranked]


def negotiate(accept_language: str | None, cookie: str | None, default: str) -> str:
    """The language to answer in: a remembered choice (cookie), else the browser's best supported
    ``Accept-Language`` (q-values), else the site's ``default``."""
    remembered = supported(cookie)
    if remembered is not None:
        return remembered
    for language in parse_accept_language(accept_language or ""):
        return default if language == "*" else language
    return default
