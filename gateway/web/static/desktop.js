// The desktop page: noVNC over the gateway's WebSocket. The gateway has already
// authenticated the user (cookie) and holds the target's password; RFB security here is None.
import RFB from "/static/novnc/core/rfb.js";
import { api } from "/static/api.js";

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

// Idle warning: the gateway ends a session after the policy's idle timeout without keyboard or
// mouse input, and journals a warning shortly before; this page mirrors that clock so the
// operator sees the warning too. Capture phase: noVNC stops the events it handles.
const idleBanner = document.getElementById("idle-warning");
const idleSeconds = document.getElementById("idle-seconds");
let lastInput = performance.now();
for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
  window.addEventListener(type, () => { lastInput = performance.now(); }, { capture: true, passive: true });
}

async function watchIdle() {
  const { ok, data } = await api("GET", "/api/v1/targets");
  const entry = ok ? data.targets.find((t) => t.name === target) : undefined;
  if (!entry || entry.idle_timeout === null) return;
  setInterval(() => {
    const left = entry.idle_timeout - (performance.now() - lastInput) / 1000;
    const warn = ended.hidden && left <= entry.idle_warning && left > 0;
    idleSeconds.textContent = String(Math.ceil(left));
    idleBanner.hidden = !warn;
  }, 250);
}
watchIdle();

function showEnded() {
  idleBanner.hidden = true;
  status.textContent = "Disconnected";
  endedReason.textContent = endReason || "The session has ended.";
  endedReason.dataset.reason = endReason;
  ended.hidden = false;
}
