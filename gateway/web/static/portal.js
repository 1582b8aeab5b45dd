import { api, logout } from "/static/api.js";

document.getElementById("logout").addEventListener("click", logout);

const message = document.getElementById("portal-message");
const list = document.getElementById("targets");
const { status, data } = await api("GET", "/api/v1/targets");
if (status === 401) {
  location.assign("/login");
} else if (status !== 200) {
  message.textContent = data.error || `Could not load your desktops (HTTP ${status}).`;
} else {
  document.getElementById("whoami").textContent = `Signed in as ${data.user}`;
  showRecordingsLinkIfAllowed();
  document.getElementById("sessions-link").hidden = !data.may_watch;  // supervisors (policy `watch`), admins
  message.textContent = data.targets.length
    ? "Choose a desktop to open."
    : "No desktop is available to you from this network. Ask your administrator.";
  for (const target of data.targets) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    const page = { vnc: "desktop", ssh: "terminal" }[target.protocol];
    link.href = page ? `/${page}/${encodeURIComponent(target.name)}` : "#";
    link.textContent = target.name;
    link.dataset.target = target.name;
    item.append(link);
    list.append(item);
  }
}

// Supervisors and admins (a policy with `recordings: own|all`) get a link to the recordings.
async function showRecordingsLinkIfAllowed() {
  const { status } = await api("GET", "/api/v1/recordings?limit=1");
  document.getElementById("recordings-link").hidden = status !== 200;
}
