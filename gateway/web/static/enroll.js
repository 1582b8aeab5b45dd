import { api } from "/static/api.js";
import { t } from "/static/i18n.js";

const form = document.getElementById("enroll-form");
const error = document.getElementById("enroll-error");

function fail(message) {
  error.textContent = message;
  error.hidden = false;
}

const { ok, status, data } = await api("GET", "/api/v1/totp/enrollment");
if (status === 401) {
  location.assign("/login");
} else if (!ok) {
  fail(data.error || t("Could not start the set-up (HTTP {status}).", { status }));
} else {
  document.getElementById("enroll-for").textContent = t("Account: {username}", { username: data.username });
  const qr = document.getElementById("qr");
  qr.src = data.qr;  // an SVG data: URI, shown as an image: no markup from the server enters the page
  qr.hidden = false;
  document.getElementById("secret").textContent = data.secret.match(/.{1,4}/g).join(" ");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const code = new FormData(form).get("code");
    const result = await api("POST", "/api/v1/totp/enrollment", { totp: code }, data.csrf_token);
    if (result.ok) {
      location.assign("/");
      return;
    }
    if (result.data.sign_in) {  // the enrollment expired: start again from the login page
      location.assign(result.data.sign_in);
      return;
    }
    fail(result.data.error || t("The code was refused (HTTP {status}).", { status: result.status }));
    form.elements.code.value = "";
    form.elements.code.focus();
  });
}
