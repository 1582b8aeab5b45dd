// The recording player: the rendered video (its poster shown before playing), playback speeds,
// the session's wall-clock time beside the video's, and a timeline of activity, idle stretches,
// events and bookmarks under it (markers that would cover each other are grouped into one).
// Clicking the timeline, an event, a typed line or a bookmark seeks the video there; idle
// stretches can be skipped. The review panels (typed text, bookmarks, clips) are in review.js.
import { api, logout } from "/static/api.js";
import { formatDateTime, t } from "/static/i18n.js";
import { clockTime, followTime, showBookmarks, showClips, showTyped, wallTime } from "/static/review.js";

const BUCKET_SECONDS = 5;  // the API's activity buckets
const MARKER_GAP_PX = 10;  // markers closer than this on the timeline are grouped
const SKIP_LEAD = 1;  // seconds of an idle stretch still shown before the activity after it
const VIDEO_STATES = {
  pending: t("The video is being rendered — reload in a moment."),
  failed: t("Rendering the video failed. An administrator can retry with “deskgate recordings render”."),
  none: t("This recording has no video."),
};

const id = decodeURIComponent(location.pathname.split("/").pop());
const message = document.getElementById("message");
const video = document.getElementById("video");
const videoState = document.getElementById("video-state");
const timeline = document.getElementById("timeline");
const canvas = document.getElementById("activity");
const markers = document.getElementById("markers");
const bookmarkMarks = document.getElementById("bookmark-marks");
const idleBands = document.getElementById("idle-bands");
const playhead = document.getElementById("playhead");
const clock = document.getElementById("clock");
const wallClock = document.getElementById("wall-clock");
const skipIdle = document.getElementById("skip-idle");
const skipMinimum = document.getElementById("skip-idle-min");
const skipNote = document.getElementById("skip-note");
const speedButtons = [...document.querySelectorAll("#speeds button")];
let length = 1;  // seconds the timeline spans
let started = 0;  // the session's start, in milliseconds since the epoch
let activity = [];
let events = [];
let bookmarks = [];
let idle = null;  // stretches without input or screen change; null when the index cannot tell
let skipNoteTimer;
// A terminal recording plays in asciinema-player (its asciicast), not as a video.
let cast = null;
let castSource = "";
let castTime = 0;  // seconds, polled from the player
let castSpeed = 1;

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("back").search = location.search;  // back to the search we came from

video.addEventListener("error", () => {
  videoState.textContent = t("The video could not be loaded or played; the events below are still shown.");
  videoState.dataset.state = "error";
  videoState.title = video.error?.message ?? "";  // the browser's reason, for whoever investigates
  videoState.hidden = false;
  video.hidden = true;
});
video.addEventListener("timeupdate", () => { skipIdleStretch(); updatePlayhead(); });
video.addEventListener("seeked", updatePlayhead);
video.addEventListener("play", skipIdleStretch);
video.addEventListener("loadedmetadata", seekToHash, { once: true });
video.addEventListener("ratechange", () => {
  for (const button of speedButtons) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.rate) === video.playbackRate));
  }
});
for (const button of speedButtons) {
  button.addEventListener("click", () => {
    if (cast) {
      castSpeed = Number(button.dataset.rate);
      for (const other of speedButtons) other.setAttribute("aria-pressed", String(other === button));
      playCast(castTime, true);  // asciinema-player takes its speed when created
    } else {
      video.defaultPlaybackRate = video.playbackRate = Number(button.dataset.rate);
    }
  });
}
skipIdle.addEventListener("change", () => { drawIdleBands(); skipIdleStretch(); });
skipMinimum.addEventListener("change", () => { drawIdleBands(); skipIdleStretch(); });
timeline.addEventListener("click", (event) => {
  if (event.target.closest(".marker")) return;  // a marker seeks to its event's exact time
  const box = timeline.getBoundingClientRect();
  seek(((event.clientX - box.left) / box.width) * length);
});
window.addEventListener("hashchange", seekToHash);

