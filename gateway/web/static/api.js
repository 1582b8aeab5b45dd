// Small helpers shared by the pages: JSON calls to the gateway's API.
//
// Every state-changing call carries the session's CSRF token (X-CSRF-Token), fetched once
// from GET /api/v1/session; the gateway refuses such calls without it.
import { t } from "/static/i18n.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
let sessionToken = null;

async function csrfToken() {
  if (sessionToken === null) {
    const response = await fetch("/api/v1/session", { credentials: "same-origin" });
    sessionToken = response.ok ? (await response.json()).csrf_token : "";
  }
  return sessionToken;
}

// csrf: the token to send; undefined means the session's, null means none (signing in).
export async function api(method, path, body, csrf) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (!SAFE_METHODS.has(method) && csrf !== null) {
    options.headers["X-CSRF-Token"] = csrf === undefined ? await csrfToken() : csrf;
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {  // no answer at all: the network, or the gateway is down
    return { status: 0, ok: false, data: { error: t("Cannot reach the gateway. Check the network connection, then try again.") } };
  }
  let data = {};
  try { data = await response.json(); } catch { /* an empty or non-JSON body */ }
  return { status: response.status, ok: response.ok, data };
}

export async function logout() {
  await api("POST", "/api/v1/logout");
  location.assign("/login");
}
