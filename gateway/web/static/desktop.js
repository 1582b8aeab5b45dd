// The desktop page: noVNC over the gateway's WebSocket. The gateway has already
// authenticated the user (cookie) and holds the target's password; RFB security here is None.
// Before opening the WebSocket the page asks the gateway whether it may (GET
// /api/v1/targets/{name}/check), so that a refusal (no policy, in use) is shown with its reason;
// a refusal the check could not foresee arrives as the WebSocket's close reason.
// The gateway's notices (GET /api/v1/notices) tell the operator who is viewing the screen,
// when the session will end for idleness or because its working hours end, and who ended it and why.
import RFB from "/static/novnc/core/rfb.js";
import { attachClipboard } from "/static/clipboard.js";
import { attachTextInput } from "/static/textinput.js";
import KeyTable from "/static/novnc/core/input/keysym.js";
import { fillElements, formatTime, lang, t } from "/static/i18n.js";

// Every text this script shows (the template holds the rest), translated (static/i18n.js).
const TEXT = {
  title: (target) => t("deskgate — {target}", { target }),
  connected: (target) => t("Connected to {target}", { target }),
  disconnected: t("Disconnected"),
  ended: t("The session has ended."),
  refusedTitle: t("Cannot open this desktop"),
  lost: t("the connection to the gateway was lost"),
  refused: t("the gateway refused the session"),
  checkFailed: t("the gateway did not answer; check your network connection and try again"),
  youDisconnected: t("you disconnected"),
  tryAgain: t("Try again"),
  endedBy: (by, reason) => t("Your session was ended by {by}: {reason}", { by, reason }),
  stoppedViewing: (by) => t("{by} stopped viewing your screen", { by }),
  idleWarning: (seconds) => t("No keyboard or mouse input for a while: this session ends in {seconds} s for safety. Move the mouse or press a key to stay.", { seconds }),
  windowClosing: t("Your working hours for this desktop end at {time}: the session will be closed then. Save your work."),
  nodeDraining: t("This gateway is restarting for maintenance: your session will be closed at {time}. Save your work, then reconnect."),
  fitToWindow: t("Fit to window"),
  actualSize: "1:1",
  fullScreen: t("Full screen"),
  exitFullScreen: t("Exit full screen"),
};

// Why the gateway closed the session, by close code (gateway/desktop.py CloseCode), in the page's
// language. The gateway's own reason (English, at most 123 bytes) is shown as it is in English and
// where a code has no text here; otherwise it stays on the element (data-reason, title) as the detail.
const CLOSE_TEXT = {
  1000: t("the session was closed"),
  1008: t("the browser and the gateway could not understand each other; reload the page and try again"),
  1009: t("the browser sent more than the gateway accepts at once; reload the page and try again"),
  1011: t("internal gateway error; the session was ended"),
  4004: t("the desktop cannot be reached now; try again later or ask your administrator"),
  4005: t("the desktop closed the connection"),
  4008: t("no keyboard or mouse input for too long: you were signed out for safety"),
  4009: t("the session reached its maximum length: you were signed out; sign in again to continue"),
  4010: t("the session was ended by the gateway"),
  4011: t("the session could not be recorded, so it was ended; ask your administrator"),
  4012: t("too much input arrived at once; check for a stuck key"),
  4013: t("this desktop is in use by another operator; choose another desktop or try again later"),
  4015: t("this gateway is restarting for maintenance; reconnect in a moment"),
  4016: t("recording storage is nearly full; contact your administrator"),
  4020: t("your access to this desktop was changed; ask your administrator"),
  4021: t("your working hours for this desktop have ended"),
};

function closeText(code, reason) {
  if (lang === "en" || !(code in CLOSE_TEXT)) return reason;
  if (code === 1000 && endReason) return endReason;  // what the page already knows: "you disconnected"
  return CLOSE_TEXT[code];
}

// The special keys menu: each entry's keys, pressed in order and released in reverse.
const SPECIAL_KEYS = {
  "ctrl-shift-esc": [["Control_L", "ControlLeft"], ["Shift_L", "ShiftLeft"], ["Escape", "Escape"]],
  "ctrl-esc": [["Control_L", "ControlLeft"], ["Escape", "Escape"]],
  "super": [["Super_L", "MetaLeft"]],
  "alt-tab": [["Alt_L", "AltLeft"], ["Tab", "Tab"]],
  "alt-f4": [["Alt_L", "AltLeft"], ["F4", "F4"]],
  "print": [["Print", "PrintScreen"]],
};

