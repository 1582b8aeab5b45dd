"""``deskgate recordings list`` against a real SQLite index."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from base.db import Store
from gateway.cli.recordings import recordings_list_command
from gateway.config import Config, load_config
from recorder.index import RecordingIndex
from tests.recorder.test_index import SAMPLES
from tests.text_keys import TEXT_KEYS


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "deskgate.yaml"
    path.write_text('storage: {database: "sqlite:///state/deskgate.db"}\n')
    loaded = load_config(path)

    async def fill() -> None:
        store = await Store.open(loaded.storage.database)
        try:
            for summary in SAMPLES:
                await RecordingIndex(store, TEXT_KEYS).add(summary, None, "gw-1")
        finally:
            await store.close()
    asyncio.run(fill())
    return loaded


def test_recordings_list_command_json_lines(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert recordings_list_command(config, None, "desk-01", None, as_json=True) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [SAMPLES[2].id, SAMPLES[0].id]
    assert lines[0] | {"ended": None} == {
        "id": SAMPLES[2].id, "user": "bob", "source": "10.0.0.5", "target": "desk-01", "protocol": "vnc",
        "started": "2026-11-25T09:00:00.000000Z", "ended": None, "duration": 600.0, "end_reason": "closed",
        "bytes": 1000, "keys": 1, "clicks": 0, "video": "none", "path": f"/r/{SAMPLES[2].id}.dgj",
        "sha256": None, "node": "gw-1", "groups": None, "display_name": None,
    }
    assert lines[0]["ended"] == "2026-11-25T09:10:00.000000Z"


def test_recordings_list_command_filters_by_user_and_since(config: Config,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert recordings_list_command(config, "bob", None, "2026-11-25T12:00:00Z", as_json=True) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [SAMPLES[3].id]


def test_recordings_list_command_table(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert recordings_list_command(config, "alice", None, None, as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "DURATION", "USER", "SOURCE", "TARGET", "BYTES", "VIDEO", "END"]
    assert lines[1].split() == [SAMPLES[1].id, "2026-11-25", "08:00:00Z", "1:00:00", "alice", "10.0.0.5",
                                "desk-02", "1000", "none", "idle", "timeout"]
    assert len(lines) == 3
    assert recordings_list_command(config, "carol", None, None, as_json=False) == 0
    assert capsys.readouterr().out == "no recordings match\n"


def test_recordings_list_command_refuses_a_bad_since(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert recordings_list_command(config, None, None, "soon", as_json=True) == 1
    assert "--since: 'soon' is not an ISO-8601 date or time" in capsys.readouterr().err
