"""Keys of stored screen text for tests that do not look at how it is sealed: a fixed token key, no sealing."""

from __future__ import annotations

from recorder.keyring import RecordingKeyring
from recorder.text_index import TextKeys

TEXT_KEYS = TextKeys(bytes(range(32)), RecordingKeyring((), None))
