// The admin console: users (search, add, disable/enable, reset TOTP or password, groups), the
// effective access of a user from an address, targets with reachability and who is on them,
// and the policies as loaded with the last reload. Every change goes through /api/v1/admin/...
import { api, logout } from "/static/api.js";

// Every string this page shows that is not in admin.html.
const TEXT = {
  loadFailed: (what, status, error) => error || `Could not load ${what} (HTTP ${status}).`,
  yes: "yes", no: "no", unknown: "?", none: "—",
  disable: "Disable", enable: "Enable", resetTotp: "Reset TOTP", resetPassword: "Reset password",
  groups: "Groups", access: "Access",
  confirmDisable: (name) => `Disable ${name}? Their sessions end at once.`,
  confirmTotp: (name) => `Give ${name} a new authenticator key? The old one stops working and their sessions end.`,
  passwordTitle: (name) => `New password for ${name}`, passwordLabel: "Password (at least 12 characters)",
  groupsTitle: (name) => `Groups of ${name}`, groupsLabel: "Groups (separated by spaces; empty: none)",
  added: (name) => `Added ${name}.`, disabled: (name) => `Disabled ${name}.`, enabled: (name) => `Enabled ${name}.`,
  totpReset: (name) => `New authenticator key for ${name}.`, passwordSet: (name) => `New password for ${name}.`,
  groupsSet: (name, groups) => `${name} is now in ${groups.length ? groups.join(", ") : "no group"}.`,
  allowed: "allowed", denied: "denied",
  accessSummary: (data) => `${data.user} (${data.backend}; groups: ${data.groups.join(", ") || "none"}${
    data.admin ? "; administrator" : ""}) from ${data.source}. ${data.watch}.`,
  reachable: "yes", unreachable: (problem) => `no: ${problem}`, nobodyOn: "nobody",
  noReload: "No reload since this gateway started.",
  reload: (r) => r.outcome === "ok" ? `Last reload ${r.time}: applied.` : `Last reload ${r.time}: refused — ${r.error}.`,
  loadedFrom: (path) => `Loaded from ${path}.`,
};

const message = document.getElementById("message");
const say = (text, error = false) => { message.textContent = text; message.className = error ? "error" : "muted"; };

document.getElementById("logout").addEventListener("click", logout);

// -- users
const userBody = document.querySelector("#user-table tbody");
const search = document.getElementById("user-search");
search.addEventListener("input", loadUsers);

async function loadUsers() {
  const { status, data } = await api("GET", `/api/v1/admin/users?q=${encodeURIComponent(search.value.trim())}`);
  if (status === 401) return location.assign("/login");
  if (status !== 200) return say(TEXT.loadFailed("the users", status, data.error), true);
  userBody.replaceChildren(...data.users.map(userRow));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function yesNo(value) { return value === null ? TEXT.unknown : value ? TEXT.yes : TEXT.no; }

function button(label, action, className = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.dataset.action = action;
  return b;
}

function userRow(user) {
  const row = document.createElement("tr");
  row.dataset.user = user.name;
  const actions = document.createElement("td");
  actions.className = "actions";
  actions.append(
    user.disabled ? button(TEXT.enable, "enable") : button(TEXT.disable, "disable", "danger"),
    button(TEXT.resetTotp, "totp-reset"),
  );
  if (user.source === "local") actions.append(button(TEXT.resetPassword, "password"), button(TEXT.groups, "groups"));
  actions.append(button(TEXT.access, "access"));
  row.append(cell(user.name), cell(user.source), cell(user.groups === null ? TEXT.unknown : user.groups.join(", ") || TEXT.none, "wrap"),
    cell(yesNo(user.admin)), cell(yesNo(user.disabled)), cell(yesNo(user.totp_enrolled)),
    cell(user.last_login || TEXT.none), actions);
  for (const b of actions.querySelectorAll("button")) b.addEventListener("click", () => act(b.dataset.action, user));
  return row;
}

const userPath = (name) => `/api/v1/admin/users/${encodeURIComponent(name)}`;

async function act(action, user) {
  const name = user.name;
  if (action === "disable") {
    if (!confirm(TEXT.confirmDisable(name))) return;
    report(await api("POST", `${userPath(name)}/disable`, { reason: "" }), TEXT.disabled(name));
  } else if (action === "enable") {
    report(await api("POST", `${userPath(name)}/enable`, {}), TEXT.enabled(name));
  } else if (action === "totp-reset") {
    if (!confirm(TEXT.confirmTotp(name))) return;
    const answer = await api("POST", `${userPath(name)}/totp-reset`, {});
    if (report(answer, TEXT.totpReset(name))) showEnrollment(answer.data);
  } else if (action === "password") {
    edit(TEXT.passwordTitle(name), TEXT.passwordLabel, "", "password",
      (value) => api("POST", `${userPath(name)}/password`, { password: value }), () => TEXT.passwordSet(name));
  } else if (action === "groups") {
    edit(TEXT.groupsTitle(name), TEXT.groupsLabel, (user.groups || []).join(" "), "text",
      (value) => api("PUT", `${userPath(name)}/groups`, { groups: words(value) }),
      (data) => TEXT.groupsSet(name, data.groups));
  } else if (action === "access") {
    document.getElementById("access-user").value = name;
    showAccess();
    document.getElementById("access").scrollIntoView();
  }
}

function report({ status, data }, done) {
  if (status === 401) { location.assign("/login"); return false; }
  if (status !== 200) { say(data.error || `HTTP ${status}`, true); return false; }
  say(done);
  loadUsers();
  return true;
}

const words = (text) => text.split(/[\s,]+/).filter(Boolean);

// One small dialog for the one-field changes (password, groups).
const dialog = document.getElementById("edit-dialog");
const editValue = document.getElementById("edit-value");
const editError = document.getElementById("edit-error");
let pending = null;
document.getElementById("edit-cancel").addEventListener("click", () => dialog.close());
document.getElementById("edit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { status, data } = await pending.send(editValue.value);
  if (status !== 200) { editError.textContent = data.error || `HTTP ${status}`; return; }
  dialog.close();
  say(pending.done(data));
  loadUsers();
});

