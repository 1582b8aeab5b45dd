"""Imports run one way (README, "Architecture").

    gateway            (the server: web, sessions, policy, CLI)
      ├── auth         (who you are and where you come from)
      ├── recorder     (journals, decoding, video, index)
      │     └── gateway.rfb   (the sans-I/O RFB core: a leaf that imports nothing else of the project)
      └── base         (database engine, time helpers, YAML nodes, metrics: imports nothing above it)

The protocol cores — ``gateway/rfb/``, the journal format and the decoders — import no
event loop, socket or network library. The checks read the source (no import runs), so
a forbidden import is caught even in a branch no test executes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("base", "auth", "recorder", "gateway")

#: Modules that must not do network or event-loop I/O: bytes in, events out.
SANS_IO = ("gateway/rfb", "recorder/decoders", "recorder/framebuffer.py", "recorder/journal.py",
           "recorder/records.py", "recorder/terminal_text.py", "gateway/terminal_messages.py")
IO_MODULES = frozenset({"asyncio", "socket", "ssl", "selectors", "aiohttp", "websockets", "asyncssh", "uvloop",
                        "aiobotocore", "sqlalchemy", "aiosqlite", "asyncpg", "ldap"})


@dataclass(frozen=True)
class Rule:
    """Modules under ``where`` may import nothing of the project named in ``forbidden``."""

    where: str
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()  # exceptions to ``forbidden``: these modules and those under them


RULES = (
    Rule("base", ("auth", "recorder", "gateway"), "the bottom package imports nothing above it"),
    Rule("auth", ("recorder", "gateway"), "auth never imports the gateway"),
    Rule("recorder", ("auth", "gateway"), "the recorder imports only the RFB core of the gateway",
         allowed=("gateway.rfb",)),
    Rule("gateway/rfb", ("base", "auth", "recorder", "gateway"), "the RFB core is a leaf", allowed=("gateway.rfb",)),
)


def python_files(place: str) -> list[Path]:
    path = ROOT / place
    return sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []


def imported_modules(source: str, module: str) -> Iterator[str]:
    """Every absolute module name ``source`` imports (relative imports resolved against ``module``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def imported_roots(source: str) -> set[str]:
    """The top-level names of every module ``source`` imports."""
    return {name.split(".")[0] for name in imported_modules(source, "") if name}


def within(module: str, packages: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def sources(files: list[Path]) -> dict[str, str]:
    """Each file's source by its path relative to the repository."""
    return {path.relative_to(ROOT).as_posix(): path.read_text() for path in files}


def violations(rule: Rule, files: dict[str, str]) -> list[str]:
    """``path imports module: why`` for every import under ``files`` that ``rule`` forbids."""
    found = []
    for path, source in files.items():
        module = path.removesuffix(".py").replace("/", ".")
        for imported in imported_modules(source, module):
            if within(imported, rule.forbidden) and not within(imported, rule.allowed):
                found.append(f"{path} imports {imported}: {rule.why}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.where)
def test_imports_run_one_way(rule: Rule) -> None:
    assert violations(rule, sources(python_files(rule.where))) == []


def sans_io_modules() -> list[Path]:
    return [path for place in SANS_IO for path in python_files(place)]


@pytest.mark.parametrize("module", sans_io_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_protocol_cores_do_no_io(module: Path) -> None:
    assert imported_roots(module.read_text()) & IO_MODULES == set()


def test_every_package_and_core_is_found() -> None:
    assert all((ROOT / package / "__init__.py").exists() for package in PACKAGES)
    names = {path.name for path in sans_io_modules()}
    assert {"messages.py", "framing.py", "handshake.py", "proxy.py", "journal.py", "raw.py"} <= names


# ---------------------------------------------------------------- the checks themselves can fail


def test_a_forbidden_import_is_caught() -> None:
    rule = next(rule for rule in RULES if rule.where == "auth")
    probes = {
        "auth/good.py": "from base.db import Store\nimport auth.local\n",
        "auth/bad_from.py": "from gateway.audit import AuditLog\n",
        "auth/bad_import.py": "import gateway.config as config\n",
        "auth/sub/bad_relative.py": "from ...gateway import policy\n",
        "auth/bad_late.py": "def f():\n    from recorder.index import RecordingIndex\n",
    }
    found = violations(rule, probes)
    assert sorted({line.split(" imports ")[0] for line in found}) == [
        "auth/bad_from.py", "auth/bad_import.py", "auth/bad_late.py", "auth/sub/bad_relative.py"]


def test_the_recorder_may_import_the_rfb_core_only() -> None:
    rule = next(rule for rule in RULES if rule.where == "recorder")
    probe = {"recorder/probe.py": "from gateway.rfb.messages import Encoding\nfrom gateway.policy import Policy\n"}
    assert {line.split(": ")[0] for line in violations(rule, probe)} == {
        "recorder/probe.py imports gateway.policy", "recorder/probe.py imports gateway.policy.Policy"}


def test_the_io_check_sees_every_import_form() -> None:
    source = "import os, socket\nfrom asyncio import sleep\nimport ssl as tls\nfrom . import sibling\n"
    assert imported_roots(source) & IO_MODULES == {"socket", "asyncio", "ssl"}
