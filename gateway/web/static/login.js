import { api } from "/static/api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const fields = new FormData(form);
  const { ok, status, data } = await api("POST", "/api/v1/login", {
    username: fields.get("username"),
    password: fields.get("password"),
    totp: fields.get("totp"),
  }, null);
  if (ok) {
    location.assign("/");
    return;
  }
  if (data.enroll) {  // the password was right; this account has no authenticator yet
    location.assign(data.enroll);
    return;
  }
  error.textContent = data.error || `Sign-in failed (HTTP ${status}).`;
  error.hidden = false;
  form.elements.totp.value = "";  // a code is good once, and for 30 s: the next try needs the next one
  if (status === 401) {
    // The gateway does not say which of the three was wrong (that would confirm the password): type them again.
    form.elements.password.value = "";
    form.elements.password.focus();
  } else {
    form.elements.totp.focus();
  }
});
