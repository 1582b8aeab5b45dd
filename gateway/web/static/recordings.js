// The supervisors' recordings search. The filters live in the page's query string, so a
// search can be bookmarked and shared; the page turns them into an API query. Below the
// results, the supervisor's own bookmarks, each a link to its moment.
import { api, logout } from "/static/api.js";
import { formatDateTime, siteDayStart, t, tn } from "/static/i18n.js";

const LIMIT = 500;
const VIDEO_STATES = { ready: t("ready"), pending: t("rendering"), failed: t("failed"), none: t("none") };

const form = document.getElementById("search");
const message = document.getElementById("message");
const table = document.getElementById("results");
const body = table.tBodies[0];
const reasons = document.getElementById("end-reasons");
const myBookmarks = document.getElementById("my-bookmarks");

document.getElementById("logout").addEventListener("click", logout);
myBookmarks.addEventListener("toggle", () => { if (myBookmarks.open) showBookmarks(); });
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const filters = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (value.trim()) filters.set(name, value.trim());
  }
  const query = filters.toString();
  history.pushState(null, "", query ? `/recordings?${query}` : "/recordings");
  search();
});
window.addEventListener("popstate", search);
search();

async function search() {
  const filters = new URLSearchParams(location.search);
  for (const field of form.elements) {
    if (field.name) field.value = filters.get(field.name) ?? "";
  }
  let query;
  try {
    query = apiQuery(filters);
  } catch (error) {
    return showMessage(error.message, true);
  }
  showMessage(t("Searching…"));
  const { status, data } = await api("GET", `/api/v1/recordings?${query}`);
  if (status === 401) return location.assign("/login");
  if (status !== 200) return showMessage(data.error || t("The search failed (HTTP {status}).", { status }), true);
  showResults(data.recordings);
}

// Page filters (dates in the site's time zone, minutes) → API filters (UTC instants, seconds).
function apiQuery(filters) {
  const query = new URLSearchParams({ limit: String(LIMIT) });
  if (filters.get("user")) query.set("user_contains", filters.get("user"));  // part of a name is enough
  for (const name of ["target", "end_reason", "source", "event", "text"]) {
    if (filters.get(name)) query.set(name, filters.get(name));
  }
  if (filters.get("from")) query.set("since", isoUTC(siteDay(filters.get("from"), t("From"))));
  if (filters.get("to")) query.set("until", isoUTC(siteDay(filters.get("to"), t("To"), 1)));  // the whole day
  if (filters.get("min_minutes")) query.set("min_duration", seconds(filters.get("min_minutes"), t("Min. minutes")));
  if (filters.get("max_minutes")) query.set("max_duration", seconds(filters.get("max_minutes"), t("Max. minutes")));
  return query.toString();
}

function siteDay(value, label, addDays = 0) {
  const day = siteDayStart(value, addDays);
  if (day === null || Number.isNaN(day.getTime())) {
    throw new Error(t('{label}: "{value}" is not a date (YYYY-MM-DD).', { label, value }));
  }
  return day;
}

function isoUTC(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function seconds(minutes, label) {
  const value = Number(minutes);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(t('{label}: "{value}" is not a number of minutes.', { label, value: minutes }));
  }
  return String(Math.round(value * 60));
}

function showMessage(text, isError = false) {
  message.textContent = text;
  message.className = isError ? "error" : "muted";
  table.hidden = true;
}

function showResults(recordings) {
  body.replaceChildren(...recordings.map(resultRow));
  rememberReasons(recordings);
  if (!recordings.length) return showMessage(t("No recordings match."));
  message.textContent = recordings.length >= LIMIT
    ? t("Showing the newest {limit}; narrow the search to see older ones.", { limit: LIMIT })
    : tn("{n} recording, newest first.", "{n} recordings, newest first.", recordings.length);
  message.className = "muted";
  table.hidden = false;
}

function resultRow(recording) {
  const row = document.createElement("tr");
  row.dataset.id = recording.id;
  const link = document.createElement("a");
  const player = `/recordings/${encodeURIComponent(recording.id)}${location.search}`;  // keeps the search for "back"
  const moments = recording.moments ?? [];  // a search by text on screen: when it was there
  link.href = moments.length ? `${player}#t=${moments[0].t}` : player;
  link.textContent = localTime(recording.started);
  link.title = recording.started;
  const video = VIDEO_STATES[recording.video] ?? recording.video;
  const cells = [link, recording.display_name
    ? t("{name} ({user})", { name: recording.display_name, user: recording.user }) : recording.user, recording.source, recording.target, duration(recording.duration),
    recording.end_reason ?? "", recording.keys, recording.clicks, video];
  for (const content of cells) {
    const cell = document.createElement("td");
    cell.append(content ?? "");
    row.append(cell);
  }
  for (const moment of moments) {  // each moment opens the player there; the line read is its tooltip
    const jump = document.createElement("a");
    jump.className = "moment";
    jump.href = `${player}#t=${moment.t}`;
    jump.textContent = duration(moment.t);
    jump.title = moment.text;
    row.cells[0].append(" ", jump);
  }
  for (const index of [4, 6, 7]) row.cells[index].className = "number";
  row.cells[8].dataset.video = recording.video;
  // The whole row opens the player, not just the time.
  row.addEventListener("click", (event) => { if (!event.target.closest("a")) link.click(); });
  return row;
}

// Offer the end reasons seen so far as suggestions (reasons are free text).
function rememberReasons(recordings) {
  const known = new Set([...reasons.options].map((option) => option.value));
  for (const { end_reason: reason } of recordings) {
    if (reason && !known.has(reason)) {
      known.add(reason);
      reasons.append(new Option(reason));
    }
  }
}

function localTime(iso) {
  return iso ? formatDateTime(iso) : "";
}

function duration(totalSeconds) {
  if (totalSeconds == null) return "";
  const s = Math.round(totalSeconds);
  const clock = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}

async function showBookmarks() {
  const list = document.getElementById("bookmark-list");
  const note = document.getElementById("bookmarks-message");
  const { status, data } = await api("GET", "/api/v1/bookmarks");
  if (status !== 200) {
    note.textContent = data.error || t("Could not load your bookmarks (HTTP {status}).", { status });
    note.className = "error";
    return;
  }
  list.replaceChildren(...data.bookmarks.map((bookmark) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/recordings/${encodeURIComponent(bookmark.recording.id)}#t=${bookmark.t}`;
    link.textContent = bookmark.note;
    const { user, target, started } = bookmark.recording;
    item.append(link, " — ", t("{user} on {target}, {started}, at {at}",
      { user, target, started: localTime(started), at: duration(bookmark.t) }));
    return item;
  }));
  note.textContent = data.bookmarks.length ? "" : t("You have no bookmarks yet: add them while playing a recording.");
  note.className = "muted";
}