const { status, data } = await api("GET", `/api/v1/recordings/${encodeURIComponent(id)}/events`);
if (status === 401) {
  location.assign("/login");
} else if (status !== 200) {
  message.textContent = data.error || t("Could not load the recording (HTTP {status}).", { status });
  message.className = "error";
} else {
  show(data);
}

function show({ recording, events: timelineEvents, activity: buckets, idle: quiet, may_unmask }) {
  activity = buckets;
  events = timelineEvents;
  idle = quiet;
  started = Date.parse(recording.started);
  const lastMark = Math.max(0, ...events.map((event) => event.t), ...buckets.map((b) => b.t + BUCKET_SECONDS));
  length = Math.max(recording.duration || lastMark, 1);
  const who = recording.display_name
    ? t("{name} ({user})", { name: recording.display_name, user: recording.user }) : recording.user;
  const heading = t("{user} on {target}", { user: who, target: recording.target });
  document.title = `deskgate — ${heading}`;
  document.getElementById("title").textContent = heading;
  showMetadata(recording);
  showVideo(recording);
  showSkipIdle();
  document.getElementById("scale-end").textContent = clockTime(length);
  document.getElementById("events").replaceChildren(...events.map(eventItem));
  message.hidden = true;
  document.getElementById("playback").hidden = false;
  document.getElementById("details").hidden = false;
  new ResizeObserver(() => { drawActivity(); layoutMarkers(); }).observe(timeline);
  updatePlayhead();
  const panels = { seek, currentTime, started, duration: length };
  showTyped(id, panels);
  offerUnmask(may_unmask, panels);
  showBookmarks(id, { ...panels, changed: (list) => { bookmarks = list; layoutMarkers(); } });
  showClips(id, panels);
}

function showMetadata(recording) {
  const fields = {
    user: recording.user, source: recording.source, target: recording.target,
    started: localTime(recording.started), ended: recording.ended ? localTime(recording.ended) : "—",
    duration: clockTime(recording.duration ?? 0), "end-reason": recording.end_reason || "—",
    input: `${recording.keys} / ${recording.clicks}`,
  };
  for (const [name, value] of Object.entries(fields)) {
    document.getElementById(`meta-${name}`).textContent = value;
  }
}

function currentTime() {
  return cast ? castTime : video.currentTime;
}

function showVideo(recording) {
  if (recording.protocol === "ssh") {
    castSource = `/api/v1/recordings/${encodeURIComponent(recording.id)}/cast`;
    playCast(0, false);
    setInterval(async () => {
      castTime = (await cast.getCurrentTime()) ?? castTime;
      updatePlayhead();
    }, 250);
    seekToHash();
    return;
  }
  document.getElementById("playback").dataset.video = recording.video;
  if (recording.video !== "ready") {
    videoState.textContent = VIDEO_STATES[recording.video] ?? t("Video: {state}", { state: recording.video });
    videoState.dataset.state = recording.video;
    videoState.hidden = false;
    for (const button of speedButtons) button.disabled = true;
    return;
  }
  const base = `/api/v1/recordings/${encodeURIComponent(recording.id)}`;
  video.poster = `${base}/poster`;  // the first picture with content, not a black frame
  video.src = `${base}/video`;
  video.hidden = false;
}

function showSkipIdle() {
  const unknown = idle === null || video.hidden;
  skipIdle.disabled = skipMinimum.disabled = unknown;
  skipIdle.parentElement.title = idle === null
    ? t("This recording was indexed before idle stretches were recorded.")
    : t("Jump over stretches without input or screen change");
  drawIdleBands();
}

function playCast(startAt, autoPlay) {
  const stage = document.getElementById("cast");
  cast?.dispose();
  stage.replaceChildren();
  cast = window.AsciinemaPlayer.create(castSource, stage, { speed: castSpeed, startAt, autoPlay, fit: "width" });
  window.deskgateCast = cast;  // for end-to-end tests
  stage.hidden = false;
}

