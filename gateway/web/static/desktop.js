// The desktop page: noVNC over the gateway's WebSocket. The gateway has already
// authenticated the user (cookie) and holds the target's password; RFB security here is None.
// The gateway's notices (GET /api/v1/notices) tell the operator who is viewing the screen,
// when the session will end for idleness, and who ended it and why.
import RFB from "/static/novnc/core/rfb.js";

const target = decodeURIComponent(location.pathname.split("/").pop());
const status = document.getElementById("status");
const ended = document.getElementById("ended");
const endedReason = document.getElementById("ended-reason");
document.getElementById("desktop-name").textContent = target;
document.getElementById("reconnect").href = location.pathname;
document.title = `deskgate — ${target}`;

const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/vnc/${encodeURIComponent(target)}`, ["binary"]);
socket.binaryType = "arraybuffer";

let endReason = "";
socket.addEventListener("close", (event) => {
  // The gateway's reason wins; otherwise keep what we already know (e.g. "you disconnected").
  endReason = event.reason || endReason || (event.code === 1006 ? "the connection to the gateway was lost" : "");
  showEnded();
});

const rfb = new RFB(document.getElementById("screen"), socket, { shared: true });
rfb.scaleViewport = true;        // fit the remote screen to the window
rfb.resizeSession = false;       // never resize the operator's remote desktop
rfb.clipViewport = false;
rfb.focusOnClick = true;
window.deskgateRFB = rfb;        // for diagnostics and end-to-end tests

rfb.addEventListener("connect", () => {
  status.textContent = `Connected to ${target}`;
  rfb.focus();
});
rfb.addEventListener("securityfailure", (event) => {
  endReason = event.detail.reason || "the gateway refused the session";
  showEnded();
});
rfb.addEventListener("disconnect", () => showEnded());
// Clipboard stays on the server: nothing received is written to the local clipboard.
rfb.addEventListener("clipboard", () => {});

document.getElementById("disconnect").addEventListener("click", () => {
  endReason = "you disconnected";
  rfb.disconnect();
});

// Notices, as server-sent events. Notices for another desktop of the same user are ignored;
// replayed ones (sent before this page connected) only rebuild who is viewing now.
const notices = new EventSource("/api/v1/notices");
const viewing = document.getElementById("viewing");
const viewersText = document.getElementById("viewers");
const viewingEnded = document.getElementById("viewing-ended");
const idleBanner = document.getElementById("idle-warning");
const idleSeconds = document.getElementById("idle-seconds");
const viewers = new Map();  // who is viewing -> in how many views (a live view and a wall tile, say)
let clockOffset = 0;  // the gateway's clock minus this page's (ms): countdowns run on the gateway's time
let idleDeadline = null;  // epoch seconds on the gateway's clock, while a warning stands
let endedBy = "";
let viewingEndedTimer;

notices.addEventListener("hello", (event) => {
  clockOffset = JSON.parse(event.data).now * 1000 - Date.now();
});
notices.addEventListener("notice", (event) => {
  const notice = JSON.parse(event.data);
  if (notice.target && notice.target !== target) return;
  if (notice.type === "viewing_started") {
    viewers.set(notice.by, (viewers.get(notice.by) ?? 0) + 1);
  } else if (notice.type === "viewing_ended") {
    // Without a target it ends every view of that person; else one of them.
    const left = notice.target ? (viewers.get(notice.by) ?? 0) - 1 : 0;
    if (left > 0) viewers.set(notice.by, left); else viewers.delete(notice.by);
    if (!notice.replay && left <= 0) showViewingEnded(notice.by);
  } else if (notice.type === "idle_warning" && !notice.replay) {
    idleDeadline = notice.deadline_epoch;
  } else if (notice.type === "session_ended" && !notice.replay) {
    endedBy = `Your session was ended by ${notice.by}: ${notice.reason}`;
    if (!ended.hidden) showEnded();
  }
  showViewers();
});
window.deskgateNotices = notices;  // for end-to-end tests

function showViewers() {
  viewersText.textContent = [...viewers.keys()].sort().join(", ");
  viewing.hidden = viewers.size === 0 || !ended.hidden;
}

function showViewingEnded(by) {
  viewingEnded.textContent = `${by} stopped viewing your screen`;
  viewingEnded.hidden = false;
  clearTimeout(viewingEndedTimer);
  viewingEndedTimer = setTimeout(() => { viewingEnded.hidden = true; }, 8000);
}

// Input on the screen reaches the gateway and restarts its idle clock: the warning no longer stands.
// Capture phase: noVNC stops the events it handles.
const screen = document.getElementById("screen");
for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
  screen.addEventListener(type, () => { idleDeadline = null; }, { capture: true, passive: true });
}
setInterval(() => {
  const left = idleDeadline === null ? 0 : idleDeadline - (Date.now() + clockOffset) / 1000;
  idleSeconds.textContent = String(Math.ceil(left));
  idleBanner.hidden = !(ended.hidden && left > 0);
}, 250);

function showEnded() {
  const firstTime = ended.hidden;
  idleBanner.hidden = true;
  status.textContent = "Disconnected";
  endedReason.textContent = endedBy || endReason || "The session has ended.";
  endedReason.dataset.reason = endReason;
  ended.hidden = false;
  showViewers();
  // A notice saying who ended the session may still be on its way from another node.
  if (firstTime) setTimeout(() => notices.close(), 5000);
}
