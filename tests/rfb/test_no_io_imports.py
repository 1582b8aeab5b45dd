"""Protocol code is sans-I/O: it imports no event loop, socket or network library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANS_IO = [ROOT / "gateway" / "rfb", ROOT / "recorder" / "decoders", ROOT / "recorder" / "framebuffer.py"]
FORBIDDEN = {"asyncio", "socket", "ssl", "aiohttp", "websockets", "asyncssh", "selectors"}


def sans_io_modules() -> list[Path]:
    modules: list[Path] = []
    for place in SANS_IO:
        if place.is_dir():
            modules += sorted(place.rglob("*.py"))
        elif place.is_file():
            modules.append(place)
    return modules


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_sans_io_packages_are_found() -> None:
    names = {path.name for path in sans_io_modules()}
    assert {"messages.py", "framing.py", "handshake.py", "vncauth.py"} <= names


@pytest.mark.parametrize("module", sans_io_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_io_imports(module: Path) -> None:
    assert imported_roots(module.read_text()) & FORBIDDEN == set()


def test_the_check_sees_every_import_form() -> None:
    source = "import os, socket\nfrom asyncio import sleep\nimport ssl as tls\nfrom . import sibling\n"
    assert imported_roots(source) & FORBIDDEN == {"socket", "asyncio", "ssl"}
