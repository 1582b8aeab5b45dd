"""Text on a desktop's picture, read by Tesseract (Debian's ``tesseract-ocr`` with ``-jpn`` and ``-eng``).

:class:`Tesseract` runs the ``tesseract`` command once per batch of crops: each crop is written as a
PPM image (framed by a margin of its own background colour, which Tesseract reads much better than
a crop cut at the edge of a glyph), the batch is listed in a file, and the TSV output (one row per
word, with its page — the crop — and box) is grouped into lines. One process per batch, not per
crop: loading the Japanese model takes most of a second. Each crop is read as one block of text
(``--psm 6``): a changed region is mostly a field, a line or a window's text, and Tesseract's own
page layout analysis split small Japanese text wrongly where a block read it right. ``OMP_THREAD_LIMIT=1`` keeps each run on
one core, so a pool of workers is what decides how many cores OCR takes.

The command line rather than a binding (pytesseract, tesserocr): pytesseract is itself a wrapper
around the same command that writes one temporary file per image, and tesserocr needs to be compiled
against libtesseract; the command with a batch list is one process per batch and needs nothing more
than the Debian packages.

Tesseract writes Japanese with a space between characters (``山 田 太 郎``):
:func:`normalize_text` removes spaces between CJK characters and maps full-width forms to ASCII
(NFKC), for the text stored and for the text searched alike.

Blocking (a child process): run it in a worker process.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorder.errors import RecordingError
from recorder.framebuffer import RGBArray
from recorder.screen_changes import Box

DEFAULT_LANGUAGES = "jpn+eng"
#: Seconds one batch may take before the run is abandoned.
DEFAULT_TIMEOUT = 300.0
#: Words Tesseract is less sure of than this (0-100) are dropped: mostly noise read from icons and borders.
MIN_CONFIDENCE = 30.0
#: Background pixels framing each crop.
MARGIN = 10
#: Rows and columns this long, and foreground over this share of it, are rules (borders, grid lines), not text.
RULE_LENGTH = 24
RULE_SHARE = 0.8
LANGUAGE = re.compile(r"[a-z_]{3,16}(\+[a-z_]{3,16}){0,7}")
_CJK = (r"\u2e80-\u2fdf\u3000-\u303f\u3040-\u309f\u30a0-\u30ff\u3100-\u312f\u31f0-\u31ff\u3400-\u4dbf"
        r"\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f")
_CJK_SPACE = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")


class OcrError(RecordingError):
    """Tesseract could not be run, or failed on an image."""


def normalize_text(text: str) -> str:
    """NFKC, runs of white space as one space, and no space between two CJK characters."""
    return _CJK_SPACE.sub("", _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip())


def tesseract_languages(binary: str = "tesseract") -> frozenset[str] | None:
    """The languages the installed Tesseract reads; None when it is not installed (or does not answer)."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        listed = subprocess.run([path, "--list-langs"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(line.strip() for line in listed.stdout.splitlines()[1:] if line.strip())


@dataclass(frozen=True, slots=True)
class OcrWord:
    """A word read, with its box on the desktop."""

    text: str
    box: Box


@dataclass(frozen=True, slots=True)
class OcrLine:
    """A line of words, left to right, as Tesseract found them."""

    words: tuple[OcrWord, ...]

    @property
    def box(self) -> Box:
        box = self.words[0].box
        for word in self.words[1:]:
            box = box.union(word.box)
        return box


