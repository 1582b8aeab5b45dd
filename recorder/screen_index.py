"""One recording's searchable text and personal data: what :func:`read_recording_text` gives the index.

For a desktop recording it follows :func:`~recorder.screen_changes.screen_changes` (the changed
regions, at most once per ``interval``), reads them with :class:`~recorder.ocr.Tesseract` in
batches, and keeps each line of text once while it stays on screen: a line read again where
nothing changed is not stored again; once its pixels change, the same text seen later is a new
moment. Personal data (:mod:`recorder.pii`) in a line is replaced by ``[kind]`` before the line
is kept, and becomes a :class:`~recorder.pii.PiiFinding` with its region, visible from the first
change that may have drawn it to the look after the change that took it away. The typed text
(:mod:`recorder.typed_text`) is searched for personal data too; typed findings have no region.

For a terminal recording its output is the text: each line (escape sequences removed, see
:mod:`recorder.terminal_text`) is kept with the time its first character was written, and personal
data in it is found like on a desktop (without a region).

Blocking and CPU-bound: run it in a worker process (:class:`~recorder.screen_jobs.ScreenTextPool`).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from recorder.errors import DecodeError
from recorder.journal import JournalReader, RecordKind
from recorder.ocr import OcrLine, Tesseract, normalize_text
from recorder.pii import PiiDetector, PiiFinding, PiiPattern, nfkc, redact
from recorder.records import TERMINAL_PROTOCOL, SessionHeader
from recorder.screen_changes import Box, BoxLimits, ScreenChange, screen_changes
from recorder.terminal_text import ScreenText
from recorder.typed_text import read_typed_text

#: Regions read in one run of Tesseract at most (its start-up is paid once per run).
BATCH_REGIONS = 48
#: Lines kept per recording at most, and characters per line: a bound on the index.
MAX_LINES = 100_000
MAX_LINE_CHARS = 500
#: Letters, digits or CJK characters a line needs to be kept: a lone mark is a border or an icon read as text.
MIN_LINE_CHARS = 2


@dataclass(frozen=True, slots=True)
class ScreenTextOptions:
    """How a recording is read: languages, how often, and what is looked for; the digest key stays in memory."""

    digest_key: bytes = field(repr=False)
    languages: str = "jpn+eng"
    interval: float = 1.0
    kinds: tuple[str, ...] = ("card", "my_number", "phone_jp")
    patterns: tuple[tuple[str, str], ...] = ()  # (kind, regular expression) from the config
    limits: BoxLimits = BoxLimits()
    batch_regions: int = BATCH_REGIONS
    max_lines: int = MAX_LINES
    ocr: bool = True  # False: only the typed text is searched for personal data
    tesseract: str = "tesseract"  # the command


@dataclass(frozen=True, slots=True)
class ScreenLine:
    """A line of text on screen at ``t`` seconds, in ``box``; personal data already replaced."""

    t: float
    box: Box | None
    text: str


@dataclass(frozen=True, slots=True, eq=False)
class RecordingText:
    """What reading one recording found, and what it cost."""

    lines: list[ScreenLine]
    findings: list[PiiFinding]
    duration: float  # seconds of session read
    wall_seconds: float
    cpu_seconds: float  # this process and its Tesseract runs
    regions: int  # regions read by OCR
    error: str | None = None  # why reading stopped early


def read_recording_text(journal: Path, options: ScreenTextOptions) -> RecordingText:
    """Read ``journal``'s screen text (desktops, by OCR) and personal data (screen and typed text)."""
    started_wall, started_cpu = time.perf_counter(), _cpu_seconds()
    detector = PiiDetector(options.digest_key, kinds=options.kinds,
                           patterns=[PiiPattern.configured(kind, pattern) for kind, pattern in options.patterns])
    reader = JournalReader(journal)
    header = SessionHeader.from_json(reader.header)
    for _ in reader:  # to its end: findings still on screen then are visible until it
        pass
    duration = reader.last_offset_us / 1e6
    collector = _Collector(detector, options.max_lines)
    error = None
    if header.protocol == TERMINAL_PROTOCOL:
        collector.terminal(journal)
    elif options.ocr:
        error = _read_screen(journal, options, collector)
        duration = max(duration, collector.last_t)
    collector.close_all(duration)
    typed = read_typed_text(journal)
    for entry in typed.entries:
        for match in detector.find(nfkc(entry.text)):
            collector.findings.append(PiiFinding(match.kind, match.digest, entry.t, entry.end, None))
    return RecordingText(collector.lines, collector.findings, duration, time.perf_counter() - started_wall,
                         _cpu_seconds() - started_cpu, collector.regions, error)


