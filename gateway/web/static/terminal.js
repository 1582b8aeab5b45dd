// The terminal page: xterm.js over the gateway's WebSocket (/ws/ssh/TARGET). The gateway has already
// authenticated the user (cookie) and holds the target's SSH credentials.
// Messages: binary frames are terminal bytes both ways (UTF-8); a text frame {"resize":[cols,rows]}
// gives the terminal's size (sent first, and at every change). The gateway's notices
// (GET /api/v1/notices) say who is viewing the terminal live, when the session will end for
// idleness, and who ended it and why.
import { t } from "/static/i18n.js";

// Every text this script shows (the template holds the rest).
const TEXT = {
  title: (target) => t("deskgate — {target}", { target }),
  connected: (target) => t("Connected to {target}", { target }),
  disconnected: t("Disconnected"),
  ended: t("The session has ended."),
  lost: t("the connection to the gateway was lost"),
  youDisconnected: t("you disconnected"),
  endedBy: (by, reason) => t("Your session was ended by {by}: {reason}", { by, reason }),
  stoppedViewing: (by) => t("{by} stopped viewing your screen", { by }),
  idleWarning: (seconds) => t("No keyboard input for a while: this session ends in {seconds} s for safety. Press a key to stay.", { seconds }),
};
// The gateway refuses longer messages: a long paste goes in pieces (cut between characters).
const MAX_PIECE = 16 * 1024;

const target = decodeURIComponent(location.pathname.split("/").pop());
const status = document.getElementById("status");
const ended = document.getElementById("ended");
const endedReason = document.getElementById("ended-reason");
document.getElementById("target-name").textContent = target;
document.getElementById("reconnect").href = location.pathname;
document.title = TEXT.title(target);

const term = new Terminal({ cursorBlink: true, scrollback: 5000,
                            fontFamily: '"DejaVu Sans Mono", "Noto Sans Mono CJK JP", monospace' });
const fit = new FitAddon.FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));
fit.fit();
window.deskgateTerminal = term;  // for diagnostics and end-to-end tests

const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/ssh/${encodeURIComponent(target)}`);
socket.binaryType = "arraybuffer";
const encoder = new TextEncoder();
let endReason = "";

function sendResize() {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ resize: [term.cols, term.rows] }));
}

function sendText(text) {
  if (socket.readyState !== WebSocket.OPEN) return;
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + MAX_PIECE);
    if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end -= 1;  // keep surrogate pairs whole
    socket.send(encoder.encode(text.slice(start, end)));
    start = end;
  }
}

socket.addEventListener("open", () => {
  sendResize();
  status.textContent = TEXT.connected(target);
  term.focus();
});
socket.addEventListener("message", (event) => term.write(new Uint8Array(event.data)));
socket.addEventListener("close", (event) => {
  // The gateway's reason wins; otherwise keep what we already know (e.g. "you disconnected").
  endReason = event.reason || endReason || (event.code === 1006 ? TEXT.lost : "");
  showEnded();
});

term.onData((data) => { idleDeadline = null; sendText(data); });
term.onBinary((data) => {  // mouse reports in the legacy encoding: one byte per character
  if (socket.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
});
term.onResize(() => sendResize());
window.addEventListener("resize", () => fit.fit());

document.getElementById("disconnect").addEventListener("click", () => {
  endReason = TEXT.youDisconnected;
  socket.close(1000);
});

// Notices, as server-sent events; notices for another target of the same user are ignored.
const notices = new EventSource("/api/v1/notices");
const idleBanner = document.getElementById("idle-warning");
let clockOffset = 0;  // the gateway's clock minus this page's (ms): countdowns run on the gateway's time
let idleDeadline = null;  // epoch seconds on the gateway's clock, while a warning stands
let endedBy = "";
const viewing = document.getElementById("viewing");
const viewersText = document.getElementById("viewers");
const viewingEnded = document.getElementById("viewing-ended");
const viewers = new Map();  // who is viewing -> in how many views (a live view and a wall tile, say)
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
    endedBy = TEXT.endedBy(notice.by, notice.reason);
    if (!ended.hidden) showEnded();
  }
  showViewers();
});

function showViewers() {
  viewersText.textContent = [...viewers.keys()].sort().join(", ");
  viewing.hidden = viewers.size === 0 || !ended.hidden;
}

function showViewingEnded(by) {
  viewingEnded.textContent = TEXT.stoppedViewing(by);
  viewingEnded.hidden = false;
  clearTimeout(viewingEndedTimer);
  viewingEndedTimer = setTimeout(() => { viewingEnded.hidden = true; }, 8000);
}

setInterval(() => {
  const left = idleDeadline === null ? 0 : idleDeadline - (Date.now() + clockOffset) / 1000;
  if (left > 0) idleBanner.textContent = TEXT.idleWarning(Math.ceil(left));
  idleBanner.hidden = !(ended.hidden && left > 0);
}, 250);

function showEnded() {
  const firstTime = ended.hidden;
  idleBanner.hidden = true;
  viewing.hidden = true;
  status.textContent = TEXT.disconnected;
  endedReason.textContent = endedBy || endReason || TEXT.ended;
  endedReason.dataset.reason = endReason;
  ended.hidden = false;
  term.options.disableStdin = true;
  // A notice saying who ended the session may still be on its way from another node.
  if (firstTime) setTimeout(() => notices.close(), 5000);
}
