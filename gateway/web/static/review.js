// The player's review panels: what was typed, bookmarks, and clip export; and the time helpers
// they share with the player. Every entry with a time seeks the video there.
import { api } from "/static/api.js";
import { formatDateTime, t } from "/static/i18n.js";

const CLIP_POLL_MS = 500;
const typedList = document.getElementById("typed");
const typedMessage = document.getElementById("typed-message");
const bookmarkAt = document.getElementById("bookmark-at");
const typedWithheld = (keys) => t("Typed text is shown only unmasked, after giving a reason: {keys} keys were pressed.",
  { keys });

// 0:07, 12:34, 1:02:03
export function clockTime(totalSeconds) {
  const s = Math.floor(totalSeconds);
  const clockText = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clockText.padStart(5, "0")}` : clockText;
}

// "1:02:03", "2:30", "90" or "90.5" as seconds; NaN if it is none of them.
export function parseClock(text) {
  const match = /^\s*(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!match) return NaN;
  const [, hours, minutes, seconds] = match;
  return Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds);
}

// The session's real date and time ``seconds`` into it, in the page's language and the site's time zone, zone named.
export function wallTime(startedMs, seconds) {
  return formatDateTime(new Date(startedMs + seconds * 1000), { withZone: true });
}

function timedButton(at, started, ...content) {
  const button = document.createElement("button");
  button.type = "button";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clockTime(at);
  time.title = wallTime(started, at);
  button.append(time, ...content);
  return button;
}

function say(element, text, isError = false) {
  element.textContent = text;
  element.className = isError ? "error" : "muted";
  element.hidden = !text;
}

// ---------------------------------------------------------------- typed text

// ``typedUrl``: the typed text's URL with an unmask grant, once a reason was given ("Show unmasked").
export async function showTyped(id, { seek, started, typedUrl }) {
  const { status, data } = await api("GET", typedUrl ?? `/api/v1/recordings/${encodeURIComponent(id)}/typed`);
  if (status !== 200) return say(typedMessage, data.error || t("Could not load the typed text (HTTP {status}).", { status }), true);
  if (!data.recorded) {
    return say(typedMessage, t("Typed text was not recorded: the policy for this session keeps only input "
      + "counts (record_input: {mode}).", { mode: data.record_input }));
  }
  if (data.withheld) {
    typedList.replaceChildren();
    return say(typedMessage, typedWithheld(data.keys));
  }
  typedList.replaceChildren(...data.entries.map((entry) => {
    const item = document.createElement("li");
    item.className = "typed-entry";
    item.dataset.t = String(entry.t);
    const text = document.createElement("span");
    text.className = "typed-text";
    text.textContent = entry.text;
    const button = timedButton(entry.t, started, text);
    button.addEventListener("click", () => seek(entry.t));
    item.append(button);
    return item;
  }));
  const notes = [];
  if (!data.entries.length) notes.push(t("Nothing was typed."));
  if (data.truncated) notes.push(t("Only the beginning is shown: the recording holds more typed text than a page can."));
  if (data.error) notes.push(t("The rest could not be read: {error}", { error: data.error }));
  say(typedMessage, notes.join(" "), Boolean(data.error));
}

// The video is at ``t``: the line typed last before it is the current one; a bookmark would go there.
export function followTime(now) {
  bookmarkAt.textContent = clockTime(now);
  let current = null;
  for (const item of typedList.children) {
    if (Number(item.dataset.t) <= now) current = item;
    item.removeAttribute("aria-current");
  }
  current?.setAttribute("aria-current", "true");
}

// ---------------------------------------------------------------- bookmarks

export async function showBookmarks(id, { seek, currentTime, started, changed }) {
  const base = `/api/v1/recordings/${encodeURIComponent(id)}/bookmarks`;
  const list = document.getElementById("bookmarks");
  const form = document.getElementById("bookmark-form");
  const note = document.getElementById("bookmark-note");
  const bookmarkMessage = document.getElementById("bookmark-message");
  const me = (await api("GET", "/api/v1/session")).data;

  async function load() {
    const { status, data } = await api("GET", base);
    if (status !== 200) return say(bookmarkMessage, data.error || t("Could not load the bookmarks (HTTP {status}).", { status }), true);
    list.replaceChildren(...data.bookmarks.map((bookmark) => {
      const item = document.createElement("li");
      item.className = "bookmark";
      item.dataset.t = String(bookmark.t);
      const text = document.createElement("span");
      text.textContent = `${bookmark.note} — ${bookmark.owner}`;
      const button = timedButton(bookmark.t, started, text);
      button.addEventListener("click", () => seek(bookmark.t));
      item.append(button);
      if (bookmark.owner === me.username || me.admin) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "remove";
        remove.textContent = t("Delete");
        remove.setAttribute("aria-label", t("Delete the bookmark “{note}”", { note: bookmark.note }));
        remove.addEventListener("click", async () => {
          const result = await api("DELETE", `${base}/${bookmark.id}`);
          if (!result.ok) return say(bookmarkMessage, result.data.error || t("Could not delete the bookmark (HTTP {status}).", { status: result.status }), true);
          await load();
        });
        item.append(remove);
      }
      return item;
    }));
    changed(data.bookmarks);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const at = currentTime();
    const { status, data } = await api("POST", base, { t: at, note: note.value });
    if (status !== 201) return say(bookmarkMessage, data.error || t("Could not bookmark (HTTP {status}).", { status }), true);
    note.value = "";
    say(bookmarkMessage, t("Bookmarked {at}.", { at: clockTime(at) }));
    await load();
  });
  await load();
}

// ---------------------------------------------------------------- clips

function clipState(state) {
  return { queued: t("queued"), rendering: t("rendering") }[state] ?? state;
}

export async function showClips(id, { currentTime, duration }) {
  const base = `/api/v1/recordings/${encodeURIComponent(id)}/clips`;
  const form = document.getElementById("clip-form");
  const from = document.getElementById("clip-from");
  const to = document.getElementById("clip-to");
  const progress = document.getElementById("clip-progress");
  const clipMessage = document.getElementById("clip-message");
  const list = document.getElementById("clips");
  from.value = clockTime(0);
  to.value = clockTime(Math.min(duration, 30));
  document.getElementById("clip-from-now").addEventListener("click", () => { from.value = clockTime(currentTime()); });
  document.getElementById("clip-to-now").addEventListener("click", () => { to.value = clockTime(Math.ceil(currentTime())); });

  function clipItem(clip) {
    const item = document.createElement("li");
    item.dataset.id = clip.id;
    item.dataset.state = clip.state;
    const range = `${clockTime(clip.from)}–${clockTime(clip.to)}`;
    if (clip.state === "ready") {
      const link = document.createElement("a");
      link.href = `${base}/${clip.id}/video`;
      link.download = "";
      link.textContent = t("Download {range}", { range });
      item.append(link, ` (${clip.owner})`);
    } else if (clip.state === "failed") {
      const failed = t("failed");
      item.append(t("{range}: {error}", { range, error: clip.error ?? failed }));
    } else {
      item.append(t("{range}: {state} {percent} %", { range, state: clipState(clip.state), percent: Math.round(clip.progress * 100) }));
    }
    return item;
  }

  async function load() {
    const { status, data } = await api("GET", base);
    if (status !== 200) return [];
    list.replaceChildren(...data.clips.map(clipItem));
    return data.clips;
  }

  async function follow(clip) {
    progress.hidden = false;
    while (clip.state === "queued" || clip.state === "rendering") {
      progress.value = clip.progress;
      say(clipMessage, t("Exporting {from}–{to}: {percent} %",
        { from: clockTime(clip.from), to: clockTime(clip.to), percent: Math.round(clip.progress * 100) }));
      await new Promise((resolve) => setTimeout(resolve, CLIP_POLL_MS));
      const { status, data } = await api("GET", `${base}/${clip.id}`);
      if (status !== 200) return say(clipMessage, data.error || t("Lost track of the export (HTTP {status}).", { status }), true);
      clip = data.clip;
    }
    progress.value = 1;
    progress.hidden = clip.state !== "ready";
    if (clip.state === "ready") say(clipMessage, t("The clip is ready: download it below."));
    else say(clipMessage, clip.error ?? t("The export failed."), true);
    await load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [start, end] = [parseClock(from.value), parseClock(to.value)];
    if (Number.isNaN(start) || Number.isNaN(end)) return say(clipMessage, t("Write From and To as m:ss (e.g. 1:30)."), true);
    const { status, data } = await api("POST", base, { from: start, to: end });
    if (status !== 202) return say(clipMessage, data.error || t("Could not export (HTTP {status}).", { status }), true);
    await load();
    await follow(data.clip);
  });
  const unfinished = (await load()).find((clip) => clip.state === "queued" || clip.state === "rendering");
  if (unfinished) await follow(unfinished);
}