def _read_screen(journal: Path, options: ScreenTextOptions, collector: _Collector) -> str | None:
    """Read the changes in batches; the reason reading stopped early, or None."""
    tesseract = Tesseract(options.languages, binary=options.tesseract)
    batch: list[ScreenChange] = []
    try:
        for change in screen_changes(journal, interval=options.interval, limits=options.limits):
            batch.append(change)
            if sum(len(pending.boxes) for pending in batch) >= options.batch_regions:
                collector.add(batch, tesseract)
                batch = []
    except DecodeError as exc:
        collector.add(batch, tesseract)
        return f"the screen could be read only up to {collector.last_t:.1f} s: {exc}"
    collector.add(batch, tesseract)
    return None


@dataclass
class _Open:
    """Something kept while it stays on screen: a line's text, or a finding's digest, in its box."""

    key: str
    box: Box
    index: int  # into the collector's list


class _Collector:
    """Keeps lines and findings once per appearance, and times each finding's disappearance."""

    def __init__(self, detector: PiiDetector, max_lines: int) -> None:
        self._detector = detector
        self._max_lines = max_lines
        self.lines: list[ScreenLine] = []
        self.findings: list[PiiFinding] = []
        self._open_lines: list[_Open] = []
        self._open_findings: list[_Open] = []
        self.regions = 0
        self.last_t = 0.0

    def add(self, changes: list[ScreenChange], tesseract: Tesseract) -> None:
        """Read the regions of ``changes`` (one Tesseract run) and take their lines, change by change."""
        crops = [(change.frame, box) for change in changes for box in change.boxes]
        if not crops:
            return
        read = tesseract.read(crops)
        self.regions += len(crops)
        position = 0
        for change in changes:
            self._closed_by(change)
            for lines in read[position:position + len(change.boxes)]:
                for line in lines:
                    self._line(change, line)
            position += len(change.boxes)
            self.last_t = change.t

    def terminal(self, journal: Path) -> None:
        """A terminal's output as lines, each at the time its first character was written; no boxes."""
        screen, starts = ScreenText(), []  # (offset in the written text, time) of each output record
        for record in JournalReader(journal):
            if record.kind == RecordKind.SERVER_DATA and not screen.full:
                starts.append((screen.size, record.offset_us / 1e6))
                screen.feed(record.payload)
        offset, record_index = 0, 0
        for raw in screen.written().split("\n"):
            while record_index + 1 < len(starts) and starts[record_index + 1][0] <= offset:
                record_index += 1
            t = starts[record_index][1] if starts else 0.0
            offset += len(raw) + 1
            matches = self._detector.find(nfkc(raw))
            for match in matches:
                self.findings.append(PiiFinding(match.kind, match.digest, t, t, None))
            text = normalize_text(redact(nfkc(raw), matches))[:MAX_LINE_CHARS]
            if sum(char.isalnum() for char in text) >= MIN_LINE_CHARS and len(self.lines) < self._max_lines:
                self.lines.append(ScreenLine(t, None, text))

    def close_all(self, end: float) -> None:
        for still in self._open_findings:
            self.findings[still.index] = _until(self.findings[still.index], max(end, self.findings[still.index].start))
        self._open_findings.clear()
        self._open_lines.clear()

    def _closed_by(self, change: ScreenChange) -> None:
        self._open_lines = [line for line in self._open_lines if not change.touches(line.box)]
        still = []
        for finding in self._open_findings:
            if change.touches(finding.box):
                self.findings[finding.index] = _until(self.findings[finding.index], change.t)
            else:
                still.append(finding)
        self._open_findings = still

    def _line(self, change: ScreenChange, line: OcrLine) -> None:
        words = [nfkc(word.text) for word in line.words]
        spans, position = [], 0
        for word in words:
            spans.append((position, position + len(word)))
            position += len(word) + 1
        joined = " ".join(words)
        matches = self._detector.find(joined)
        for match in matches:
            boxes = [word.box for word, (start, end) in zip(line.words, spans, strict=True)
                     if start < match.end and match.start < end]
            region = boxes[0]
            for box in boxes[1:]:
                region = region.union(box)
            if not _is_open(self._open_findings, match.digest, region):
                self._open_findings.append(_Open(match.digest, region, len(self.findings)))
                self.findings.append(PiiFinding(match.kind, match.digest, change.since, change.t,
                                                region.as_region()))
        text = normalize_text(redact(joined, matches))[:MAX_LINE_CHARS]
        box = line.box
        if sum(char.isalnum() for char in text) < MIN_LINE_CHARS or _is_open(self._open_lines, text, box) \
                or len(self.lines) >= self._max_lines:
            return
        self._open_lines.append(_Open(text, box, len(self.lines)))
        self.lines.append(ScreenLine(change.t, box, text))


def _is_open(opened: list[_Open], key: str, box: Box) -> bool:
    return any(still.key == key and still.box.overlaps(box) for still in opened)


def _until(finding: PiiFinding, end: float) -> PiiFinding:
    return PiiFinding(finding.kind, finding.digest, finding.start, end, finding.region)


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the Tesseract runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime
