"""``ocr:`` and ``pii:``: safe defaults, each mistake named by file, line and key, restart-only, and what a node
does when Tesseract is missing (auto: says so once and reads only typed text; on: refuses to start)."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.config import load_config
from gateway.reload import RESTART_ONLY
from gateway.screen_text import screen_text_options
from recorder.errors import RecordingUnavailable
from recorder.pii import BUILTIN_KINDS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_read_japanese_and_english_once_a_second_and_look_for_every_built_in_kind(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert (config.ocr.enabled, config.ocr.languages, config.ocr.workers, config.ocr.interval) == \
        ("auto", "jpn+eng", 1, 1.0)
    assert config.pii.kinds == BUILTIN_KINDS and config.pii.patterns == ()
    assert {"ocr", "pii"} <= set(RESTART_ONLY)


def test_settings_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        ocr: {enabled: off, languages: eng, workers: 2, interval: 2s}
        pii:
          kinds: [card]
          patterns:
            - {kind: employee_id, pattern: 'EMP-\\d{6}'}
        """))
    assert (config.ocr.enabled, config.ocr.languages, config.ocr.workers, config.ocr.interval) == \
        ("off", "eng", 2, 2.0)
    assert config.pii.kinds == ("card",)
    assert config.pii.patterns == (("employee_id", r"EMP-\d{6}"),)


@pytest.mark.parametrize("text, where", [
    ("ocr: {enabled: sometimes}", "deskgate.yaml:1: ocr.enabled: 'sometimes' is not auto, on or off"),
    ("ocr: {languages: 'jpn eng'}", "deskgate.yaml:1: ocr.languages:"),
    ("ocr: {workers: 0}", "deskgate.yaml:1: ocr.workers: must be from 1 to 64"),
    ("ocr: {interval: 100ms}", "deskgate.yaml:1: ocr.interval: must be from 200ms to 60s"),
    ("pii: {kinds: [iban]}", "deskgate.yaml:1: pii.kinds[0]:"),
    ("pii:\n  patterns:\n    - {kind: card, pattern: x}", "deskgate.yaml:3: pii.patterns[0]: card is built in"),
    ("pii:\n  patterns:\n    - {kind: x, pattern: '('}", "deskgate.yaml:3: pii.patterns[0]: '(' is not a regular"),
    ("pii:\n  patterns:\n    - {kind: x}", "pii.patterns[0].pattern: is required"),
])
def test_mistakes_are_named_by_file_line_and_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert where in str(error.value)


async def test_without_tesseract_auto_says_so_and_on_refuses_to_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract there
    options = await screen_text_options(load_config(write(tmp_path, "")), b"k" * 32)
    assert not options.ocr and options.kinds == BUILTIN_KINDS  # typed text is still searched
    [warning] = caplog.records
    assert "screen text will not be searchable" in warning.getMessage()
    assert warning.ctx["reason"] == "tesseract is not installed"  # type: ignore[attr-defined]
    with pytest.raises(RecordingUnavailable, match="ocr.enabled is on but tesseract is not installed"):
        await screen_text_options(load_config(write(tmp_path, "ocr: {enabled: on}")), b"k" * 32)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert not (await screen_text_options(load_config(write(tmp_path, "ocr: {enabled: off}")), b"k" * 32)).ocr
    assert caplog.text == ""


async def test_a_missing_language_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "tesseract"
    fake.write_text("#!/bin/sh\necho 'List of available languages in \"/x\" (2):'\necho eng\necho osd\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RecordingUnavailable, match="tesseract has no jpn language data"):
        await screen_text_options(load_config(write(tmp_path, "ocr: {enabled: on}")), b"k" * 32)
    assert (await screen_text_options(load_config(write(tmp_path, "ocr: {languages: eng}")), b"k" * 32)).ocr
