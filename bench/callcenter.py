"""The call-center workload: an operator working calls in a CRM form, scripted on a real Xvnc desktop.

The CRM is a local web page (``bench/pages/crm.html``: a customer search, a record form with
Japanese names and addresses, a scrollable call history of 120 rows) in Debian's Chromium in
kiosk mode on the desktop. Per call, :class:`CallCenterScript` does what an operator does:
listens (nothing on the screen moves but the caret and the clock), looks the customer up by
phone number, reads the record, tabs through the fields, corrects the name's reading and
the address in Japanese, scrolls the call history, types a note mixing Japanese and ASCII,
saves, and moves on to the next record. xdotool types Japanese by mapping each character's
Unicode keysym (0x01000000 + code point) to a spare keycode, as an RFB client's KeyEvent
would carry it. Typing runs at about 7 characters a second (a fast operator). A call lasts
about 75 s, two thirds of it listening and thinking: shorter than a real one (3 to 6 min, most of
the extra time listening, which only the clock and the caret show), so per-hour figures from
it lean high.

The script measures its own mix — seconds spent typing, navigating, scrolling and thinking
or listening, and the keys typed — in :attr:`CallCenterScript.mix`, which the capture keeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.demo import XvncDesktop

CHROMIUM = "/usr/bin/chromium"
CRM_PAGE = Path(__file__).resolve().parent / "pages" / "crm.html"
_X_CLIENT_TIMEOUT = 10.0
_BROWSER_TIMEOUT = 60.0
TYPING_DELAY_MS = 140  # about 7 characters a second
#: Per call: (phone number typed into the search, new reading of the name, new address, note).
CALLS = (
    ("5503", "サトウ タロウ", "大阪府大阪市北区梅田1-2-3 グランフロント5階",
     "請求書の重複について問い合わせ。Invoice 2024-118: one line is a duplicate; credit note issued."),
    ("5517", "タナカ ハナコ", "神奈川県横浜市西区みなとみらい2-3-1",
     "住所変更の依頼。本人確認済み (DOB, phone). 次回請求から新住所へ送付。"),
)


class CallCenterScript:
    """Calls worked in the CRM on an X display; every step is bounded in time. See the module docstring."""

    def __init__(self, desktop: XvncDesktop, workdir: Path) -> None:
        self._env = {**os.environ, **desktop.env, "LANG": "ja_JP.UTF-8"}
        self._workdir = workdir
        self._browser: subprocess.Popen[bytes] | None = None
        self.mix: dict[str, float] = defaultdict(float)

    def prepare(self) -> None:
        """Start the CRM in Chromium, full screen, and wait until it shows (before the capture starts)."""
        profile = Path(tempfile.mkdtemp(prefix="crm-profile-", dir=self._workdir))
        self._browser = subprocess.Popen(
            [CHROMIUM, "--no-sandbox", "--kiosk", f"--user-data-dir={profile}", "--no-first-run",
             "--password-store=basic", "--disable-gpu", "--noerrdialogs", "--disable-infobars",
             "--disable-features=Translate,MediaRouter", "--window-position=0,0", "--window-size=1280,800",
             CRM_PAGE.as_uri()],
            env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + _BROWSER_TIMEOUT
        while True:  # a search fails when a window it walks goes away meanwhile (Chromium's start-up windows)
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "chromium"], env=self._env,
                                   timeout=_X_CLIENT_TIMEOUT, capture_output=True)
            if found.returncode == 0 and found.stdout.strip():
                break
            if time.monotonic() > deadline or self._browser.poll() is not None:
                raise RuntimeError(f"Chromium showed no window within {_BROWSER_TIMEOUT:.0f} s")
            time.sleep(0.5)
        time.sleep(4.0)  # the page's fonts and first layout

    def run(self) -> None:
        for phone, kana, address, note in CALLS:
            self._call(phone, kana, address, note)

    def close(self) -> None:
        if self._browser is not None and self._browser.poll() is None:
            os.killpg(self._browser.pid, 15)
            try:
                self._browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._browser.pid, 9)
                self._browser.wait(timeout=10)
        self._browser = None

    # -- one call

    def _call(self, phone: str, kana: str, address: str, note: str) -> None:
        self._think(15.0)  # greeting, listening to the customer
        self._keys("F2")
        self._type(phone)
        self._keys("Return")
        self._think(5.0)  # reading the record, asking for the change
        for _ in range(2):  # phone → name → reading
            self._keys("Tab")
            self._think(0.6)
        self._keys("ctrl+a")
        self._type(kana)
        self._keys("Tab", "Tab")  # postcode → address
        self._keys("ctrl+a")
        self._type(address)
        self._think(8.0)  # confirming the address with the customer
        self._keys("F4")
        for _ in range(5):
            self._scroll("Next")
            self._think(1.2)
        for _ in range(6):
            self._scroll("Up")
            self._think(0.25)
        self._think(12.0)  # listening to the next question
        self._keys("F6")
        self._type(note)
        self._keys("ctrl+s")
        self._think(6.0)  # wrapping up
        self._keys("F8")
        self._think(1.5)

    # -- measured steps

    @contextmanager
    def _timed(self, activity: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.mix[f"{activity}_seconds"] += time.monotonic() - started

    def _think(self, seconds: float) -> None:
        with self._timed("idle"):
            time.sleep(seconds)

    def _type(self, text: str) -> None:
        with self._timed("typing"):
            subprocess.run(["xdotool", "type", "--delay", str(TYPING_DELAY_MS), "--", text], env=self._env,
                           check=True, timeout=_X_CLIENT_TIMEOUT + len(text) * TYPING_DELAY_MS / 1000,
                           stdout=subprocess.DEVNULL)
        self.mix["ascii_characters"] += sum(1 for char in text if char.isascii())
        self.mix["japanese_characters"] += sum(1 for char in text if not char.isascii())

    def _keys(self, *keys: str) -> None:
        with self._timed("navigation"):
            self._xdotool("key", "--delay", "120", *keys)
        self.mix["navigation_keys"] += len(keys)

    def _scroll(self, key: str) -> None:
        with self._timed("scrolling"):
            self._xdotool("key", key)
        self.mix["scroll_keys"] += 1

    def _xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self._env, check=True, timeout=_X_CLIENT_TIMEOUT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def available() -> bool:
    """Whether this machine can run the workload (Chromium and xdotool installed)."""
    return Path(CHROMIUM).exists() and shutil.which("xdotool") is not None