function seek(seconds) {
  if (cast) {
    castTime = Math.min(Math.max(seconds, 0), length);
    cast.seek(castTime);
    updatePlayhead();
    return;
  }
  if (video.hidden) return;
  const end = Number.isFinite(video.duration) ? video.duration : length;
  video.currentTime = Math.min(Math.max(seconds, 0), end);
  updatePlayhead();
}

function seekToHash() {
  const match = /^#t=(\d+(?:\.\d+)?)$/.exec(location.hash);
  if (match) seek(Number(match[1]));
}

function updatePlayhead() {
  const now = currentTime();
  playhead.style.left = `${Math.min(now / length, 1) * 100}%`;
  clock.textContent = `${clockTime(now)} / ${clockTime(length)}`;
  wallClock.textContent = wallTime(started, now);
  wallClock.dateTime = new Date(started + now * 1000).toISOString();
  followTime(now);
}

// Skipping idle stretches: while playing, a stretch at least as long as chosen is jumped over
// to just before the activity after it.
function skippable() {
  if (!skipIdle.checked || idle === null) return [];
  return idle.filter((stretch) => stretch.to - stretch.from >= Number(skipMinimum.value));
}

function skipIdleStretch() {
  if (video.paused || video.seeking || video.hidden) return;
  const now = video.currentTime;
  const stretch = skippable().find((quiet) => now >= quiet.from && now < quiet.to - SKIP_LEAD);
  if (!stretch) return;
  const to = stretch.to - SKIP_LEAD;
  seek(to);
  skipNote.textContent = t("Skipped {length} without input or screen change ({from} → {to}).",
    { length: clockTime(to - stretch.from), from: clockTime(stretch.from), to: clockTime(to) });
  skipNote.hidden = false;
  clearTimeout(skipNoteTimer);
  skipNoteTimer = setTimeout(() => { skipNote.hidden = true; }, 4000);
}

function drawIdleBands() {
  idleBands.replaceChildren(...(idle ?? []).map((stretch) => {
    const band = document.createElement("div");
    band.className = "idle-band";
    band.dataset.skipped = String(skippable().includes(stretch));
    band.style.left = `${(stretch.from / length) * 100}%`;
    band.style.width = `${((stretch.to - stretch.from) / length) * 100}%`;
    band.title = t("No input or screen change from {from} to {to}",
      { from: clockTime(stretch.from), to: clockTime(stretch.to) });
    return band;
  }));
}

// Markers: events (and bookmarks, above them) grouped when closer than MARKER_GAP_PX, so none covers another.
function layoutMarkers() {
  const width = timeline.clientWidth || 1;
  markers.replaceChildren(...groups(events, width).map((group) => marker(group, "event", describe)));
  bookmarkMarks.replaceChildren(...groups(bookmarks, width).map(
    (group) => marker(group, "bookmark", (bookmark) => `${bookmark.note} (${bookmark.owner})`)));
}

function groups(items, width) {
  const grouped = [];
  for (const item of [...items].sort((a, b) => a.t - b.t)) {
    const group = grouped.at(-1);
    if (group && ((item.t - group[0].t) / length) * width < MARKER_GAP_PX) group.push(item);
    else grouped.push([item]);
  }
  return grouped;
}

function marker(group, kind, text) {
  const [first] = group;
  const button = document.createElement("button");
  button.type = "button";
  button.className = `marker ${kind}${group.length > 1 ? " group" : ""}`;
  button.dataset.type = first.type ?? kind;  // a group: its first event's (the one it seeks to)
  button.dataset.t = String(first.t);
  button.dataset.count = String(group.length);
  if (group.length > 1) button.textContent = String(group.length);
  button.style.left = `${Math.min(first.t / length, 1) * 100}%`;
  button.title = group.map((item) => `${clockTime(item.t)} ${text(item)}`).join("\n");
  button.setAttribute("aria-label", button.title);
  button.addEventListener("click", () => seek(first.t));
  return button;
}

