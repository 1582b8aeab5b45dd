"""Build deskgate (metadata in setup.cfg); compile the target's framer with mypyc where this machine can.

``gateway/rfb/boundaries.py``, the proxy's hot path, is typed Python that mypyc compiles to a C
extension (about twice as fast). Without mypyc, a C compiler or the Python headers the build goes
on and the same file runs interpreted (:mod:`gateway.rfb.boundary_impl` chooses at import and
says which). Beside the extension goes ``boundaries.built``, the SHA-256 of the source it was
compiled from: an edited source is not shadowed by a stale build.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup

FRAMER = Path("gateway/rfb/boundaries.py")
BUILT_FROM = FRAMER.with_suffix(".built")


def compiled_framer() -> list[Extension]:
    """The framer as a mypyc extension (optional: a failed C build leaves the pure module), or nothing."""
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("deskgate: mypyc is not installed; the RFB framer stays interpreted", file=sys.stderr)
        return []
    try:
        extensions = mypycify([str(FRAMER)], opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        print(f"deskgate: mypyc could not compile {FRAMER} ({exc}); it stays interpreted", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True
    BUILT_FROM.write_text(hashlib.sha256(FRAMER.read_bytes()).hexdigest() + "\n")
    return extensions


setup(ext_modules=compiled_framer())
