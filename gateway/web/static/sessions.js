// The live sessions of every node that the signed-in supervisor may watch, refreshed every few
// seconds, each with an "End session" action that asks for a reason (the operator reads it).
import { api, logout } from "/static/api.js";

const REFRESH_MS = 3000;

const message = document.getElementById("message");
const table = document.getElementById("sessions");
const body = table.tBodies[0];
const refreshed = document.getElementById("refreshed");
const dialog = document.getElementById("end-dialog");
const endForm = document.getElementById("end-form");
const endReason = document.getElementById("end-reason");
const endError = document.getElementById("end-error");
let ending = null;  // the session the dialog is about
const viewLabel = document.getElementById("strings").content.querySelector('[data-key="view"]').textContent;

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("end-cancel").addEventListener("click", () => dialog.close());
endForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = endReason.value.trim();
  if (!reason) {
    endError.textContent = "Say why: the operator reads the reason.";
    return;
  }
  const { status, data } = await api("DELETE", `/api/v1/sessions/${encodeURIComponent(ending.id)}`, { reason });
  if (status === 202) {
    dialog.close();
    refresh();
  } else {
    endError.textContent = data.error || `The session could not be ended (HTTP ${status}).`;
  }
});

refresh();
setInterval(refresh, REFRESH_MS);

async function refresh() {
  const { status, data } = await api("GET", "/api/v1/sessions");
  if (status === 401) return location.assign("/login");
  if (status !== 200) {
    message.textContent = data.error || `The live sessions could not be loaded (HTTP ${status}).`;
    message.className = "error";
    table.hidden = true;
    return;
  }
  body.replaceChildren(...data.sessions.map(sessionRow));
  table.hidden = data.sessions.length === 0;
  message.className = "muted";
  message.textContent = data.sessions.length === 0 ? "Nobody you look after is connected now."
    : data.sessions.length === 1 ? "1 live session." : `${data.sessions.length} live sessions.`;
  refreshed.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function sessionRow(session) {
  const row = document.createElement("tr");
  row.dataset.id = session.id;
  row.dataset.user = session.user;
  const action = document.createElement("button");
  action.type = "button";
  action.className = "danger";
  action.textContent = session.ending ? "Ending…" : "End session";
  action.disabled = session.ending;
  action.addEventListener("click", () => askReason(session));
  const view = document.createElement("a");
  view.href = `/live/${encodeURIComponent(session.id)}`;
  view.className = "view-live";
  view.textContent = viewLabel;
  const actions = document.createElement("span");
  actions.className = "actions";
  actions.append(view, " ", action);
  const cells = [session.user, session.groups.join(", "), session.target, session.source,
    localTime(session.started), duration((Date.now() - Date.parse(session.started)) / 1000),
    duration(session.idle_seconds), session.viewers, session.node, actions];
  for (const content of cells) {
    const cell = document.createElement("td");
    cell.append(content ?? "");
    row.append(cell);
  }
  for (const index of [5, 6, 7]) row.cells[index].className = "number";
  return row;
}

function askReason(session) {
  ending = session;
  document.getElementById("end-user").textContent = session.user;
  document.getElementById("end-target").textContent = session.target;
  endReason.value = "";
  endError.textContent = "";
  dialog.showModal();
  endReason.focus();
}

function localTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function duration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  const clock = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}
