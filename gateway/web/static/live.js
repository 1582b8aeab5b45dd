// The live view of one operator's session: noVNC, view only and scaled, over /ws/live/{id}.
// The gateway sends nothing of this page's input to the operator's desktop; viewOnly also keeps
// noVNC from sending it. The visible strings are translated (static/i18n.js).
import RFB from "/static/novnc/core/rfb.js";
import { api } from "/static/api.js";
import { t } from "/static/i18n.js";

const strings = {
  whose: (user, target) => t("{user}'s screen on {target}", { user, target }),
  connected: t("Watching live; the operator sees that you are viewing"),
  lost: t("the connection to the gateway was lost"),
  ended: t("The live view has ended."),
};
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
const status = document.getElementById("status");
const ended = document.getElementById("ended");
const endedReason = document.getElementById("ended-reason");

api("GET", `/api/v1/sessions/${encodeURIComponent(sessionId)}`).then(({ ok, data }) => {
  if (!ok) return;
  const user = data.display_name ? t("{name} ({user})", { name: data.display_name, user: data.user }) : data.user;
  const whose = strings.whose(user, data.target);
  document.getElementById("whose").textContent = whose;
  document.title = t("deskgate — {target}", { target: whose });
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
