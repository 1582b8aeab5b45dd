"""Which build of :mod:`gateway.rfb.boundaries` runs: compiled with mypyc, or the same source interpreted.

``setup.py`` compiles ``boundaries.py`` with mypyc where it can (a C compiler and the Python
headers: ``make deps`` installs both) and writes beside it ``boundaries.built``, the SHA-256
of the source it compiled. The compiled module is used when it imports and was built from
the source next to it; otherwise, or with ``DESKGATE_PURE_RFB=1`` in the environment, the
source runs interpreted — the same rules, the same results, about twice the CPU per byte.
:data:`IMPLEMENTATION` says which (``compiled`` or ``pure``) and :data:`FALLBACK_REASON` why
the compiled one is not used; the gateway logs both at start-up and exports the first as the
``rfb_framer`` label of ``deskgate_build_info``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.rfb.boundaries import ServerBoundaries as Boundaries

#: The environment variable that forces the interpreted framer (CI runs the RFB tests both ways).
PURE_VARIABLE = "DESKGATE_PURE_RFB"

_MODULE = "gateway.rfb.boundaries"
_SOURCE = Path(__file__).with_name("boundaries.py")
_BUILT_FROM = Path(__file__).with_name("boundaries.built")
_INTERPRETED = "gateway.rfb._boundaries_interpreted"


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from an extension module (a mypyc build)."""
    return str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def interpreted() -> ModuleType:
    """The interpreted module, also where the compiled one shadows its source on import."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError:
        module = None
    if module is not None and not is_compiled(module):
        return module
    if _INTERPRETED not in sys.modules:
        spec = importlib.util.spec_from_file_location(_INTERPRETED, _SOURCE)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[_INTERPRETED] = loaded
        spec.loader.exec_module(loaded)
    return sys.modules[_INTERPRETED]


def compiled() -> tuple[ModuleType | None, str]:
    """The compiled module if it is usable, else ``None`` and why not."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError as exc:
        return None, f"the compiled framer does not import ({exc})"
    if not is_compiled(module):
        return None, "the framer is not compiled (no C compiler or Python headers at install time?)"
    if _SOURCE.exists():
        source_digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()
        built_from = _BUILT_FROM.read_text().strip() if _BUILT_FROM.exists() else ""
        if built_from != source_digest:
            return None, f"the compiled framer was built from another version of {_SOURCE.name}; run `make deps`"
    return module, ""


def _choose() -> tuple[ModuleType, str, str]:
    if os.environ.get(PURE_VARIABLE, "") not in ("", "0"):
        return interpreted(), "pure", f"{PURE_VARIABLE} is set"
    module, reason = compiled()
    if module is None:
        return interpreted(), "pure", reason
    return module, "compiled", ""


boundaries, IMPLEMENTATION, FALLBACK_REASON = _choose()

#: The boundary framer in use, and what its marks say (see :mod:`gateway.rfb.boundaries`).
ServerBoundaries: type[Boundaries] = boundaries.ServerBoundaries
UPDATE: int = boundaries.UPDATE
RECTANGLE: int = boundaries.RECTANGLE
UPDATE_END: int = boundaries.UPDATE_END
RESIZED: int = boundaries.RESIZED
MESSAGE: int = boundaries.MESSAGE
DESKTOP_NAME: int = boundaries.DESKTOP_NAME
