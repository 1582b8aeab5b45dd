"""How a typed user name is compared: one key per person, however the name is spelled.

A directory compares names much as RFC 4518 prepares strings for ``caseIgnoreMatch``:
compatibility characters folded (NFKC: ``ａｌｉｃｅ`` is ``alice``), case folded, spaces
collapsed. :func:`name_key` folds a name the same way, so that the throttle — which must
count an attempt *before* any backend says whose account it is — counts every spelling
that reaches one entry under one key. Where directories fold differently the key takes
the coarser reading: the Turkish ``İ`` and ``ı`` are an ``i`` (slapd lower-cases ``İ`` to
``i``, full case folding to ``i`` and a dot; a directory that upper-cases reads ``ı`` as ``I``). Two names a directory tells
apart may share a key: they share a throttle, which is the safe side.

A name is refused before any backend is asked (:func:`name_problem`) when it holds
control, invisible, private-use or unassigned characters (printed as nothing, dropped by
some directories, folded differently by the next Unicode version), compatibility
characters (NFKC changes them: full-width ``ａｌｉｃｅ``, half-width ｶﾅ, ligatures — one
more way to name an account).

After a backend has resolved the name, per-user state (TOTP secrets and used steps,
disabled accounts, web sessions) is kept under the name the backend returned
(:attr:`auth.identity.Identity.username`), never the one typed.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories no user name may contain: controls, format characters (zero-width, bidi),
#: surrogates, private use, unassigned.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
#: Default-ignorable characters outside those categories (combining grapheme joiner, Hangul fillers,
#: Mongolian and other variation selectors) and the Mongolian soft hyphen that RFC 3454 maps to nothing.
INVISIBLE = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x1806, *range(0x180B, 0x1810), 0x3164, 0xFFA0,
                       *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)})
#: The case folding of the Turkish dotted capital İ (i and a combining dot), and the dotless small ı.
DOTTED_I, DOTLESS_I = "i\u0307", "\u0131"

CONTROL_OR_INVISIBLE = "the username contains control or invisible characters"
COMPATIBILITY_FORM = "the username contains full-width or other compatibility characters"


def name_key(name: str) -> str:
    """The name folded as a directory compares it: NFKC, case folded (every i as i), NFKC again, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", name).casefold().replace(DOTTED_I, "i").replace(DOTLESS_I, "i")
    return " ".join(unicodedata.normalize("NFKC", folded).split())


def name_problem(name: str) -> str | None:
    """Why the typed ``name`` is refused before any backend is asked (for the audit log); None if it is not."""
    if any(unicodedata.category(character) in REFUSED_CATEGORIES or ord(character) in INVISIBLE
           for character in name):
        return CONTROL_OR_INVISIBLE
    if unicodedata.normalize("NFKC", name) != unicodedata.normalize("NFC", name):
        return COMPATIBILITY_FORM
    return None
