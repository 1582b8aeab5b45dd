// The live sessions of every node that the signed-in supervisor may watch, refreshed every few
// seconds, each with an "End session" action that asks for a reason (the operator reads it).
import { api, logout } from "/static/api.js";
import { fillElements, formatDateTime, formatTime, t, tn } from "/static/i18n.js";

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

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("end-cancel").addEventListener("click", () => dialog.close());
endForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = endReason.value.trim();
  if (!reason) {
    endError.textContent = t("Say why: the operator reads the reason.");
    return;
  }
  const { status, data } = await api("DELETE", `/api/v1/sessions/${encodeURIComponent(ending.id)}`, { reason });
  if (status === 202) {
    dialog.close();
    refresh();
  } else {
    endError.textContent = data.error || t("The session could not be ended (HTTP {status}).", { status });
  }
});

refresh();
setInterval(refresh, REFRESH_MS);

async function refresh() {
  const { status, data } = await api("GET", "/api/v1/sessions");
  if (status === 401) return location.assign("/login");
  if (status !== 200) {
    message.textContent = data.error || t("The live sessions could not be loaded (HTTP {status}).", { status });
    message.className = "error";
    table.hidden = true;
    return;
  }
  body.replaceChildren(...data.sessions.map(sessionRow));
  table.hidden = data.sessions.length === 0;
  message.className = "muted";
  message.textContent = data.sessions.length === 0 ? t("Nobody you look after is connected now.")
    : tn("{n} live session.", "{n} live sessions.", data.sessions.length);
  refreshed.textContent = t("Updated {time}", { time: formatTime(new Date()) });
}

function sessionRow(session) {
  const row = document.createElement("tr");
  row.dataset.id = session.id;
  row.dataset.user = session.user;
  const action = document.createElement("button");
  action.type = "button";
  action.className = "danger";
  action.textContent = session.ending ? t("Ending…") : t("End session");
  action.disabled = session.ending;
  action.addEventListener("click", () => askReason(session));
  const view = document.createElement("a");
  view.href = `/live/${encodeURIComponent(session.id)}`;
  view.className = "view-live";
  view.textContent = t("View live");
  const actions = document.createElement("span");
  actions.className = "actions";
  actions.append(view, " ", action);
  const cells = [whoIs(session), session.groups.join(", "), session.target, session.source,
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
  const user = Object.assign(document.createElement("span"), { id: "end-user", textContent: whoIs(session) });
  const target = Object.assign(document.createElement("span"), { id: "end-target", textContent: session.target });
  fillElements(document.getElementById("end-title"), t("End {user}'s session?"), { user });
  fillElements(document.getElementById("end-explained"), t("The session on {target} ends at once. The operator sees your name and the reason you give; both are written to the audit log and the recording."), { target });
  endReason.value = "";
  endError.textContent = "";
  dialog.showModal();
  endReason.focus();
}

function localTime(iso) {
  return formatDateTime(iso);
}

// The login name, with the person's display name beside it where there is one.
function whoIs(session) {
  return session.display_name ? t("{name} ({user})", { name: session.display_name, user: session.user }) : session.user;
}

function duration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  const clock = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}
