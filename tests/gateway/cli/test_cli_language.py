"""``deskgate`` speaks Japanese to a Japanese terminal (LC_ALL / LC_MESSAGES / LANG ja…) and
exactly the English it always did otherwise: a real subprocess, its locale set as a person's would be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.cli.messages import cli_language
from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[3]
TARGETS = "targets:\n  desk-01: {protocol: vnc, host: 127.0.0.1, port: 5901}\n"


def deskgate(*argv: str, **locale: str) -> tuple[int, str]:
    environ = {name: value for name, value in os.environ.items() if name not in ("LC_ALL", "LC_MESSAGES", "LANG")}
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *argv], cwd=ROOT, env={**environ, **locale},
                          capture_output=True, text=True, encoding="utf-8", timeout=60, check=False)
    return done.returncode, done.stderr


@pytest.mark.parametrize(("environ", "language"), [
    ({"LANG": "ja_JP.UTF-8"}, "ja"), ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "ja_JP.UTF-8"}, "ja"),
    ({"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, "en"), ({"LANG": "C.UTF-8"}, "en"), ({}, "en"), ({"LC_ALL": "ja"}, "ja"),
])
def test_the_terminals_locale_picks_the_language(environ: dict[str, str], language: str) -> None:
    assert cli_language(environ) == language


def test_a_configuration_error_in_japanese_and_unchanged_in_english(tmp_path: Path) -> None:
    config = tmp_path / "deskgate.yaml"
    config.write_text("ui: {language: fr}\n")
    with pytest.raises(ConfigError) as english:
        load_config(config)
    status, err = deskgate("serve", "--config", str(config), LANG="C.UTF-8")
    assert (status, err) == (1, f"{english.value}\n")
    status, err = deskgate("serve", "--config", str(config), LANG="ja_JP.UTF-8")
    assert status == 1
    assert err == (f"{config}:1: ui.language: 設定に誤りがあります（'fr' is not one of ja, en）。"
                   "設定ファイルを直してから、もう一度実行してください\n")


def test_a_refusal_of_the_cli_in_japanese(tmp_path: Path) -> None:
    config = tmp_path / "deskgate.yaml"
    config.write_text(TARGETS)
    argv = ("policy", "explain", "alice", "--from", "not-an-ip", "--target", "desk-01", "--config", str(config))
    assert deskgate(*argv, LC_ALL="ja_JP.UTF-8") == (1, "deskgate: --from 'not-an-ip' は IP アドレスではありません\n")
    assert deskgate(*argv, LANG="en_US.UTF-8") == (1, "deskgate: --from 'not-an-ip' is not an IP address\n")
