"""Searchable yet encrypted text: the keys and the keyed tokens behind search by screen text.

The text read off a recording's screen, and a terminal recording's output, are stored sealed with
:func:`~recorder.keyring.encrypt_text` (AES-256-GCM under the current recording key, bound to the
recording), so a copied database holds no readable screen text. Search cannot look into ciphertext,
so each recording also stores a *blind index*: the keyed hashes (HMAC-SHA256 under a key derived from
the gateway's recording key, truncated to a 64-bit integer) of every character and every pair of adjacent
characters of its normalised, lower-cased text (:mod:`recorder.screen_search` keeps them per minute). A search asks the
database for the recordings holding every token of the text searched for (its pairs, or the
character itself), then opens those recordings' lines and keeps the ones that really contain it.

What the index gives away without the key: how many distinct characters and pairs a recording's
text has, and which recordings share one, never which one. Without the key the tokens cannot be
computed, so nothing can be looked up by guessing text.

Crypto only; no database, no event loop.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from recorder.keyring import RecordingKeyring, decrypt_text, decrypt_texts, encrypt_text
from recorder.ocr import normalize_text

TOKEN_KEY_LABEL = b"deskgate screen text tokens"
#: Bytes of the HMAC a token keeps: a signed 64-bit integer (a BIGINT in the database).
TOKEN_BYTES = 8


def searchable(text: str) -> str:
    """``text`` as it is matched: normalised like the stored lines (NFKC, CJK spacing) and lower-cased."""
    return normalize_text(text).lower()


def grams(text: str) -> set[str]:
    """Each character and each pair of adjacent characters of the already :func:`searchable` ``text``."""
    return set(text) | {text[i:i + 2] for i in range(len(text) - 1)}


def query_grams(text: str) -> set[str]:
    """What a recording's grams must include to contain the :func:`searchable` ``text``: its pairs, or itself."""
    return {text} if len(text) == 1 else {text[i:i + 2] for i in range(len(text) - 1)}


@dataclass(frozen=True, slots=True)
class TextKeys:
    """The keys of stored text: ``keyring`` seals it (no current key: stored in clear), ``token_key`` indexes it."""

    token_key: bytes = field(repr=False)
    keyring: RecordingKeyring

    @classmethod
    def derive(cls, recording_key: bytes, keyring: RecordingKeyring) -> TextKeys:
        """The token key derived from the gateway's recording key, which every node shares."""
        return cls(hmac.new(recording_key, TOKEN_KEY_LABEL, hashlib.sha256).digest(), keyring)

    def tokens(self, grams: Iterable[str]) -> set[int]:
        """The keyed tokens of ``grams``."""
        key = self.token_key
        return {int.from_bytes(hmac.digest(key, gram.encode(), "sha256")[:TOKEN_BYTES], "big", signed=True)
                for gram in grams}

    def text_tokens(self, texts: Iterable[str]) -> set[int]:
        """The tokens text made of ``texts`` is indexed under."""
        found: set[str] = set()
        for text in texts:
            found |= grams(searchable(text))
        return self.tokens(found)

    def query_tokens(self, text: str) -> set[int]:
        """The tokens a recording must be indexed under to contain ``text`` (empty: ``text`` is blank)."""
        wanted = searchable(text)
        return self.tokens(query_grams(wanted)) if wanted else set()

    def seal(self, recording_id: str, text: str) -> str:
        """``text`` as stored for ``recording_id``."""
        return encrypt_text(self.keyring, recording_id, text)

    def open(self, recording_id: str, stored: str) -> str:
        """The text :meth:`seal` stored (text stored in clear comes back as it is); RecordingKeyError if unreadable."""
        return decrypt_text(self.keyring, recording_id, stored)

    def open_all(self, recording_id: str, stored: Iterable[str]) -> list[str]:
        """:meth:`open` of each of ``stored``: a recording's lines, each key set up once."""
        return decrypt_texts(self.keyring, recording_id, stored)
