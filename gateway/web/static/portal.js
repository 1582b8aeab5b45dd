import { api, logout } from "/static/api.js";
import { t } from "/static/i18n.js";

document.getElementById("logout").addEventListener("click", logout);

const message = document.getElementById("portal-message");
const list = document.getElementById("targets");
const { status, data } = await api("GET", "/api/v1/targets");
if (status === 401) {
  location.assign("/login");
} else if (status !== 200) {
  message.textContent = data.error || t("Could not load your desktops (HTTP {status}).", { status });
} else {
  document.getElementById("whoami").textContent = data.display_name
    ? t("Signed in as {name} ({user})", { name: data.display_name, user: data.user })
    : t("Signed in as {user}", { user: data.user });
  showRecordingsLinkIfAllowed();
  document.getElementById("sessions-link").hidden = !data.may_watch;  // supervisors (policy `watch`), admins
  document.getElementById("admin-link").hidden = !data.admin;
  document.getElementById("admin-hint").hidden = !data.admin || data.targets.length > 0;
  document.getElementById("password-section").hidden = !data.own_password;
  document.getElementById("wall-link").hidden = !data.may_watch;
  message.textContent = data.targets.length
    ? t("Choose a desktop to open.")
    : data.admin ? t("No desktop is available to you from this network.")
    : t("No desktop is available to you from this network. Ask your administrator.");
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

// A local user's own password: current, then the new one twice; other sign-ins of theirs end.
const passwordForm = document.getElementById("password-form");
const passwordMessage = document.getElementById("password-message");
passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = (id) => document.getElementById(id).value;
  const { status, data: answer } = await api("POST", "/api/v1/password",
    { current: value("password-current"), new: value("password-new"), repeat: value("password-repeat") });
  passwordMessage.className = status === 200 ? "muted" : "error";
  passwordMessage.textContent = status === 200
    ? t("Your password is changed. Your other sign-ins have ended.")
    : answer.error || t("Your password could not be changed (HTTP {status}).", { status });
  if (status === 200) passwordForm.reset();
});
