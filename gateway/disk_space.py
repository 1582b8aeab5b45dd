"""Free disk space for recordings and the database: gauges, and the refusal of new sessions when it runs low.

Recording is fail-closed: a disk that fills ends every session writing to it at once. So
the gateway reads the free space of the recordings' directory and of the SQLite database's
directory (a PostgreSQL database is watched by its own server) every
:data:`REFRESH_INTERVAL` seconds, off the event loop, and exports it as
``deskgate_disk_free_bytes{volume}`` beside ``deskgate_disk_size_bytes`` and the threshold
``deskgate_disk_min_free_bytes``. While any volume has less than ``storage.min_free``, new
desktop sessions are refused with :data:`NEARLY_FULL` (live ones go on); an alert fires well
before that (``deploy/prometheus/alerts.yml``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from base.metrics import Metrics
from gateway.config import Config
from gateway.settings import LiveSettings

log = logging.getLogger(__name__)

#: Seconds between two readings of the volumes' free space.
REFRESH_INTERVAL = 15.0
#: What a refused operator reads.
NEARLY_FULL = "recording storage is nearly full; contact your administrator"


class Usage(NamedTuple):
    """What :func:`shutil.disk_usage` answers (bytes)."""

    total: int
    used: int
    free: int


DiskUsage = Callable[[Path], tuple[int, int, int]]  # total, used, free: shutil.disk_usage or a test's disk


def watched_volumes(config: Config) -> dict[str, Path]:
    """The directories whose disks are watched, by volume label: recordings, and database when it is SQLite."""
    volumes = {"recordings": config.storage.recordings}
    scheme, _, path = config.storage.database.partition(":///")
    if scheme.startswith("sqlite") and path and not path.startswith(":memory:"):
        volumes["database"] = Path(path).parent
    return volumes


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a directory created at the first recording is on that disk)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _read(volumes: dict[str, Path], usage: DiskUsage) -> dict[str, Usage | OSError]:
    readings: dict[str, Usage | OSError] = {}
    for name, path in volumes.items():
        try:
            readings[name] = Usage(*usage(_existing(path)))
        except OSError as error:
            readings[name] = error
    return readings


class DiskSpace:
    """The volumes' last readings, the gauges, and whether new sessions are refused for lack of space."""

    def __init__(self, metrics: Metrics, usage: DiskUsage = shutil.disk_usage) -> None:
        self._metrics = metrics
        self.usage = usage  # tests inject a disk that is nearly full
        self._low: frozenset[str] = frozenset()

    @property
    def refusal(self) -> str | None:
        """The reason new sessions are refused now, or None while every volume has room."""
        return NEARLY_FULL if self._low else None

    @property
    def low_volumes(self) -> frozenset[str]:
        return self._low

    async def refresh(self, config: Config) -> None:
        """Read every volume of ``config`` (in a thread: a slow disk must not hold the event loop)."""
        min_free = config.storage.min_free
        readings = await asyncio.to_thread(_read, watched_volumes(config), self.usage)
        low = set()
        for name, reading in readings.items():
            if isinstance(reading, OSError):
                log.warning("cannot read the free space of the %s volume: %s", name, reading)
                continue
            threshold = min_free.threshold(reading.total)
            self._metrics.disk_free_bytes.labels(volume=name).set(reading.free)
            self._metrics.disk_size_bytes.labels(volume=name).set(reading.total)
            self._metrics.disk_min_free_bytes.labels(volume=name).set(threshold)
            if reading.free < threshold:
                low.add(name)
        for name in low - self._low:
            log.error("disk nearly full: new sessions are refused until space is freed",
                      extra={"ctx": {"volume": name, "min_free": str(min_free)}})
        for name in self._low - low:
            log.warning("disk has room again: new sessions are accepted", extra={"ctx": {"volume": name}})
        self._low = frozenset(low)

    async def run(self, settings: LiveSettings, interval: float = REFRESH_INTERVAL) -> None:
        """Refresh every ``interval`` seconds with the config in force, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh(settings.current.config)
