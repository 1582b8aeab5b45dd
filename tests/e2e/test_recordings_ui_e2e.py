"""A supervisor reviews a recording in a real browser: search, open, speed up, jump to an event, play;
read the session's wall-clock time and — after giving a reason — what was typed, jump from a typed line, bookmark a moment,
export a clip; skip idle stretches; see the poster before playing and grouped markers.

The gateway is the real web application (``create_app``) with the real recording routes, index
and render workers; the recordings are index rows with a real H.264 MP4 (so the browser's own
decoder, seeking over HTTP Range, and playback rate are what is tested) and a real journal
holding the operator's key events.
"""

from __future__ import annotations

import asyncio
import io
import re
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect

from auth.local import LocalUserStore
from gateway.config import load_config
from gateway.rfb.messages import KeyEvent
from gateway.web.app import create_app
from gateway.web.keys import RECORDING_INDEX
from recorder.index import RecordingIndex, VideoState
from recorder.ocr import normalize_text
from recorder.records import SessionEvent
from recorder.screen_changes import Box
from recorder.screen_index import RecordingText, ScreenLine
from recorder.summary import ActivityBucket, RecordingSummary, TimelineEvent
from recorder.video import write_jpeg
from tests.conftest import User
from tests.recorder.test_index import client, end_record, journal_header, write_journal

pytestmark = pytest.mark.e2e

VIDEO_SECONDS = 20
# The site (ui.timezone) is in New York: 03:30 UTC on the 25th is 22:30 on the 24th there, so
# searching the 24th only finds this recording if the page turns the site's dates into UTC instants.
TIMEZONE = "America/New_York"
STARTED = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
LOCAL_DAY = "2026-11-24"
RECORDING_ID = "20261125T033000Z-5e551011"
EVENTS = [
    TimelineEvent(0.0, SessionEvent.session_start()),
    TimelineEvent(6.0, SessionEvent.clipboard_blocked("to_remote", 42)),
    TimelineEvent(12.5, SessionEvent.resize(1280, 800)),
    TimelineEvent(20.0, SessionEvent.session_end("user disconnected")),
]
# Plays from where the video is until 4 s later; returns [video seconds advanced, wall seconds taken].
PLAY_FOUR_SECONDS = """async () => {
  const video = document.getElementById('video');
  const [start, wallStart] = [video.currentTime, performance.now()];
  await video.play();
  while (video.currentTime < start + 4) await new Promise((resolve) => setTimeout(resolve, 20));
  return [video.currentTime - start, (performance.now() - wallStart) / 1000];
}"""
ACTIVITY_PIXELS = """() => {
  const canvas = document.getElementById('activity');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
  return drawn;
}"""
ACTIVITY = [ActivityBucket(0.0, 12, 1), ActivityBucket(5.0, 30, 0), ActivityBucket(10.0, 3, 4)]
# What the operator typed, into the journal: "hi" and Return at 3 s, an order number at 14 s.
TYPED = [(3.0, 0x68), (3.25, 0x69), (3.5, 0xFF0D), (14.0, 0x34), (14.1, 0x37), (14.2, 0x31), (14.3, 0x31)]
# A second recording, for idle skipping and markers: input at the start and from 15 s, nothing between.
REVIEW_ID = "20261125T050000Z-1d1e1d1e"
REVIEW_STARTED = datetime(2026, 11, 25, 5, tzinfo=UTC)
REVIEW_EVENTS = [TimelineEvent(6.0, SessionEvent.idle_warning(60)), TimelineEvent(6.05, SessionEvent.resize(800, 600)),
                 TimelineEvent(6.1, SessionEvent.clipboard_blocked("to_local", 3))]
REVIEW_ACTIVITY = [ActivityBucket(0.0, 5, 0, 100), ActivityBucket(15.0, 5, 0, 100)]
POSTER_COLOUR = (230, 120, 20)  # orange: nothing like the video's blue frames
# What OCR read off the recording's screen: a customer's name appears at 9 s, again at 16 s.
SCREEN_TEXT = RecordingText(
    lines=[ScreenLine(2.0, Box(10, 10, 300, 20), "受付 customer 4711"),
           ScreenLine(9.0, Box(10, 40, 300, 20), normalize_text("お客様 山田 太郎 様")),
           ScreenLine(16.0, Box(10, 70, 300, 20), normalize_text("山田 太郎 様 ご住所"))],
    findings=[], duration=VIDEO_SECONDS, wall_seconds=1.0, cpu_seconds=1.0, regions=3)


@dataclass
class RecordingsGateway:
    url: str
    users: dict[str, User]


