// The pages' translations and dates. The gateway renders each page in the caller's language and
// hands its scripts the messages they show in a JSON block (<script type="application/json"
// id="deskgate-catalog">), and the site's time zone in <meta name="deskgate-timezone">: no extra
// request. Mark every text a script shows as t("English text", {name: value}) (tn for a count) so
// `make messages` finds it; placeholders are {name}, filled in after translation.

const block = document.getElementById("deskgate-catalog");
const catalog = block ? JSON.parse(block.textContent) : {};
const messages = catalog.messages ?? {};

// The page's language (ja, en) and the site's time zone (an IANA name; the browser's own if absent).
export const lang = document.documentElement.lang || "en";
export const timeZone = document.querySelector('meta[name="deskgate-timezone"]')?.content || undefined;

function fill(text, params) {
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// The translation of ``msgid`` (its English text when the catalog has none), placeholders filled.
export function t(msgid, params) {
  const text = messages[msgid];
  return fill(typeof text === "string" && text ? text : msgid, params);
}

// A message that depends on a count: {n} is the count. English has two forms, Japanese one.
export function tn(singular, plural, n, params) {
  const forms = messages[singular];
  let text;
  if (Array.isArray(forms) && forms.length) {
    const index = forms.length === 1 ? 0 : new Intl.PluralRules(lang).select(n) === "one" ? 0 : 1;
    text = forms[Math.min(index, forms.length - 1)];
  } else {
    text = n === 1 ? singular : plural;
  }
  return fill(text, { n, ...params });
}

// A date and time in the page's language and the site's time zone; ``withZone`` names the zone.
export function formatDateTime(date, { withZone = false } = {}) {
  const value = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(value.getTime())) return "";
  return new Intl.DateTimeFormat(lang, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit",
    timeZone, ...(withZone ? { timeZoneName: "short" } : {}),
  }).format(value);
}

// A time of day (hours and minutes) in the page's language and the site's time zone.
export function formatTime(date) {
  return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", timeZone }).format(date);
}

// Puts ``text`` (a translated sentence) into ``container`` with each {name} in ``elements`` replaced
// by that element: a sentence with live parts in it, in the word order of the page's language.
export function fillElements(container, text, elements) {
  const parts = text.split(/\{(\w+)\}/);
  container.replaceChildren(...parts.map((part, index) =>
    index % 2 === 1 && part in elements ? elements[part] : index % 2 === 1 ? `{${part}}` : part));
}

// Milliseconds the site's time zone is ahead of UTC at the instant ``ms``.
function zoneOffset(ms) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  }).formatToParts(new Date(ms)).map(({ type, value }) => [type, Number(value)]));
  const asUTC = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return asUTC - Math.floor(ms / 1000) * 1000;
}

// The instant a day ("YYYY-MM-DD", plus ``addDays``) begins in the site's time zone; null if it is no date.
export function siteDayStart(day, addDays = 0) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) return null;
  const midnight = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + addDays);
  if (Number.isNaN(midnight)) return null;
  const first = midnight - zoneOffset(midnight);
  return new Date(midnight - zoneOffset(first));  // the offset at that instant (a DST change that day)
}

// The switcher's links keep the address the page is at now (its search, its #t=): the gateway
// remembers the language and redirects back to it.
for (const link of document.querySelectorAll("nav.languages a[hreflang]")) {
  link.addEventListener("click", () => {
    const here = new URL(location.href);
    here.searchParams.set("lang", link.hreflang);
    link.href = here.pathname + here.search + here.hash;
  });
}
