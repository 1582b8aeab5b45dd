// The recording player: the rendered video, playback speeds, and a timeline of input
// activity and events under it; clicking the timeline or an event seeks the video there.
import { api, logout } from "/static/api.js";

const BUCKET_SECONDS = 5;  // the API's activity buckets
const VIDEO_STATES = {
  pending: "The video is being rendered — reload in a moment.",
  failed: "Rendering the video failed. An administrator can retry with “deskgate recordings render”.",
  none: "This recording has no video.",
};

const id = decodeURIComponent(location.pathname.split("/").pop());
const message = document.getElementById("message");
const video = document.getElementById("video");
const videoState = document.getElementById("video-state");
const timeline = document.getElementById("timeline");
const canvas = document.getElementById("activity");
const markers = document.getElementById("markers");
const playhead = document.getElementById("playhead");
const clock = document.getElementById("clock");
const speedButtons = [...document.querySelectorAll("#speeds button")];
let length = 1;  // seconds the timeline spans
let activity = [];

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("back").search = location.search;  // back to the search we came from

video.addEventListener("error", () => {
  videoState.textContent = "The video could not be loaded or played; the events below are still shown.";
  videoState.dataset.state = "error";
  videoState.title = video.error?.message ?? "";  // the browser's reason, for whoever investigates
  videoState.hidden = false;
  video.hidden = true;
});
video.addEventListener("timeupdate", updatePlayhead);
video.addEventListener("seeked", updatePlayhead);
video.addEventListener("ratechange", () => {
  for (const button of speedButtons) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.rate) === video.playbackRate));
  }
});
for (const button of speedButtons) {
  button.addEventListener("click", () => {
    video.defaultPlaybackRate = video.playbackRate = Number(button.dataset.rate);
  });
}
timeline.addEventListener("click", (event) => {
  if (event.target.closest(".marker")) return;  // a marker seeks to its event's exact time
  const box = timeline.getBoundingClientRect();
  seek(((event.clientX - box.left) / box.width) * length);
});

const { status, data } = await api("GET", `/api/v1/recordings/${encodeURIComponent(id)}/events`);
if (status === 401) {
  location.assign("/login");
} else if (status !== 200) {
  message.textContent = data.error || `Could not load the recording (HTTP ${status}).`;
  message.className = "error";
} else {
  show(data);
}

function show({ recording, events, activity: buckets }) {
  activity = buckets;
  const lastMark = Math.max(0, ...events.map((event) => event.t), ...buckets.map((b) => b.t + BUCKET_SECONDS));
  length = Math.max(recording.duration || lastMark, 1);
  document.title = `deskgate — ${recording.user} on ${recording.target}`;
  document.getElementById("title").textContent = `${recording.user} on ${recording.target}`;
  showMetadata(recording);
  showVideo(recording);
  document.getElementById("scale-end").textContent = clockTime(length);
  markers.replaceChildren(...events.map(marker));
  document.getElementById("events").replaceChildren(...events.map(eventItem));
  message.hidden = true;
  document.getElementById("playback").hidden = false;
  document.getElementById("details").hidden = false;
  new ResizeObserver(drawActivity).observe(timeline);
  updatePlayhead();
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

function showVideo(recording) {
  document.getElementById("playback").dataset.video = recording.video;
  if (recording.video !== "ready") {
    videoState.textContent = VIDEO_STATES[recording.video] ?? `Video: ${recording.video}`;
    videoState.dataset.state = recording.video;
    videoState.hidden = false;
    for (const button of speedButtons) button.disabled = true;
    return;
  }
  video.src = `/api/v1/recordings/${encodeURIComponent(recording.id)}/video`;
  video.hidden = false;
}

function seek(seconds) {
  if (video.hidden) return;
  const end = Number.isFinite(video.duration) ? video.duration : length;
  video.currentTime = Math.min(Math.max(seconds, 0), end);
  updatePlayhead();
}

function updatePlayhead() {
  playhead.style.left = `${Math.min(video.currentTime / length, 1) * 100}%`;
  clock.textContent = `${clockTime(video.currentTime)} / ${clockTime(length)}`;
}

function marker(event) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "marker event";
  button.dataset.type = event.type;
  button.dataset.t = String(event.t);
  button.style.left = `${Math.min(event.t / length, 1) * 100}%`;
  button.title = `${clockTime(event.t)} ${describe(event)}`;
  button.setAttribute("aria-label", button.title);
  button.addEventListener("click", () => seek(event.t));
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
  button.append(time, describe(event));
  button.addEventListener("click", () => seek(event.t));
  item.append(button);
  return item;
}

function describe(event) {
  switch (event.type) {
    case "session_start": return "Session started";
    case "session_end": return `Session ended: ${event.reason ?? ""}`;
    case "clipboard_blocked":
      return `Clipboard blocked ${event.direction === "to_local" ? "to this computer" : "to the remote desktop"}`
        + ` (${event.length} bytes)`;
    case "resize": return `Screen resized to ${event.width}×${event.height}`;
    case "idle_warning": return "Idle warning";
    case "terminated": return `Terminated by ${event.by}: ${event.reason ?? ""}`;
    default: return event.type;
  }
}

// Keys and clicks per bucket as stacked bars; colours come from the stylesheet.
function drawActivity() {
  const { width, height } = canvas.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const context = canvas.getContext("2d");
  context.scale(scale, scale);
  const style = getComputedStyle(canvas);
  const peak = activity.reduce((most, bucket) => Math.max(most, bucket.keys + bucket.clicks), 1);
  const barWidth = Math.max(width * (BUCKET_SECONDS / length) - 1, 1);
  for (const bucket of activity) {
    const x = width * (bucket.t / length);
    const keys = height * (bucket.keys / peak);
    const clicks = height * (bucket.clicks / peak);
    context.fillStyle = style.getPropertyValue("--keys");
    context.fillRect(x, height - keys, barWidth, keys);
    context.fillStyle = style.getPropertyValue("--clicks");
    context.fillRect(x, height - keys - clicks, barWidth, clicks);
  }
}

function localTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function clockTime(totalSeconds) {
  const s = Math.floor(totalSeconds);
  const clockText = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clockText.padStart(5, "0")}` : clockText;
}
