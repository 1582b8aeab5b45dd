"""Key rotation from the command line: record with k0, add a key, record again; both verify; a lost key is named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from base.metrics import Metrics
from gateway.cli.recordings import keys_command, new_key_command, verify_command
from gateway.config import Config, load_config
from gateway.recording_service import load_keyring
from recorder.journal import JournalReader, recording_path
from recorder.keyring import FIRST_KEY_ID, fingerprint
from recorder.seal import load_or_create_key
from recorder.writer import SessionRecorder
from tests.recorder.test_writer import header

ROOT = Path(__file__).resolve().parents[3]
FIRST, SECOND = "20261125T080000Z-00000001", "20261125T090000Z-00000002"


def write_config(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "deskgate.yaml"
    path.write_text(f'storage: {{database: "sqlite:///state/deskgate.db"{extra}}}\n')
    return load_config(path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


def record(config: Config, session_id: str) -> Path:
    async def session() -> Path:
        keyring = load_keyring(config)
        recorder = await SessionRecorder.open(
            recording_path(config.storage.recordings, session_id), header(session_id),
            key=load_or_create_key(config.storage.recording_key_file), fsync_interval=3600.0, metrics=Metrics(),
            keyring=keyring)
        recorder.server_data(b"what was on the screen")
        return (await recorder.close("browser closed")).path
    return asyncio.run(session())


def verify_in_a_fresh_process(config: Config, session_id: str) -> subprocess.CompletedProcess[str]:
    """``deskgate recordings verify`` as a person runs it: no key of this test process installed."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", "recordings", "verify", session_id,
                           "--config", str(config.path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**{name: value for name, value in os.environ.items()
                                  if name not in ("LC_ALL", "LC_MESSAGES")}, "LANG": "C.UTF-8"})


def test_rotated_keys_keep_old_recordings_readable_and_a_lost_key_is_named(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    first = record(config, FIRST)
    assert new_key_command(config) == 0
    assert "added the recording key k20" in capsys.readouterr().out
    second = record(config, SECOND)

    keyring = load_keyring(config, create=False)
    assert keyring.current is not None and keyring.current.key_id > FIRST_KEY_ID
    codecs = [JournalReader(path, keyring=keyring).codec for path in (first, second)]
    assert [codec.envelope.wrapped.key_id for codec in codecs if codec and codec.envelope.wrapped] == \
        [FIRST_KEY_ID, keyring.current.key_id]
    assert verify_command(config, FIRST) == 0 and verify_command(config, SECOND) == 0
    capsys.readouterr()

    assert keys_command(config) == 0
    listed = capsys.readouterr().out.splitlines()
    first_fingerprint = fingerprint((config.storage.recording_keys / f"{FIRST_KEY_ID}.key").read_bytes())
    assert listed == [f"{FIRST_KEY_ID}  {first_fingerprint}",
                      f"{keyring.current.key_id}  {keyring.current.fingerprint}  current: encrypts new recordings"]

    (config.storage.recording_keys / f"{FIRST_KEY_ID}.key").unlink()
    lost = verify_in_a_fresh_process(config, FIRST)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert f"restore the file {FIRST_KEY_ID}.key from a backup" in lost.stdout
    kept = verify_in_a_fresh_process(config, SECOND)
    assert kept.returncode == 0 and f"{SECOND}: OK" in kept.stdout, kept.stdout + kept.stderr


def test_a_new_key_says_when_encryption_is_off_and_a_clash_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ", encrypt_recordings: false")
    assert keys_command(config) == 0
    assert "no recording keys in" in capsys.readouterr().out
    assert new_key_command(config) == 0
    assert "new recordings are not encrypted" in capsys.readouterr().out
    (key_file,) = config.storage.recording_keys.iterdir()
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    assert keys_command(config) == 1
    assert f"chmod 600 {key_file}" in capsys.readouterr().err
