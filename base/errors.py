"""The one error of the bottom layer: a configuration file (or users file) is invalid."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration file is invalid: ``FILE:LINE: key: message``."""

    def __init__(self, path: Path | str, line: int | None, key: str, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.key = key
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {key}: {message}")
