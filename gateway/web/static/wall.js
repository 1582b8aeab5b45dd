// The wall: every live session the signed-in supervisor may watch, as small live tiles.
// Each tile is a view-only noVNC on /ws/live/{id}?mode=tile (the gateway asks the target for one
// low-quality update every 2 s), or for a terminal session the last lines of its output (the gateway
// sends {"lines": [...]} every 2 s); the list, the times and the sparklines refresh every 2 s.
// The sparkline shows recent input as this page saw it: one point per refresh, high when the
// operator's last input (idle_seconds) is recent. The visible strings are translated (static/i18n.js).
import RFB from "/static/novnc/core/rfb.js";
import { api } from "/static/api.js";
import { formatTime, t, tn } from "/static/i18n.js";

const REFRESH_MS = 2000;
const HISTORY = 60;          // points of a sparkline: two minutes
const ACTIVE_WITHIN = 30;    // seconds since the last input that still count as activity

const message = document.getElementById("message");
const refreshed = document.getElementById("refreshed");
const wall = document.getElementById("wall");
const groupFilter = document.getElementById("group");
const tileTemplate = document.getElementById("tile");
const tiles = new Map();     // session id -> { element, close, history }
const scheme = location.protocol === "https:" ? "wss" : "ws";

groupFilter.addEventListener("change", () => refresh());
refresh();
setInterval(refresh, REFRESH_MS);

async function refresh() {
  const { status, data } = await api("GET", "/api/v1/sessions");
  if (status === 401) return location.assign("/login");
  if (status !== 200) {
    message.textContent = data.error || t("The live sessions could not be loaded (HTTP {status}).", { status });
    message.className = "error";
    return;
  }
  updateGroups(data.sessions);
  const group = groupFilter.value;
  const shown = data.sessions
    .filter((session) => !group || session.groups.includes(group))
    .sort((a, b) => firstGroup(a).localeCompare(firstGroup(b)) || a.user.localeCompare(b.user));
  const ids = new Set(shown.map((session) => session.id));
  for (const [id, tile] of tiles) {
    if (!ids.has(id)) {
      tile.close();
      tile.element.remove();
      tiles.delete(id);
    }
  }
  const ordered = shown.map((session) => {
    const tile = tiles.get(session.id) ?? addTile(session);
    updateTile(tile, session);
    return tile.element;
  });
  // Move tiles only when the order changed: a moved node loses a click under way.
  if (ordered.some((element, index) => wall.children[index] !== element)) wall.replaceChildren(...ordered);
  message.className = "muted";
  message.textContent = shown.length === 0 ? t("Nobody you look after is connected now.")
    : tn("{n} live session.", "{n} live sessions.", shown.length);
  refreshed.textContent = t("Updated {time}", { time: formatTime(new Date()) });
}

function firstGroup(session) {
  return [...session.groups].sort()[0] ?? "";
}

function updateGroups(sessions) {
  const known = new Set([...groupFilter.options].map((option) => option.value));
  for (const group of [...new Set(sessions.flatMap((session) => session.groups))].sort()) {
    if (!known.has(group)) groupFilter.add(new Option(group, group));
  }
}

function addTile(session) {
  const element = tileTemplate.content.firstElementChild.cloneNode(true);
  element.href = `/live/${encodeURIComponent(session.id)}`;
  element.dataset.id = session.id;
  element.dataset.user = session.user;
  element.title = t("Open the live view of {user}'s screen", { user: session.user });
  const url = `${scheme}://${location.host}/ws/live/${encodeURIComponent(session.id)}?mode=tile`;
  const viewEnded = () => {
    element.classList.add("tile-ended");
    element.querySelector(".tile-idle").textContent = t("View ended");
  };
  const tile = { element, close: session.protocol === "ssh" ? terminalTile(element, url, viewEnded)
    : desktopTile(element, url, viewEnded), history: [] };
  tiles.set(session.id, tile);
  return tile;
}

function desktopTile(element, url, viewEnded) {
  const rfb = new RFB(element.querySelector(".tile-screen"), url, { shared: true, wsProtocols: ["binary"] });
  rfb.viewOnly = true;
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.addEventListener("disconnect", viewEnded);
  return () => rfb.disconnect();
}

// A terminal session's tile: the last lines of its output, as text.
function terminalTile(element, url, viewEnded) {
  const text = document.createElement("pre");
  text.className = "tile-text";
  element.querySelector(".tile-screen").append(text);
  const socket = new WebSocket(url);
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") text.textContent = JSON.parse(event.data).lines.join("\n");
  });
  socket.addEventListener("close", viewEnded);
  return () => socket.close();
}

function updateTile(tile, session) {
  const { element, history } = tile;
  element.querySelector(".tile-user").textContent =
    session.display_name ? t("{name} ({user})", { name: session.display_name, user: session.user }) : session.user;
  element.querySelector(".tile-target").textContent = session.target;
  element.querySelector(".tile-duration").textContent =
    t("for {duration}", { duration: duration((Date.now() - Date.parse(session.started)) / 1000) });
  element.querySelector(".tile-idle").textContent = t("idle {idle}", { idle: duration(session.idle_seconds) });
  history.push(Math.max(0, 1 - session.idle_seconds / ACTIVE_WITHIN));
  if (history.length > HISTORY) history.shift();
  const offset = HISTORY - history.length;
  element.querySelector(".sparkline polyline").setAttribute("points",
    history.map((value, index) => `${offset + index},${(11 - value * 10).toFixed(1)}`).join(" "));
}

function duration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  const clock = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}
