"""What ``deskgate`` tells a person, in the language of their terminal.

Japanese when the locale (``LC_ALL``, else ``LC_MESSAGES``, else ``LANG``, as POSIX ranks them)
names ``ja…`` (``ja_JP.UTF-8``); English otherwise, exactly as before. The texts are marked with
``_()`` so ``make messages`` extracts them into the same catalogs as the pages'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.i18n import translator


def cli_language(environ: Mapping[str, str] = os.environ) -> str:
    """``ja`` when the terminal's locale is Japanese, else ``en``."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def _(message: str, **values: object) -> str:  # noqa: N802 - gettext's name
    """``message`` (a msgid) in the terminal's language, its ``{placeholders}`` filled with ``values``."""
    return translator(cli_language()).gettext(message, **values)


def known(text: str) -> str:
    """``text`` translated when it is a catalog message (an error's fixed English text), else unchanged."""
    return translator(cli_language()).gettext(text)