class Tesseract:
    """The ``tesseract`` command reading ``languages`` (e.g. ``jpn+eng``)."""

    def __init__(self, languages: str = DEFAULT_LANGUAGES, *, binary: str = "tesseract",
                 timeout: float = DEFAULT_TIMEOUT, min_confidence: float = MIN_CONFIDENCE) -> None:
        if not LANGUAGE.fullmatch(languages):
            raise ValueError(f"{languages!r} is not a list of Tesseract languages; use e.g. jpn+eng")
        self.languages = languages
        self.binary = binary
        self.timeout = timeout
        self.min_confidence = min_confidence

    def read(self, crops: Sequence[tuple[RGBArray, Box]]) -> list[list[OcrLine]]:
        """The lines of text in each ``box`` of its picture, with boxes on the desktop, read in one run."""
        if not crops:
            return []
        boxes = [box for _, box in crops]
        with tempfile.TemporaryDirectory(prefix="deskgate-ocr-") as directory:
            listing = Path(directory) / "crops.txt"
            names = []
            for number, (frame, box) in enumerate(crops):
                name = Path(directory) / f"{number}.ppm"
                name.write_bytes(_ppm(_framed(frame[box.y:box.bottom, box.x:box.right])))
                names.append(str(name))
            listing.write_text("\n".join(names) + "\n")
            command = [self.binary, str(listing), "stdout", "-l", self.languages, "--psm", "6", "tsv"]
            try:
                done = subprocess.run(command, capture_output=True, timeout=self.timeout, check=False,
                                      env={**os.environ, "OMP_THREAD_LIMIT": "1"})
            except FileNotFoundError:
                raise OcrError(f"{self.binary} is not installed; install tesseract-ocr, tesseract-ocr-jpn and "
                               "tesseract-ocr-eng, or set ocr.enabled: off") from None
            except subprocess.TimeoutExpired:
                raise OcrError(f"tesseract took longer than {self.timeout:.0f} s on {len(crops)} regions") from None
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise OcrError(f"tesseract failed (exit {done.returncode}): {reason[-1] if reason else 'no message'}")
        return _lines(done.stdout.decode(errors="replace"), boxes, self.min_confidence)


def _framed(crop: RGBArray) -> RGBArray:
    """``crop`` inside a margin of its background (the commonest colour of its edge), without rules.

    A rule is a row or column of at least :data:`RULE_LENGTH` pixels that is nearly all foreground: a
    window's border or a table's grid line, which Tesseract would read as part of the glyph beside it.
    """
    edge = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    colours, counts = np.unique(edge, axis=0, return_counts=True)
    background = colours[int(counts.argmax())]
    height, width = crop.shape[:2]
    framed = np.empty((height + 2 * MARGIN, width + 2 * MARGIN, 3), np.uint8)
    framed[:] = background
    inner = framed[MARGIN:MARGIN + height, MARGIN:MARGIN + width]
    inner[:] = crop
    foreground = (crop != background).any(axis=2)
    if width >= RULE_LENGTH:
        inner[foreground.mean(axis=1) > RULE_SHARE] = background
    if height >= RULE_LENGTH:
        inner[:, foreground.mean(axis=0) > RULE_SHARE] = background
    return framed


def _ppm(image: RGBArray) -> bytes:
    height, width = image.shape[:2]
    return b"P6 %d %d 255\n" % (width, height) + np.ascontiguousarray(image).tobytes()


def _lines(tsv: str, boxes: Sequence[Box], min_confidence: float) -> list[list[OcrLine]]:
    """Tesseract's TSV (level 5 rows are words) as each crop's lines, their boxes moved to the desktop."""
    lines: dict[tuple[int, int, int, int], list[OcrWord]] = {}
    for row in csv.DictReader(tsv.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
        try:
            if row["level"] != "5" or float(row["conf"]) < min_confidence or not (row["text"] or "").strip():
                continue
            page = int(row["page_num"]) - 1
            if not 0 <= page < len(boxes):
                continue
            crop = boxes[page]
            left, top = int(row["left"]) - MARGIN, int(row["top"]) - MARGIN
            width, height = int(row["width"]), int(row["height"])
        except (KeyError, ValueError, IndexError, TypeError):
            continue  # a row Tesseract wrote that is not a word
        x, y = crop.x + max(0, left), crop.y + max(0, top)
        box = Box(x, y, max(1, min(crop.right, x + width) - x), max(1, min(crop.bottom, y + height) - y))
        key = (page, int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        lines.setdefault(key, []).append(OcrWord(row["text"].strip(), box))
    per_crop: list[list[OcrLine]] = [[] for _ in boxes]
    for (page, *_), words in lines.items():
        per_crop[page].append(OcrLine(tuple(words)))
    return per_crop
