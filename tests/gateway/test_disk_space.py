"""``storage.min_free``: amounts and shares of a disk, and what the config says when one is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.config import load_config
from gateway.config.sizes import DEFAULT_MIN_FREE, MinFree, parse_min_free
from gateway.disk_space import watched_volumes


@pytest.mark.parametrize(("text", "expected"), [
    ("2GiB", MinFree(bytes=2 * 2**30)), ("500MB", MinFree(bytes=500 * 10**6)), ("1.5 kib", MinFree(bytes=1536)),
    (4096, MinFree(bytes=4096)), ("0", MinFree()), ("5%", MinFree(percent=5.0)), ("0.5 %", MinFree(percent=0.5)),
])
def test_amounts_and_shares(text: str | int, expected: MinFree) -> None:
    assert parse_min_free(text) == expected


@pytest.mark.parametrize("text", ["lots", "2 parsecs", "-1", "100%", "-5%", "GiB", ""])
def test_nonsense_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_min_free(text)


def test_a_share_is_of_the_disk_size() -> None:
    assert MinFree(percent=10).threshold(1000) == 100
    assert MinFree(bytes=7).threshold(1000) == 7


def test_the_config_default_and_its_error(tmp_path: Path) -> None:
    config = tmp_path / "deskgate.yaml"
    config.write_text("storage: {database: 'postgresql://db/deskgate'}\n")
    loaded = load_config(config)
    assert loaded.storage.min_free == DEFAULT_MIN_FREE == MinFree(bytes=2**30)
    assert list(watched_volumes(loaded)) == ["recordings"]  # PostgreSQL's disk is its server's to watch
    config.write_text("storage: {min_free: 'plenty'}\n")
    with pytest.raises(ConfigError, match="storage.min_free.*not an amount of disk space"):
        load_config(config)
    config.write_text("storage: {min_free: 10%}\n")
    assert load_config(config).storage.min_free == MinFree(percent=10)
    assert set(watched_volumes(load_config(config))) == {"recordings", "database"}
