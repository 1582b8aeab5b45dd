"""Structured logs: one line per event, ``time level logger message key=value ...``.

Call sites pass their fields as ``extra={"ctx": {...}}``; values are quoted when needed
so that a line can be parsed back (logfmt).
"""

from __future__ import annotations

import logging
import sys
from typing import Any


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """Renders a record and its ``ctx`` fields as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "ctx", {}) or {})
        line = " ".join(f"{key}={_quote(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info") -> None:
    """Send every log record to stderr as logfmt (called once, by the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if root.level > logging.DEBUG:  # asyncssh logs ~10 lines per SSH connection; the gateway logs its own
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
