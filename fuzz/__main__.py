"""``python -m fuzz TARGET [libFuzzer options]``: run one fuzz target under atheris.

The corpus is ``var/fuzz/TARGET`` (seeded with valid streams when empty); an input that
fails is written to ``var/fuzz/TARGET-crash-*`` and ends the run with a non-zero status.
Bound the run with libFuzzer's ``-max_total_time=SECONDS`` (``make fuzz`` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gateway.rfb"]):  # coverage feedback from the RFB core only
    import gateway.rfb.framing  # noqa: F401
    import gateway.rfb.proxy  # noqa: F401
    import tests.rfb.differential  # noqa: F401  (both builds of the boundary framer)

from fuzz.targets import TARGETS, seeds  # noqa: E402

CORPORA = Path("var/fuzz")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz {{{','.join(TARGETS)}}} [libFuzzer options, e.g. -max_total_time=60]")
    target, options = sys.argv[1], sys.argv[2:]
    corpus = CORPORA / target
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for number, seed in enumerate(seeds(target)):
            (corpus / f"seed-{number:02d}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *options, f"-artifact_prefix={CORPORA}/{target}-", str(corpus)], TARGETS[target])
    atheris.Fuzz()


main()