def write_test_video(path: Path, seconds: int = VIDEO_SECONDS, fps: int = 5) -> None:
    """A small H.264 MP4 (yuv420p, keyframe every second, ``+faststart``): a bar sweeping left to right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = 320, 240
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(fps), "preset": "ultrafast"}
        for index in range(seconds * fps):
            image = np.full((height, width, 3), (32, 64, 160), np.uint8)
            x = index * (width - 16) // (seconds * fps)
            image[100:140, x:x + 16] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def summary(recording_id: str, user: str, started: datetime, duration: float, end_reason: str,
            recordings: Path, events: list[TimelineEvent] | None = None,
            activity: list[ActivityBucket] | None = None) -> RecordingSummary:
    activity = activity or []
    return RecordingSummary(
        id=recording_id, user=user, source="127.0.0.1", target="desk-01", protocol="vnc", started=started,
        ended=started + timedelta(seconds=duration), duration=duration, end_reason=end_reason, bytes=4096,
        keys=sum(bucket.keys for bucket in activity), clicks=sum(bucket.clicks for bucket in activity),
        path=str(recordings / started.strftime("%Y/%m/%d") / f"{recording_id}.dgj"),
        events=events or [], activity=activity,
    )


def write_config(workdir: Path) -> Path:
    config = workdir / "deskgate.yaml"
    config.write_text(textwrap.dedent("""\
        listen: {http: "127.0.0.1:0", metrics: "127.0.0.1:0"}
        ui: {timezone: America/New_York}
        auth:
          local: {users_file: users.yaml}
        storage: {recordings: recordings, database: "sqlite:///deskgate.db"}
        targets:
          desk-01: {protocol: vnc, host: 127.0.0.1, port: 1}
        policies:
          - name: supervisors
            groups: [supervisors]
            from: ["127.0.0.0/8"]
            targets: ["desk-*"]
            recordings: all
            unmask: true
          - name: operators
            groups: [operators]
            from: ["127.0.0.0/8"]
            targets: ["desk-*"]
        """))
    return config


async def index_recordings(index: RecordingIndex, recordings: Path) -> None:
    """The recordings under test, plus neighbours the search must leave out."""
    await index.add(summary(RECORDING_ID, "alice", STARTED, VIDEO_SECONDS, "user disconnected", recordings,
                            EVENTS, ACTIVITY), sha256=None, node="test")
    keys = [client(t, KeyEvent(True, keysym), KeyEvent(False, keysym)) for t, keysym in TYPED]
    write_journal(recordings, [*keys, end_record(VIDEO_SECONDS, started=STARTED)],
                  journal_header(RECORDING_ID, STARTED, source="127.0.0.1"))
    video = recordings / STARTED.strftime("%Y/%m/%d") / f"{RECORDING_ID}.mp4"
    write_test_video(video)
    assert await index.set_video(RECORDING_ID, VideoState.READY, video)
    await index.texts.replace(RECORDING_ID, SCREEN_TEXT)  # as the ocr job stores it: sealed, with its tokens
    await index.add(summary(REVIEW_ID, "carol", REVIEW_STARTED, VIDEO_SECONDS, "user disconnected", recordings,
                            REVIEW_EVENTS, REVIEW_ACTIVITY), sha256=None, node="test")
    review_video = recordings / REVIEW_STARTED.strftime("%Y/%m/%d") / f"{REVIEW_ID}.mp4"
    write_test_video(review_video)
    write_jpeg(np.full((240, 320, 3), POSTER_COLOUR, np.uint8), review_video.with_suffix(".jpg"))
    assert await index.set_video(REVIEW_ID, VideoState.READY, review_video)
    # Same user, the local days before and after; another user, same local day (video still rendering).
    await index.add(summary("20261124T020000Z-0000d0d0", "alice", STARTED - timedelta(hours=25.5), 120,
                            "user disconnected", recordings), sha256=None, node="test")
    await index.add(summary("20261125T150000Z-0000a11c", "alice", STARTED + timedelta(hours=11.5), 300,
                            "idle timeout", recordings), sha256=None, node="test")
    await index.add(summary("20261125T040000Z-00000b0b", "bob", STARTED + timedelta(minutes=30), 60,
                            "user disconnected", recordings), sha256=None, node="test")
    assert await index.set_video("20261125T040000Z-00000b0b", VideoState.PENDING)


@pytest.fixture
async def recordings_gateway(tmp_path: Path) -> AsyncIterator[RecordingsGateway]:
    config = load_config(write_config(tmp_path))
    store = LocalUserStore(tmp_path / "users.yaml")
    users = {}
    for name, groups in (("sam", ("supervisors",)), ("alice", ("operators",))):
        password = f"{name}-correct-horse-battery"
        users[name] = User(name, password, store.add_user(name, password, list(groups)), groups)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()  # opens the database
    try:
        await index_recordings(app[RECORDING_INDEX], config.storage.recordings)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield RecordingsGateway(f"http://127.0.0.1:{runner.addresses[0][1]}", users)
    finally:
        await runner.cleanup()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=TIMEZONE,
                                        locale="en-US")
    try:
        yield context
    finally:
        await context.close()


async def sign_in(page: Page, gateway: RecordingsGateway, name: str) -> None:
    user = gateway.users[name]
    await page.goto(f"{gateway.url}/login")
    await page.fill("#username", user.name)
    await page.fill("#password", user.password)
    await page.fill("#totp", user.code())
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{gateway.url}/")


async def wait_for_time_near(page: Page, seconds: float) -> None:
    await page.wait_for_function(
        "(t) => { const v = document.getElementById('video'); return !v.seeking && Math.abs(v.currentTime - t) < 0.3; }",
        arg=seconds, timeout=5000)


async def test_supervisor_finds_a_session_and_jumps_to_an_event_while_it_plays(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    gateway = recordings_gateway
    page = await context.new_page()
    problems: list[str] = []  # script errors and CSP violations (e.g. an inline style)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    video_statuses: list[int] = []
    page.on("response", lambda response: video_statuses.append(response.status)
            if response.url.endswith(f"/{RECORDING_ID}/video") else None)
    await sign_in(page, gateway, "sam")
    await page.click("#recordings-link")
    await expect(page).to_have_url(f"{gateway.url}/recordings")
    await expect(page.locator("#results tbody tr")).to_have_count(5)

    await page.fill("#f-user", "alice")
    await page.fill("#f-from", LOCAL_DAY)
    await page.fill("#f-to", LOCAL_DAY)
    await page.click("#search-button")
    # The search is in the address, to share; it finds the 22:30 (local) session and nothing else.
    await expect(page).to_have_url(f"{gateway.url}/recordings?user=alice&from={LOCAL_DAY}&to={LOCAL_DAY}")
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(1)
    row = page.locator(f'#results tr[data-id="{RECORDING_ID}"]')
    await expect(row).to_contain_text("Nov 24, 2026, 10:30:00 PM")
    await expect(row).to_contain_text("0:20")
    await expect(row.locator("td").nth(6)).to_have_text("45")  # keys: 12 + 30 + 3
    await expect(row.locator("td").nth(7)).to_have_text("5")  # clicks: 1 + 0 + 4
    await row.locator("a").click()
    await expect(page).to_have_url(f"{gateway.url}/recordings/{RECORDING_ID}?user=alice&from={LOCAL_DAY}&to={LOCAL_DAY}")

    await expect(page.locator("#meta-user")).to_have_text("alice")
    await expect(page.locator("#meta-end-reason")).to_have_text("user disconnected")
    await expect(page.locator("#events .event")).to_have_count(len(EVENTS))
    await expect(page.locator("#timeline .event")).to_have_count(len(EVENTS))
    assert await page.evaluate(ACTIVITY_PIXELS) > 0
    await page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=10000)
    assert abs(float(await page.evaluate("document.getElementById('video').duration")) - VIDEO_SECONDS) < 0.5

    # The session's own date and time, in the viewer's zone and named, beside the video's time.
    await expect(page.locator("#wall-clock")).to_have_text("Nov 24, 2026, 10:30:00 PM EST")
    # What was typed is shown only after giving a reason (audited): until then, how many keys.
    await expect(page.locator("#typed-message")).to_contain_text("45 keys were pressed")
    await page.fill("#unmask-reason", "quality review, ticket 4711")
    await page.click("#unmask-show")
    await expect(page.locator("#unmask-message")).to_have_text("Shown unmasked; your reason is in the audit log.")
    # What was typed, line by line, from the journal's key events; a line seeks to when it was typed.
    entries = page.locator("#typed .typed-entry")
    await expect(entries).to_have_count(2)
    await expect(entries.nth(0).locator(".typed-text")).to_have_text("hi⏎")
    await expect(entries.nth(1).locator(".typed-text")).to_have_text("4711")
    await expect(entries.nth(1).locator(".time")).to_have_text("0:14")
    await entries.nth(1).locator("button").click()
    await wait_for_time_near(page, 14.0)
    await expect(page.locator("#wall-clock")).to_have_text("Nov 24, 2026, 10:30:14 PM EST")
    await expect(entries.nth(1)).to_have_attribute("aria-current", "true")
    await expect(entries.nth(0)).not_to_have_attribute("aria-current", "true")

    await page.click("#speed-4")
    await expect(page.locator("#speed-4")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#speed-1")).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate("document.getElementById('video').playbackRate") == 4

    # A marker on the timeline jumps to its event; so does a row of the event list.
    await page.click('#timeline .event[data-type="resize"]')
    await wait_for_time_near(page, 12.5)
    await page.click('#events .event[data-type="clipboard_blocked"] button')
    await wait_for_time_near(page, 6.0)
    # Anywhere else on the timeline jumps to that point of the session (a quarter: 5 s).
    box = await page.locator("#timeline").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    await wait_for_time_near(page, 5.0)

    # It plays, at 4×: the video's clock runs well ahead of the wall clock.
    async with asyncio.timeout(10):
        advanced, wall = await page.evaluate(PLAY_FOUR_SECONDS)
    assert advanced >= 4 and wall < advanced / 2, (advanced, wall)
    assert await page.evaluate("document.getElementById('video').playbackRate") == 4
    assert 206 in video_statuses  # the browser fetched the video in byte ranges

    await page.click("#back")  # back to the same search
    await expect(page).to_have_url(f"{gateway.url}/recordings?user=alice&from={LOCAL_DAY}&to={LOCAL_DAY}")
    await expect(page.locator("#f-user")).to_have_value("alice")
    await expect(rows).to_have_count(1)
    assert problems == []


async def test_a_search_by_text_on_screen_opens_the_player_where_it_appeared(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    gateway = recordings_gateway
    page = await context.new_page()
    await sign_in(page, gateway, "sam")
    await page.goto(f"{gateway.url}/recordings")
    await page.fill("#f-text", "山田太郎")  # read as 山 田 太 郎 with spaces: found all the same
    await page.click("#search-button")
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(1)
    row = page.locator(f'#results tr[data-id="{RECORDING_ID}"]')
    moments = row.locator("a.moment")
    await expect(moments).to_have_count(2)
    await expect(moments.nth(0)).to_have_text("0:09")
    await expect(moments.nth(1)).to_have_text("0:16")
    await expect(moments.nth(0)).to_have_attribute("title", "お客様山田太郎様")

    await row.locator("td").nth(1).click()  # the row opens the player at the first moment
    await expect(page).to_have_url(re.compile(rf"/recordings/{RECORDING_ID}\?text=[^#]+#t=9$"))
    await page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=10000)
    await wait_for_time_near(page, 9.0)
    await page.go_back()
    await expect(moments).to_have_count(2)
    await moments.nth(1).click()
    await wait_for_time_near(page, 16.0)

    await page.goto(f"{gateway.url}/recordings")
    await page.fill("#f-text", "様山田太郎様ご")  # each pair of characters was on screen, the text never was
    await page.click("#search-button")
    await expect(page.locator("#message")).to_have_text("No recordings match.")


async def test_a_video_still_rendering_says_so(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, recordings_gateway, "sam")
    await page.goto(f"{recordings_gateway.url}/recordings?user=bob")
    row = page.locator('#results tr[data-id="20261125T040000Z-00000b0b"]')
    await expect(row).to_contain_text("rendering")
    await row.locator("a").click()
    await expect(page.locator("#video-state")).to_have_text("The video is being rendered — reload in a moment.")
    await expect(page.locator("#video")).to_be_hidden()
    await expect(page.locator("#speed-4")).to_be_disabled()


async def test_search_says_when_nothing_matches_and_what_is_wrong_with_a_filter(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, recordings_gateway, "sam")
    await page.goto(f"{recordings_gateway.url}/recordings?user=nobody")
    await expect(page.locator("#message")).to_have_text("No recordings match.")
    await expect(page.locator("#results")).to_be_hidden()
    await page.goto(f"{recordings_gateway.url}/recordings?min_minutes=-1")  # caught in the page
    await expect(page.locator("#message")).to_have_text('Min. minutes: "-1" is not a number of minutes.')
    await page.goto(f"{recordings_gateway.url}/recordings?end_reason={'x' * 300}")  # refused by the API
    await expect(page.locator("#message")).to_have_text("end_reason is longer than 255 characters")
    await expect(page.locator("#results")).to_be_hidden()


async def test_an_operator_gets_no_recordings_link_and_the_page_says_why(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await context.new_page()
    async with page.expect_response(lambda response: "/api/v1/recordings" in response.url) as probe:
        await sign_in(page, recordings_gateway, "alice")
    assert (await probe.value).status == 403
    await expect(page.locator("#portal-message")).to_have_text("Choose a desktop to open.")
    await expect(page.locator("#recordings-link")).to_be_hidden()
    await page.goto(f"{recordings_gateway.url}/recordings")
    await expect(page.locator("#message")).to_have_text("you may not see recordings")  # the API's own words
    await expect(page.locator("#message")).to_have_class("error")
    await expect(page.locator("#results")).to_be_hidden()


async def open_player(page: Page, gateway: RecordingsGateway, recording_id: str) -> None:
    await page.goto(f"{gateway.url}/recordings/{recording_id}")
    await page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=10000)


async def test_supervisor_bookmarks_a_moment_and_exports_a_clip_for_training(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    gateway = recordings_gateway
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    await sign_in(page, gateway, "sam")
    await open_player(page, gateway, RECORDING_ID)

    await page.fill("#unmask-reason", "training material, ticket 4712")  # typed text: only with a reason
    await page.click("#unmask-show")
    await page.locator("#typed .typed-entry button").first.click()  # the greeting, at 3 s
    await wait_for_time_near(page, 3.0)
    await expect(page.locator("#bookmark-at")).to_have_text("0:03")
    await page.fill("#bookmark-note", "training: a friendly greeting")
    await page.click("#bookmark-add")
    bookmark = page.locator("#bookmarks .bookmark")
    await expect(bookmark).to_have_count(1)
    await expect(bookmark).to_contain_text("0:03training: a friendly greeting — sam")
    await expect(page.locator("#bookmark-marks .marker")).to_have_count(1)

    await page.fill("#clip-from", "0:02")
    await page.fill("#clip-to", "0:08")
    await page.click("#clip-export")
    await expect(page.locator("#clip-message")).to_have_text("The clip is ready: download it below.", timeout=90000)
    await expect(page.locator("#clip-progress")).to_have_attribute("value", "1")
    link = page.locator('#clips li[data-state="ready"] a')
    await expect(link).to_have_text("Download 0:02–0:08")
    response = await page.request.get(f"{gateway.url}{await link.get_attribute('href')}")
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(await response.body())) as container:
        assert abs(float(container.duration or 0) / 1e6 - 6.0) < 0.1

    # "My bookmarks" on the search page leads back to the moment.
    await page.goto(f"{gateway.url}/recordings")
    await page.click("#my-bookmarks summary")
    mine = page.locator("#bookmark-list a")
    await expect(mine).to_have_text("training: a friendly greeting")
    await mine.click()
    await expect(page).to_have_url(f"{gateway.url}/recordings/{RECORDING_ID}#t=3")
    await wait_for_time_near(page, 3.0)
    assert problems == []


async def test_idle_stretches_are_skipped_markers_grouped_and_the_poster_shown(
    context: BrowserContext, recordings_gateway: RecordingsGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, recordings_gateway, "sam")
    await open_player(page, recordings_gateway, REVIEW_ID)

    # Before playing, the poster (the first picture with content) shows, not a black frame.
    video = page.locator("#video")
    await expect(video).to_have_attribute("poster", f"/api/v1/recordings/{REVIEW_ID}/poster")
    await page.wait_for_function("""async (url) => {
        const image = new Image(); image.src = url; await image.decode(); return image.naturalWidth === 320; }""",
                                 arg=f"/api/v1/recordings/{REVIEW_ID}/poster")
    with av.open(io.BytesIO(await video.screenshot()), format="png_pipe") as container:
        shown = next(container.decode(video=0)).to_ndarray(format="rgb24")
    centre = shown[shown.shape[0] // 2, shown.shape[1] // 2].astype(int)
    assert np.abs(centre - POSTER_COLOUR).max() < 30, centre

    # Three events within 0.1 s are one marker that says how many it holds.
    await expect(page.locator("#markers .marker")).to_have_count(1)
    group = page.locator("#markers .marker.group")
    await expect(group).to_have_attribute("data-count", "3")
    await expect(group).to_have_text("3")
    await expect(page.locator("#events .event")).to_have_count(3)

    # Nothing happens from 5 s to 15 s: with skipping on, playing from 4 s jumps to just before 15 s.
    await expect(page.locator("#idle-bands .idle-band")).to_have_count(1)
    await page.check("#skip-idle")
    await page.evaluate("document.getElementById('video').currentTime = 4")
    await wait_for_time_near(page, 4.0)
    await page.evaluate("document.getElementById('video').play()")
    await expect(page.locator("#skip-note")).to_have_text(
        "Skipped 0:09 without input or screen change (0:05 → 0:14).", timeout=10000)
    await page.wait_for_function("() => document.getElementById('video').currentTime >= 14", timeout=5000)
    await page.evaluate("document.getElementById('video').pause()")
