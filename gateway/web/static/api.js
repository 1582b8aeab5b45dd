// Small helpers shared by the pages: JSON calls to the gateway's API.

export async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch { /* an empty or non-JSON body */ }
  return { status: response.status, ok: response.ok, data };
}

export async function logout() {
  await api("POST", "/api/v1/logout");
  location.assign("/login");
}
