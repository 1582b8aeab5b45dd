import { api } from "/static/api.js";
import { t } from "/static/i18n.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

// What went wrong: the gateway's answer is in the page's language already (from the language cookie
// or Accept-Language); without one (no answer, or a proxy's page), a text from the status.
function refusal({ status, data }) {
  return data.error || t("Sign-in failed (HTTP {status}). Try again in a moment.", { status });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const fields = new FormData(form);
  const result = await api("POST", "/api/v1/login", {
    username: fields.get("username"),
    password: fields.get("password"),
    totp: fields.get("totp"),
  }, null);
  const { ok, status, data } = result;
  if (ok) {
    location.assign("/");
    return;
  }
  if (data.enroll) {  // the password was right; this account has no authenticator yet
    location.assign(data.enroll);
    return;
  }
  error.textContent = refusal(result);
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