function eventItem(event) {
  const item = document.createElement("li");
  item.className = "event";
  item.dataset.type = event.type;
  item.dataset.t = String(event.t);
  const button = document.createElement("button");
  button.type = "button";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clockTime(event.t);
  time.title = wallTime(started, event.t);
  button.append(time, describe(event));
  button.addEventListener("click", () => seek(event.t));
  item.append(button);
  return item;
}

// "Show unmasked": for users a policy allows to unmask; the reason is audited and joins the recording's events.
function offerUnmask(allowed, panels) {
  const form = document.getElementById("unmask");
  const note = document.getElementById("unmask-message");
  form.hidden = !allowed;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = document.getElementById("unmask-reason").value.trim();
    const { status, data } = await api("POST", `/api/v1/recordings/${encodeURIComponent(id)}/unmask`, { reason });
    if (status !== 200) {
      note.textContent = data.error || t("Could not show the recording unmasked (HTTP {status}).", { status });
      return;
    }
    if (data.video && !video.hidden) {
      const at = video.currentTime;
      video.src = data.video;
      video.addEventListener("loadedmetadata", () => { video.currentTime = at; }, { once: true });
    }
    showTyped(id, { ...panels, typedUrl: data.typed });
    note.textContent = t("Shown unmasked; your reason is in the audit log.");
    form.querySelector("button").disabled = true;
  });
}

function someSupervisor() {  // an older recording does not name who
  return t("a supervisor");
}

function describe(event) {
  switch (event.type) {
    case "session_start": return t("Session started");
    case "session_end": return t("Session ended: {reason}", { reason: event.reason ?? "" });
    case "clipboard_blocked":
      return event.direction === "to_local"
        ? t("Clipboard blocked to this computer ({length} bytes)", { length: event.length })
        : t("Clipboard blocked to the remote desktop ({length} bytes)", { length: event.length });
    case "resize": return t("Screen resized to {width}×{height}", { width: event.width, height: event.height });
    case "idle_warning": return t("Idle warning");
    case "terminated": return t("Terminated by {by}: {reason}", { by: event.by, reason: event.reason ?? "" });
    case "viewed_by": return t("Viewed by {by}", { by: event.by ?? event.viewer ?? someSupervisor() });
    case "ended_by": return t("Ended by {by}: {reason}", { by: event.by ?? someSupervisor(), reason: event.reason ?? "" });
    case "unmasked": return t("Shown unmasked by {by}: {reason}", { by: event.by, reason: event.reason ?? "" });
    case "masks": return t("Masked regions: {count}", { count: (event.sets ?? []).reduce((n, set) => n + set.regions.length, 0) });
    default: return event.type;
  }
}

// Keys and clicks per bucket as stacked bars, screen changes as a strip along the bottom;
// colours come from the stylesheet.
function drawActivity() {
  const { width, height } = canvas.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const context = canvas.getContext("2d");
  context.scale(scale, scale);
  const style = getComputedStyle(canvas);
  const strip = 4;
  const bars = height - strip;
  const peak = activity.reduce((most, bucket) => Math.max(most, bucket.keys + bucket.clicks), 1);
  const barWidth = Math.max(width * (BUCKET_SECONDS / length) - 1, 1);
  for (const bucket of activity) {
    const x = width * (bucket.t / length);
    const keys = bars * (bucket.keys / peak);
    const clicks = bars * (bucket.clicks / peak);
    context.fillStyle = style.getPropertyValue("--keys");
    context.fillRect(x, bars - keys, barWidth, keys);
    context.fillStyle = style.getPropertyValue("--clicks");
    context.fillRect(x, bars - keys - clicks, barWidth, clicks);
    if (bucket.screen) {
      context.fillStyle = style.getPropertyValue("--screen");
      context.fillRect(x, bars, barWidth, strip);
    }
  }
}

function localTime(iso) {
  return formatDateTime(iso);
}
