"""Coverage-guided fuzz targets for the sans-I/O RFB core, run by atheris (libFuzzer): ``make fuzz``.

Each target in :mod:`fuzz.targets` takes one input's bytes and fails (AssertionError, or an
exception the code under test does not document) when the code misbehaves. ``python -m fuzz
TARGET [libFuzzer options]`` runs one under atheris with its corpus in ``var/fuzz/TARGET``;
the same functions also run without atheris in ``tests/rfb/test_fuzz_targets.py``, so that
they stay correct between fuzzing runs.
"""
