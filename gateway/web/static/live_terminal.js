// The live view of one operator's terminal session: a read-only xterm.js over /ws/live/{id}.
// The gateway sends a text frame {"size":[cols,rows]} (first, and at every resize) and the
// terminal's output as binary frames (recent output first); it drops anything this page sends,
// and the page sends nothing (disableStdin). The visible strings are translated (static/i18n.js).
import { api } from "/static/api.js";
import { t } from "/static/i18n.js";

const strings = {
  whose: (user, target) => t("{user}'s terminal on {target}", { user, target }),
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

const term = new Terminal({ disableStdin: true, cursorBlink: false, scrollback: 5000,
                            fontFamily: '"DejaVu Sans Mono", "Noto Sans Mono CJK JP", monospace' });
term.open(document.getElementById("terminal"));
window.deskgateTerminal = term;  // for end-to-end tests

const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/live/${encodeURIComponent(sessionId)}`);
socket.binaryType = "arraybuffer";
socket.addEventListener("open", () => { status.textContent = strings.connected; });
socket.addEventListener("message", (event) => {
  if (typeof event.data === "string") {
    const { size } = JSON.parse(event.data);
    if (size) term.resize(size[0], size[1]);
  } else {
    term.write(new Uint8Array(event.data));
  }
});
socket.addEventListener("close", (event) => {
  status.textContent = "";
  endedReason.textContent = event.reason || (event.code === 1006 ? strings.lost : strings.ended);
  ended.hidden = false;
});
