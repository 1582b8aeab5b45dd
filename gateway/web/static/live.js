// The live view of one operator's session: noVNC, view only and scaled, over /ws/live/{id}.
// The gateway sends nothing of this page's input to the operator's desktop; viewOnly also keeps
// noVNC from sending it. The visible strings are in the page's <template id="strings">.
import RFB from "/static/novnc/core/rfb.js";
import { api } from "/static/api.js";

const strings = Object.fromEntries([...document.getElementById("strings").content.querySelectorAll("[data-key]")]
  .map((element) => [element.dataset.key, element.textContent]));
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
const status = document.getElementById("status");
const ended = document.getElementById("ended");
const endedReason = document.getElementById("ended-reason");

api("GET", `/api/v1/sessions/${encodeURIComponent(sessionId)}`).then(({ ok, data }) => {
  if (!ok) return;
  const whose = strings.whose.replace("{user}", data.user).replace("{target}", data.target);
  document.getElementById("whose").textContent = whose;
  document.title = `deskgate — ${whose}`;
});

const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/live/${encodeURIComponent(sessionId)}`, ["binary"]);
socket.binaryType = "arraybuffer";
let endReason = "";
socket.addEventListener("close", (event) => {
  endReason = event.reason || endReason || (event.code === 1006 ? strings.lost : "");
  showEnded();
});

const rfb = new RFB(document.getElementById("screen"), socket, { shared: true });
rfb.viewOnly = true;
rfb.scaleViewport = true;
rfb.resizeSession = false;
rfb.clipViewport = false;
window.deskgateRFB = rfb;  // for end-to-end tests

rfb.addEventListener("connect", () => { status.textContent = strings.connected; });
rfb.addEventListener("securityfailure", (event) => {
  endReason = event.detail.reason || endReason;
  showEnded();
});
rfb.addEventListener("disconnect", () => showEnded());

function showEnded() {
  status.textContent = "";
  endedReason.textContent = endReason || strings.ended;
  ended.hidden = false;
}