const target = decodeURIComponent(location.pathname.split("/").pop());
const status = document.getElementById("status");
const ended = document.getElementById("ended");
const endedReason = document.getElementById("ended-reason");
const reconnect = document.getElementById("reconnect");
document.getElementById("desktop-name").textContent = target;
reconnect.href = location.pathname;
document.title = TEXT.title(target);

let rfb = null;
let connected = false;
let endReason = "";
let serverReason = "";  // the gateway's own (English) words, kept as the detail

async function check() {
  // Whether the gateway lets this operator open the desktop now; the reason when it does not.
  let response;
  try {
    response = await fetch(`/api/v1/targets/${encodeURIComponent(target)}/check`, { credentials: "same-origin" });
  } catch {
    return TEXT.checkFailed;
  }
  if (response.status === 401) {
    location.assign("/login");  // signed out (idle, logged out elsewhere): sign in again
    return null;
  }
  if (response.ok) return "";
  const body = await response.json().catch(() => ({}));
  return body.error || TEXT.refused;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/vnc/${encodeURIComponent(target)}`, ["binary"]);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("close", (event) => {
    // The gateway's reason wins; otherwise keep what we already know (e.g. "you disconnected").
    if (event.reason) serverReason = event.reason;
    endReason = (event.reason && closeText(event.code, event.reason)) || endReason || (event.code === 1006 ? TEXT.lost : "");
    windowBanner.hidden = true;
    showEnded();
  });

  rfb = new RFB(document.getElementById("screen"), socket, { shared: true });
  rfb.scaleViewport = true;        // fit the remote screen to the window (the scale button toggles it)
  rfb.resizeSession = false;       // never resize the operator's remote desktop
  rfb.clipViewport = false;
  rfb.focusOnClick = true;
  window.deskgateRFB = rfb;        // for diagnostics and end-to-end tests

  rfb.addEventListener("connect", () => {
    connected = true;
    status.textContent = TEXT.connected(target);
    keysButton.disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("securityfailure", (event) => {
    endReason = event.detail.reason || TEXT.refused;
    showEnded();
  });
  rfb.addEventListener("disconnect", () => showEnded());
  attachTextInput(rfb, document.getElementById("screen"));  // text from the operator's input method
  attachClipboard(rfb, target, document.querySelector("header.bar"));  // where the policy allows it
}

document.getElementById("disconnect").addEventListener("click", () => {
  endReason = TEXT.youDisconnected;
  if (rfb) rfb.disconnect();
});

// Closing or leaving the page while connected ends the session: the browser asks first.
window.addEventListener("beforeunload", (event) => {
  if (!connected) return;
  event.preventDefault();
  event.returnValue = "";
});

// The special keys menu: keys the operator's own computer would keep for itself.
const keysButton = document.getElementById("keys-button");
const keysList = document.getElementById("keys-list");
function showKeys(open) {
  keysList.hidden = !open;
  keysButton.setAttribute("aria-expanded", String(open));
}
keysButton.addEventListener("click", () => showKeys(keysList.hidden));
document.addEventListener("click", (event) => {
  if (!document.getElementById("keys-menu").contains(event.target)) showKeys(false);
});
keysList.addEventListener("click", (event) => {
  const item = event.target.closest("button[data-keys]");
  if (!item || !rfb || !connected) return;
  const name = item.dataset.keys;
  if (name === "ctrl-alt-del") {
    rfb.sendCtrlAltDel();
  } else {
    const keys = SPECIAL_KEYS[name];
    for (const [sym, code] of keys) rfb.sendKey(KeyTable[`XK_${sym}`], code, true);
    for (const [sym, code] of [...keys].reverse()) rfb.sendKey(KeyTable[`XK_${sym}`], code, false);
  }
  showKeys(false);
  rfb.focus();
});

// 1:1 or fit to the window; the button says what it switches to.
const scaleButton = document.getElementById("scale");
scaleButton.addEventListener("click", () => {
  const fit = scaleButton.dataset.mode !== "fit";
  scaleButton.dataset.mode = fit ? "fit" : "actual";
  scaleButton.textContent = fit ? TEXT.actualSize : TEXT.fitToWindow;
  if (rfb) {
    rfb.scaleViewport = fit;
    rfb.focus();
  }
});

// Full screen; there, the browser lets the page take keys like Alt+Tab and Esc where it can (Chromium).
const fullscreenButton = document.getElementById("fullscreen");
fullscreenButton.addEventListener("click", async () => {
  if (document.fullscreenElement) {
    await document.exitFullscreen();
  } else {
    await document.documentElement.requestFullscreen();
    await navigator.keyboard?.lock?.().catch(() => {});
  }
  if (rfb) rfb.focus();
});
document.addEventListener("fullscreenchange", () => {
  fullscreenButton.textContent = document.fullscreenElement ? TEXT.exitFullScreen : TEXT.fullScreen;
});

// Notices, as server-sent events. Notices for another desktop of the same user are ignored;
// replayed ones (sent before this page connected) only rebuild who is viewing now.
const notices = new EventSource("/api/v1/notices");
const viewing = document.getElementById("viewing");
const viewersText = document.getElementById("viewers");
const viewingEnded = document.getElementById("viewing-ended");
const idleBanner = document.getElementById("idle-warning");
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
    endedBy = TEXT.endedBy(notice.by, notice.reason);
    if (!ended.hidden) showEnded();
  }
  showViewers();
});
window.deskgateNotices = notices;  // for end-to-end tests

// The policy's working hours end soon (window_closing): say when, in this browser's time; gone once the session ends.
const windowBanner = document.getElementById("window-closing");
notices.addEventListener("notice", (event) => {
  const notice = JSON.parse(event.data);
  if (notice.type !== "window_closing" || (notice.target && notice.target !== target)) return;
  const closing = new Date(notice.closing_epoch * 1000 - clockOffset);
  if (closing <= new Date()) return;
  const time = document.createElement("time");
  time.id = "window-closing-time";
  time.textContent = formatTime(closing);
  fillElements(windowBanner, TEXT.windowClosing, { time });
  windowBanner.hidden = !ended.hidden;
});

// The gateway node holding this session is stopping (node_draining): say when it closes the session.
const drainingBanner = document.getElementById("node-draining");
notices.addEventListener("notice", (event) => {
  const notice = JSON.parse(event.data);
  if (notice.type !== "node_draining" || (notice.target && notice.target !== target)) return;
  const deadline = new Date(notice.deadline_epoch * 1000 - clockOffset);
  if (deadline <= new Date()) return;
  const time = document.createElement("time");
  time.id = "node-draining-time";
  time.textContent = formatTime(deadline);
  fillElements(drainingBanner, TEXT.nodeDraining, { time });
  drainingBanner.hidden = !ended.hidden;
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

// Input on the screen reaches the gateway and restarts its idle clock: the warning no longer stands.
// Capture phase: noVNC stops the events it handles.
const screen = document.getElementById("screen");
for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
  screen.addEventListener(type, () => { idleDeadline = null; }, { capture: true, passive: true });
}
setInterval(() => {
  const left = idleDeadline === null ? 0 : idleDeadline - (Date.now() + clockOffset) / 1000;
  if (left > 0) idleBanner.textContent = TEXT.idleWarning(Math.ceil(left));
  idleBanner.hidden = !(ended.hidden && left > 0);
}, 250);

function showEnded() {
  const firstTime = ended.hidden;
  idleBanner.hidden = true;
  windowBanner.hidden = true;
  drainingBanner.hidden = true;
  connected = false;
  keysButton.disabled = true;
  showKeys(false);
  status.textContent = TEXT.disconnected;
  endedReason.textContent = endedBy || endReason || TEXT.ended;
  endedReason.dataset.reason = serverReason || endReason;
  if (serverReason && serverReason !== endedReason.textContent) endedReason.title = serverReason;
  ended.hidden = false;
  showViewers();
  // A notice saying who ended the session may still be on its way from another node.
  if (firstTime) setTimeout(() => notices.close(), 5000);
}

// Last, once everything above is in place: ask, then connect or say why not.
const refusal = await check();
if (refusal) {
  endReason = refusal;
  document.getElementById("ended-title").textContent = TEXT.refusedTitle;
  reconnect.textContent = TEXT.tryAgain;
  showEnded();
} else if (refusal === "") {
  connect();
}