function edit(title, label, value, type, send, done) {
  document.getElementById("edit-title").textContent = title;
  document.getElementById("edit-label").textContent = label;
  editValue.type = type;
  editValue.value = value;
  editError.textContent = "";
  pending = { send, done };
  dialog.showModal();
}

const addForm = document.getElementById("add-form");
addForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("add-name").value.trim();
  const answer = await api("POST", "/api/v1/admin/users", {
    name, password: document.getElementById("add-password").value,
    groups: words(document.getElementById("add-groups").value), admin: document.getElementById("add-admin").checked,
  });
  if (report(answer, TEXT.added(name))) {
    addForm.reset();
    showEnrollment(answer.data);
  }
});

const enrollment = document.getElementById("enrollment");
function showEnrollment(data) {
  document.getElementById("enroll-user").textContent = data.user;
  document.getElementById("enroll-qr").src = data.qr;
  document.getElementById("enroll-secret").textContent = data.secret;
  document.getElementById("enroll-uri").textContent = data.uri;
  enrollment.hidden = false;
}
document.getElementById("enroll-done").addEventListener("click", () => {
  enrollment.hidden = true;
  document.getElementById("enroll-qr").removeAttribute("src");
  for (const id of ["enroll-secret", "enroll-uri", "enroll-user"]) document.getElementById(id).textContent = "";
});

// -- effective access
const accessTable = document.getElementById("access-table");
document.getElementById("access-form").addEventListener("submit", (event) => { event.preventDefault(); showAccess(); });

async function showAccess() {
  const user = document.getElementById("access-user").value.trim();
  const from = document.getElementById("access-from").value.trim();
  const { status, data } = await api("GET", `/api/v1/admin/access?user=${encodeURIComponent(user)}&from=${encodeURIComponent(from)}`);
  const summary = document.getElementById("access-summary");
  if (status !== 200) {
    summary.textContent = data.error || `HTTP ${status}`;
    accessTable.hidden = true;
    return;
  }
  summary.textContent = TEXT.accessSummary(data);
  accessTable.tBodies[0].replaceChildren(...data.targets.map((target) => {
    const row = document.createElement("tr");
    row.dataset.target = target.target;
    const why = cell("", "wrap");
    const lines = document.createElement("div");
    lines.textContent = target.reason;
    const details = document.createElement("ul");
    details.replaceChildren(...target.explain.map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
    why.append(lines, details);
    row.append(cell(target.target), cell(target.allowed ? TEXT.allowed : TEXT.denied, target.allowed ? "" : "error"), why);
    return row;
  }));
  accessTable.hidden = false;
}

// -- targets
const targetBody = document.querySelector("#target-table tbody");
document.getElementById("targets-refresh").addEventListener("click", loadTargets);

async function loadTargets() {
  const { status, data } = await api("GET", "/api/v1/admin/targets");
  if (status !== 200) return say(TEXT.loadFailed("the targets", status, data.error), true);
  targetBody.replaceChildren(...data.targets.map((target) => {
    const row = document.createElement("tr");
    row.dataset.target = target.name;
    const on = target.sessions.map((s) => s.user).join(", ") || TEXT.nobodyOn;
    row.append(cell(target.name), cell(`${target.protocol}://${target.host}:${target.port}`),
      cell(target.reachable ? TEXT.reachable : TEXT.unreachable(target.problem), target.reachable ? "" : "error"),
      cell(on));
    return row;
  }));
}

// -- policies
async function loadPolicies() {
  const { status, data } = await api("GET", "/api/v1/admin/policies");
  if (status !== 200) return say(TEXT.loadFailed("the policies", status, data.error), true);
  document.getElementById("reload-status").textContent =
    `${TEXT.loadedFrom(data.config)} ${data.last_reload ? TEXT.reload(data.last_reload) : TEXT.noReload}`;
  document.querySelector("#policy-table tbody").replaceChildren(...data.policies.map((policy, index) => {
    const row = document.createElement("tr");
    const settings = Object.entries(policy)
      .filter(([key, value]) => !["name", "origin", "groups", "from", "targets"].includes(key) && value !== null
        && !(Array.isArray(value) && value.length === 0))
      .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(", ") : value}`).join("; ");
    row.append(cell(String(index + 1)), cell(policy.name), cell(policy.origin), cell(policy.groups.join(", ")),
      cell(policy.from.join(", ") || TEXT.none), cell(policy.targets.join(", ")), cell(settings, "wrap"));
    return row;
  }));
}

loadUsers();
loadTargets();
loadPolicies();
