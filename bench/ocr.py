"""OCR indexing: how fast recordings' screen text is read (× realtime per core) and what it costs the index.

Each captured workload (``bench/captures/<workload>-<encoding>.rfbcap.xz``: the office one, which
``python -m bench.workload`` records, and the call-center one where it has been captured) is written
as a journal — the capture's server messages at their times, after the viewer's SetPixelFormat and
SetEncodings — and read by :func:`recorder.screen_index.read_recording_text` exactly as an ``ocr`` job
does, in this process on one core (Tesseract with ``OMP_THREAD_LIMIT=1``):

- *× realtime per core*: seconds of session read per CPU second (this process and its Tesseract runs);
- *wall × realtime*: the same per wall-clock second, on this (shared) machine;
- *index bytes per operator-hour*: the growth of a fresh SQLite index from the rows it stored
  (``screen_text`` sealed under a recording key, and ``pii_findings``), and the bytes of the lines'
  text alone, per hour of session;
- *blind index per operator-hour*: ``text_tokens``, one row per distinct character and pair of
  characters of each minute's text (SQLite's ``dbstat``: the pages of the table and its indexes);
- *search CPU per operator-hour*: the CPU time a search by text spends on one operator-hour of sealed
  lines, for the pair of characters most often on screen (the minutes holding it are opened, up to its
  first 20 moments) and for a text that never was (no minute holds all its pairs: nothing is opened).

Run ``python -m bench.ocr [--captures DIR] [--encoding zrle] [--runs 3] [--interval 1]``; not part of ``make test``
or ``make bench``: it prints its table and writes nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text

from base.db import Store
from bench.capture_file import Capture, read_capture
from bench.workload import CAPTURE_DIR
from gateway.rfb.messages import RGBX8888, FramebufferUpdateRequest, SetEncodings, SetPixelFormat
from recorder.index import RecordingIndex
from recorder.journal import JOURNAL_MAGIC, RecordKind, encode_json, encode_record
from recorder.keyring import RecordingKeyring
from recorder.pii import digest_key
from recorder.records import SessionEnd
from recorder.screen_index import RecordingText, ScreenTextOptions, read_recording_text
from recorder.summary import summarize_journal
from recorder.tables import text_tokens
from recorder.text_index import TextKeys, query_grams, searchable
from recorder.writer import session_header

WORKLOADS = ("office", "callcenter")
STARTED_EPOCH = 1796601600.0  # 2026-12-07 00:00 UTC


def capture_journal(capture: Capture, path: Path, workload: str) -> Path:
    """The journal the gateway would have written for a viewer that received ``capture``."""
    header = session_header(
        session_id="20261207T000000Z-0cc0be0c", user="bench", source="127.0.0.1", target=f"bench-{workload}",
        started_epoch=STARTED_EPOCH, width=capture.width, height=capture.height,
        pixel_format=capture.pixel_format, desktop_name=capture.server_init.name, policy="bench",
        record_input="counts", clipboard="off", groups=frozenset())
    opening = (SetPixelFormat(RGBX8888).encode() + SetEncodings(capture.encodings).encode()
               + FramebufferUpdateRequest(False, 0, 0, capture.width, capture.height).encode())
    records = [encode_record(RecordKind.HEADER, 0, encode_json(header.to_json())),
               encode_record(RecordKind.CLIENT_DATA, 0, opening)]
    last_us = 0
    for message in capture.messages:
        last_us = max(last_us, round(message.at * 1e6))
        records.append(encode_record(RecordKind.SERVER_DATA, last_us, message.data))
    end = SessionEnd(ended_epoch=STARTED_EPOCH + last_us / 1e6, reason="closed")
    records.append(encode_record(RecordKind.END, last_us, encode_json(end.to_json())))
    path.write_bytes(JOURNAL_MAGIC + b"".join(records))
    return path


@dataclass(frozen=True, slots=True)
class IndexCost:
    lines_bytes: int  # sealed lines and findings
    tokens: int  # rows of the blind index
    tokens_bytes: int
    search_cpu: float  # seconds to find the most frequent pair of characters
    miss_cpu: float  # seconds to find a text that was never on screen


async def index_cost(journal: Path, found: RecordingText, directory: Path) -> IndexCost:
    """How much a fresh SQLite index grows when the rows of ``found`` are stored in it (sealed, and its
    tokens), and the CPU seconds a search by text then spends on them."""
    database = directory / "index.db"
    database.unlink(missing_ok=True)
    keys = TextKeys.derive(secrets.token_bytes(32), RecordingKeyring.load(directory / "keys"))
    store = await Store.open(f"sqlite:///{database}")
    try:
        index = RecordingIndex(store, keys)
        summary = await asyncio.to_thread(summarize_journal, journal)
        await index.add(summary, None, "bench")
        before = await _database_bytes(store, database)
        await index.texts.replace(summary.id, found)
        grown = await _database_bytes(store, database) - before
        pairs = Counter(pair for line in found.lines for pair in query_grams(searchable(line.text)) if len(pair) == 2)
        [(common, _)] = pairs.most_common(1)
        started = time.process_time()
        assert (await index.texts.moments([summary.id], common))[summary.id]
        search_cpu = time.process_time() - started
        assert not (await index.texts.moments([summary.id], "not on any screen"))[summary.id]
        miss_cpu = time.process_time() - started - search_cpu
        async with store.read() as connection:
            tokens = int(await connection.scalar(select(func.count()).select_from(text_tokens)) or 0)
            # the table and its indexes (SQLite's dbstat: the pages each one uses)
            tokens_bytes = int(await connection.scalar(text(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE '%text_tokens%'")) or 0)
        return IndexCost(grown - tokens_bytes, tokens, tokens_bytes, search_cpu, miss_cpu)
    finally:
        await store.close()


async def _database_bytes(store: Store, database: Path) -> int:
    async with store.transaction() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return database.stat().st_size


@dataclass(frozen=True, slots=True)
class Measured:
    workload: str
    duration: float
    per_core: list[float]
    wall: list[float]
    regions: int
    lines: int
    findings: int
    index_bytes_per_hour: float
    text_bytes_per_hour: float
    tokens_per_hour: float
    tokens_bytes_per_hour: float
    search_cpu_per_hour: float
    miss_cpu_per_hour: float


async def measure(capture_path: Path, workload: str, runs: int, options: ScreenTextOptions) -> Measured:
    capture = read_capture(capture_path)
    with tempfile.TemporaryDirectory(prefix="deskgate-bench-ocr-") as tmp:
        journal = capture_journal(capture, Path(tmp) / "bench.dgj", workload)
        results = [await asyncio.to_thread(read_recording_text, journal, options) for _ in range(runs)]
        found = results[-1]
        per_hour = 3600 / found.duration
        cost = await index_cost(journal, found, Path(tmp))
    text_bytes = sum(len(line.text.encode()) for line in found.lines)
    return Measured(workload, found.duration, [r.duration / r.cpu_seconds for r in results],
                    [r.duration / r.wall_seconds for r in results], found.regions, len(found.lines),
                    len(found.findings), cost.lines_bytes * per_hour, text_bytes * per_hour, cost.tokens * per_hour,
                    cost.tokens_bytes * per_hour, cost.search_cpu * per_hour, cost.miss_cpu * per_hour)


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}–{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=CAPTURE_DIR, help=f"capture directory (default {CAPTURE_DIR})")
    parser.add_argument("--encoding", default="zrle", help="which capture of each workload (default zrle)")
    parser.add_argument("--runs", type=int, default=3, help="reads of each workload (default 3)")
    parser.add_argument("--languages", default="jpn+eng", help="Tesseract's languages (default jpn+eng)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between looks (ocr.interval, default 1)")
    args = parser.parse_args()
    options = ScreenTextOptions(digest_key=digest_key(bytes(32)), languages=args.languages, interval=args.interval)
    rows = []
    for workload in WORKLOADS:
        path = args.captures / f"{workload}-{args.encoding}.rfbcap.xz"
        if not path.is_file():
            print(f"{workload}: no capture at {path}; skipped")
            continue
        rows.append(asyncio.run(measure(path, workload, args.runs, options)))
    if not rows:
        raise SystemExit(f"no capture in {args.captures}: record one with python -m bench.workload")
    print("| workload | session s | × realtime per core | wall × realtime | regions | lines | findings "
          "| index bytes per operator-hour | text bytes per operator-hour | tokens (bytes) per operator-hour "
          "| search CPU per operator-hour: frequent pair, never shown |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.workload} | {row.duration:.1f} | {_cell(row.per_core)} | {_cell(row.wall)} | {row.regions} "
              f"| {row.lines} | {row.findings} | {row.index_bytes_per_hour / 1e3:.0f} kB "
              f"| {row.text_bytes_per_hour / 1e3:.0f} kB | {row.tokens_per_hour:.0f} ({row.tokens_bytes_per_hour / 1e3:.0f} kB) "
              f"| {row.search_cpu_per_hour * 1e3:.0f} ms, {row.miss_cpu_per_hour * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
