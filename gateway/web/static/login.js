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
  });
  if (ok) {
    location.assign("/");
    return;
  }
  error.textContent = data.error || `Sign-in failed (HTTP ${status}).`;
  error.hidden = false;
  form.elements.totp.value = "";
  form.elements.totp.focus();
});
