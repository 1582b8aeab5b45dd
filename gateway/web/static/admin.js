// The admin console: users (search, add, disable/enable, reset TOTP or password, groups), the
// effective access of a user from an address, targets with reachability and who is on them,
// and the policies as loaded with the last reload. Every change goes through /api/v1/admin/...
import { api, logout } from "/static/api.js";
import { fillElements, t } from "/static/i18n.js";

// Every string this page shows that is not in admin.html, translated (static/i18n.js).
const TEXT = {
  usersFailed: (status) => t("Could not load the users (HTTP {status}).", { status }),
  targetsFailed: (status) => t("Could not load the targets (HTTP {status}).", { status }),
  policiesFailed: (status) => t("Could not load the policies (HTTP {status}).", { status }),
  yes: t("yes"), no: t("no"), unknown: "?", none: "—",
  disable: t("Disable"), enable: t("Enable"), resetTotp: t("Reset TOTP"), resetPassword: t("Reset password"),
  groups: t("Groups"), access: t("Access"), displayName: t("Display name"),
  displayNameTitle: (name) => t("Display name of {name}", { name }),
  displayNameLabel: t("Display name (empty: none)"),
  displayNameSet: (name, shown) => t("{name} is now shown as {shown}.", { name, shown }),
  displayNameRemoved: (name) => t("{name} has no display name now.", { name }),
  confirmDisable: (name) => t("Disable {name}? Their sessions end at once.", { name }),
  confirmTotp: (name) => t("Give {name} a new authenticator key? The old one stops working and their sessions end.", { name }),
  passwordTitle: (name) => t("New password for {name}", { name }), passwordLabel: t("Password (at least 12 characters)"),
  groupsTitle: (name) => t("Groups of {name}", { name }), groupsLabel: t("Groups (separated by spaces; empty: none)"),
  added: (name) => t("Added {name}.", { name }), disabled: (name) => t("Disabled {name}.", { name }),
  enabled: (name) => t("Enabled {name}.", { name }),
  totpReset: (name) => t("New authenticator key for {name}.", { name }), passwordSet: (name) => t("New password for {name}.", { name }),
  groupsSet: (name, groups) => groups.length ? t("{name} is now in {groups}.", { name, groups: groups.join(", ") })
    : t("{name} is now in no group.", { name }),
  allowed: t("allowed"), denied: t("denied"),
  accessSummary: (data) => (data.admin
    ? t("{user} ({backend}; groups: {groups}; administrator) from {source}. {watch}.", summaryValues(data))
    : t("{user} ({backend}; groups: {groups}) from {source}. {watch}.", summaryValues(data))),
  reachable: t("yes"), unreachable: (problem) => t("no: {problem}", { problem }), nobodyOn: t("nobody"),
  noReload: t("No reload since this gateway started."),
  reload: (r) => r.outcome === "ok" ? t("Last reload {time}: applied.", { time: r.time })
    : t("Last reload {time}: refused — {error}.", { time: r.time, error: r.error }),
  loadedFrom: (path) => t("Loaded from {path}.", { path }),
  httpStatus: (status) => t("HTTP {status}", { status }),
};

function summaryValues(data) {
  return { user: data.user, backend: data.backend, groups: data.groups.join(", ") || t("none"),
    source: data.source, watch: data.watch };
}

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
  if (status !== 200) return say(data.error || TEXT.usersFailed(status), true);
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
  if (user.source === "local") {
    actions.append(button(TEXT.resetPassword, "password"), button(TEXT.groups, "groups"),
      button(TEXT.displayName, "display-name"));
  }
  actions.append(button(TEXT.access, "access"));
  row.append(cell(user.name), cell(user.display_name || TEXT.none), cell(user.source), cell(user.groups === null ? TEXT.unknown : user.groups.join(", ") || TEXT.none, "wrap"),
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
  } else if (action === "display-name") {
    edit(TEXT.displayNameTitle(name), TEXT.displayNameLabel, user.display_name || "", "text",
      (value) => api("PUT", `${userPath(name)}/display-name`, { display_name: value }),
      (data) => data.display_name ? TEXT.displayNameSet(name, data.display_name) : TEXT.displayNameRemoved(name));
  } else if (action === "access") {
    document.getElementById("access-user").value = name;
    showAccess();
    document.getElementById("access").scrollIntoView();
  }
}

function report({ status, data }, done) {
  if (status === 401) { location.assign("/login"); return false; }
  if (status !== 200) { say(data.error || TEXT.httpStatus(status), true); return false; }
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
  if (status !== 200) { editError.textContent = data.error || TEXT.httpStatus(status); return; }
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
    display_name: document.getElementById("add-display-name").value.trim(),
    groups: words(document.getElementById("add-groups").value), admin: document.getElementById("add-admin").checked,
  });
  if (report(answer, TEXT.added(name))) {
    addForm.reset();
    showEnrollment(answer.data);
  }
});

const enrollment = document.getElementById("enrollment");
function showEnrollment(data) {
  const user = Object.assign(document.createElement("span"), { id: "enroll-user", textContent: data.user });
  const key = Object.assign(document.createElement("code"), { id: "enroll-secret", className: "secret" });
  fillElements(document.getElementById("enroll-title"), t("Authenticator for {user}"), { user });
  fillElements(document.getElementById("enroll-key"), t("Key: {key}"), { key });
  document.getElementById("enroll-qr").src = data.qr;
  document.getElementById("enroll-secret").textContent = data.secret;
  document.getElementById("enroll-uri").textContent = data.uri;
  enrollment.hidden = false;
}
document.getElementById("enroll-done").addEventListener("click", () => {
  enrollment.hidden = true;
  document.getElementById("enroll-qr").removeAttribute("src");
  for (const id of ["enroll-key", "enroll-uri", "enroll-title"]) document.getElementById(id).textContent = "";
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
    summary.textContent = data.error || TEXT.httpStatus(status);
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
  if (status !== 200) return say(data.error || TEXT.targetsFailed(status), true);
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
  if (status !== 200) return say(data.error || TEXT.policiesFailed(status), true);
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
