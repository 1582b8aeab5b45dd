"""Translations: every text people read is in the catalogs, translated to Japanese, and no catalog
entry is left over; the converted templates show no text that bypasses the catalogs; the language
of a request (``?lang`` → cookie → ``Accept-Language`` → ``ui.language``) and its remembered choice.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from jinja2 import Environment, FileSystemLoader

from auth.errors import LOGIN_REFUSED, AccountDisabled, EnrollmentExpired, InvalidTOTP, RateLimited, UnusableUsername
from auth.names import COMPATIBILITY_FORM
from base.errors import ConfigError
from gateway.config import load_config
from gateway.errors import TargetInUse
from gateway.i18n import LANGUAGE_NAMES, LANGUAGES, negotiate, parse_accept_language, read_catalog, translator
from gateway.settings import LiveSettings, Settings
from gateway.web.app import create_app
from gateway.web.auth_messages import FIXED_MESSAGES, refusal_message
from gateway.web.keys import SETTINGS
from gateway.web.messages import LANGUAGE_COOKIE
from gateway.web.pages import TEMPLATES, remember_language, script_catalog

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "t": None, "tn": (1, 2), "say": (2,)}  # = make messages
#: Pages whose every visible text comes from the catalogs.
CONVERTED = {"login.html", "enroll.html", "recordings.html", "player.html", "portal.html", "desktop.html",
             "sessions.html", "admin.html", "live.html", "wall.html",
             "terminal.html", "live_terminal.html"}
#: Texts that are the same in every language: the product's name and the languages' own names.
UNTRANSLATED = {"deskgate", *LANGUAGE_NAMES.values()}
MARK_OPEN, MARK_CLOSE = "\u27e6", "\u27e7"  # ⟦translated⟧
VISIBLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


def code_messages() -> dict[str, list[str]]:
    """The msgids in the code (Babel's extractors, with babel.cfg's mapping) → where they are."""
    with (ROOT / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)  # type: ignore[no-untyped-call]
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, []).append(f"{filename}:{line}")
    return found


# -- (a) completeness -------------------------------------------------------------------------------


def test_every_text_in_the_code_has_a_japanese_translation() -> None:
    catalog = read_catalog("ja")
    missing = {msgid: where for msgid, where in code_messages().items()
               if (entry := catalog.get(msgid)) is None or not all(
                   entry.string if isinstance(entry.string, (tuple, list)) else [entry.string])}
    assert not missing, f"translate these in gateway/locale/ja (run `make messages` first): {missing}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_catalog_entry_is_unused_or_fuzzy(language: str) -> None:
    in_code = set(code_messages())
    catalog = read_catalog(language)
    entries = [message for message in catalog if message.id]
    ids = {message.id[0] if isinstance(message.id, (tuple, list)) else message.id for message in entries}
    assert not ids - in_code, f"unused catalog entries (run `make messages`): {sorted(ids - in_code)}"
    assert not in_code - ids, f"texts not in the {language} catalog (run `make messages`): {sorted(in_code - ids)}"
    fuzzy = [message.id for message in entries if message.fuzzy]
    assert not fuzzy and not catalog.fuzzy, f"review and un-fuzzy these entries: {fuzzy}"


def test_translations_keep_their_placeholders() -> None:
    placeholder = re.compile(r"\{(\w+)\}")
    for message in read_catalog("ja"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, (tuple, list)) else [message.id]
        strings = message.string if isinstance(message.string, (tuple, list)) else [message.string]
        expected = set(placeholder.findall(ids[-1]))
        for string in strings:
            assert set(placeholder.findall(str(string))) == expected, (message.id, string)


def test_translators_fill_placeholders_after_translating() -> None:
    ja, en = translator("ja"), translator("en")
    assert ja.gettext("Sign in") == "ログイン"
    assert en.gettext("Sign in") == "Sign in"  # an empty English msgstr is the msgid
    assert ja.gettext("Account: {username}", username="山田") == "アカウント: 山田"
    plural = ("{n} recording, newest first.", "{n} recordings, newest first.")
    assert en.ngettext(*plural, 1, n=1) == "1 recording, newest first."
    assert en.ngettext(*plural, 3, n=3) == "3 recordings, newest first."
    assert ja.ngettext(*plural, 3, n=3) == "3 件（新しい順）"


def test_the_scripts_catalog_holds_only_script_messages_and_cannot_close_its_element() -> None:
    messages = translator("ja").script_catalog_json()["messages"]
    assert isinstance(messages, dict)
    assert messages["Delete"] == "削除"  # review.js
    assert messages["{n} recording, newest first."] == ("{n} 件（新しい順）",)
    assert "Sign in to your remote desktop." not in messages  # a template's text
    assert "<" not in script_catalog("ja")


def test_sign_in_refusals_speak_the_callers_language() -> None:
    ja, en = translator("ja"), translator("en")
    for message in FIXED_MESSAGES:  # the English answer is exactly the error's own text
        assert en.gettext(message) == message
    assert LOGIN_REFUSED in FIXED_MESSAGES and str(InvalidTOTP()) in FIXED_MESSAGES
    assert str(AccountDisabled()) in FIXED_MESSAGES and str(EnrollmentExpired()) in FIXED_MESSAGES
    assert refusal_message(RateLimited(30, "user"), en) == str(RateLimited(30, "user"))
    assert refusal_message(RateLimited(30, "user"), ja) == "ログインの失敗が多すぎます。30 秒後にもう一度お試しください。"
    assert refusal_message(UnusableUsername(COMPATIBILITY_FORM), en) == str(UnusableUsername(COMPATIBILITY_FORM))
    assert "全角" in refusal_message(UnusableUsername(COMPATIBILITY_FORM), ja)


# -- (b) no visible text around the catalogs ----------------------------------------------------------


class Marking:
    """A translator that marks what it translated, so text that was not is left unmarked."""

    def gettext(self, message: str) -> str:
        return f"{MARK_OPEN}{message}{MARK_CLOSE}"

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return f"{MARK_OPEN}{singular if n == 1 else plural}{MARK_CLOSE}"


class VisibleText(HTMLParser):
    """Text nodes (not in script or style) and the attributes people see or hear."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        self.found += [value for name, value in attrs if name in VISIBLE_ATTRIBUTES and value]
        if tag == "input" and dict(attrs).get("type") in ("submit", "button"):
            self.found += [value for name, value in attrs if name == "value" and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.found.append(data)


def untranslated(text: str) -> str:
    """What is left of ``text`` that no catalog produced and that is not a name, number or punctuation."""
    text = re.sub(f"{MARK_OPEN}[^{MARK_CLOSE}]*{MARK_CLOSE}", " ", text)
    for name in UNTRANSLATED:
        text = text.replace(name, " ")
    return "".join(character for character in text
                   if not unicodedata.category(character)[0] in "PNSZ" and not character.isspace())


def render_marked(name: str) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(Marking(), newstyle=True)  # type: ignore[attr-defined]
    return env.get_template(name).render(lang="ja", timezone="Asia/Tokyo", catalog="{}", languages=LANGUAGE_NAMES)


def test_every_page_is_listed_as_converted_or_still_to_convert() -> None:
    pages = {path.name for path in TEMPLATES.glob("*.html") if not path.name.startswith("_")}
    assert pages == CONVERTED, "a new page: translate it (docs: notes) and list it in CONVERTED"


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_converted_pages_show_only_catalog_text(name: str) -> None:
    parser = VisibleText()
    parser.feed(render_marked(name))
    leftovers = [text.strip() for text in parser.found if untranslated(text)]
    assert not leftovers, f"{name}: wrap these in {{{{ _(\"…\") }}}}: {leftovers}"


def test_the_visible_text_check_finds_english_that_bypasses_the_catalog() -> None:
    env = Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(Marking(), newstyle=True)  # type: ignore[attr-defined]
    parser = VisibleText()
    parser.feed(env.from_string('<p>{{ _("Loading…") }}</p><button title="Full screen">1:1</button>'
                                '<a href="/">← Desktops</a>').render())
    assert [text.strip() for text in parser.found if untranslated(text)] == ["Full screen", "← Desktops"]


# -- (c) the language of a request --------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", ["ja", "ja", "en", "en"]),
    ("en-US,en;q=0.9,ja;q=0.8", ["en", "en", "ja"]),
    ("fr-CH, fr;q=0.9, ja;q=0.5, en;q=0.6", ["en", "ja"]),
    ("en;q=0.1, ja", ["ja", "en"]),
    ("ja;q=0, en", ["en"]),  # q=0: not acceptable
    ("JA-jp;Q=0.5", ["ja"]),
    ("ja;q=abc, en;q=2, *;q=0.3", ["*"]),  # malformed q-values are ignored
    ("", []),
])
def test_accept_language_is_ranked_by_q_values(header: str, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize(("accept", "cookie", "default", "expected"), [
    ("ja-JP,ja;q=0.9", None, "en", "ja"),
    ("en-US", None, "ja", "en"),
    ("fr, de", None, "ja", "ja"),  # nothing supported: the site's default
    (None, None, "ja", "ja"),
    ("*", None, "ja", "ja"),
    ("ja", "en", "ja", "en"),  # the remembered choice comes first
    ("en", "ja", "en", "ja"),
    ("ja", "fr", "en", "ja"),  # an unsupported cookie is ignored
])
def test_negotiation_order(accept: str | None, cookie: str | None, default: str, expected: str) -> None:
    assert negotiate(accept, cookie, default) == expected


def config_file(tmp_path: Path, ui: str = "") -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text(textwrap.dedent("""\
        auth:
          local: {users_file: users.yaml}
        storage: {recordings: recordings, database: "sqlite:///deskgate.db"}
        """) + ui)
    return path


@pytest.mark.parametrize(("ui", "language", "zone"), [
    ("", "en", "UTC"),
    ("ui: {language: ja}\n", "ja", "Asia/Tokyo"),
    ("ui: {language: ja, timezone: Europe/Berlin}\n", "ja", "Europe/Berlin"),
    ("ui: {timezone: America/New_York}\n", "en", "America/New_York"),
])
def test_ui_config_defaults(tmp_path: Path, ui: str, language: str, zone: str) -> None:
    config = load_config(config_file(tmp_path, ui))
    assert (config.ui.language, config.ui.timezone) == (language, zone)


@pytest.mark.parametrize(("ui", "message"), [
    ("ui:\n  language: fr\n", ":5: ui.language: 'fr' is not one of ja, en"),
    ("ui:\n  timezone: Asia/Tokio\n", ":5: ui.timezone: 'Asia/Tokio' is not a time zone"),
    ("ui:\n  timezone: ../../etc/passwd\n", ":5: ui.timezone:"),
    ("ui:\n  lang: ja\n", ":5: ui.lang: unknown key; did you mean 'language'?"),
])
def test_ui_config_errors_name_file_line_and_key(tmp_path: Path, ui: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file(tmp_path, ui))
    assert message in str(error.value)


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    yield await aiohttp_client(create_app(load_config(config_file(tmp_path, "ui: {language: ja}\n"))))


def html_lang(body: str) -> str:
    match = re.search(r'<html lang="(\w+)">', body)
    assert match, body[:200]
    return match.group(1)


async def test_pages_answer_in_the_negotiated_language(client: Client) -> None:
    response = await client.get("/login")
    body = await response.text()
    assert (html_lang(body), response.headers["Content-Language"]) == ("ja", "ja")  # the site's default
    assert "<title>deskgate — ログイン</title>" in body
    assert '<meta name="deskgate-timezone" content="Asia/Tokyo">' in body
    assert '<script type="application/json" id="deskgate-catalog">{"language": "ja"' in body
    assert "Accept-Language" in response.headers["Vary"]
    response = await client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9,ja;q=0.5"})
    assert html_lang(await response.text()) == "en"
    assert "Sign in to your remote desktop." in await response.text()


async def test_lang_parameter_is_remembered_and_redirects_to_the_same_page(client: Client) -> None:
    response = await client.get("/recordings?user=al&lang=en", allow_redirects=False,
                                headers={"Accept-Language": "ja"})
    assert response.status == 302
    assert response.headers["Location"] == "/recordings?user=al"
    cookie = response.cookies[LANGUAGE_COOKIE]
    assert cookie.value == "en"
    assert (cookie["path"], cookie["samesite"], int(cookie["max-age"])) == ("/", "Lax", 365 * 24 * 3600)
    assert not cookie["secure"]  # no TLS here
    response = await client.get("/login", headers={"Accept-Language": "ja"})  # the cookie now comes first
    assert html_lang(await response.text()) == "en"
    response = await client.get("/login?lang=ja", allow_redirects=False)
    assert (response.headers["Location"], response.cookies[LANGUAGE_COOKIE].value) == ("/login", "ja")


def test_the_language_cookie_is_secure_behind_tls(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, 'listen: {public_url: "https://gateway.example.com"}\n'))
    app = web.Application()
    app[SETTINGS] = LiveSettings(Settings.from_config(config))
    redirect = remember_language(make_mocked_request("GET", "/login?lang=ja", app=app))
    assert redirect is not None
    assert redirect.cookies[LANGUAGE_COOKIE]["secure"] is True
    assert remember_language(make_mocked_request("GET", "/login", app=app)) is None


async def test_an_unsupported_lang_is_dropped_without_being_remembered(client: Client) -> None:
    response = await client.get("/login?lang=xx", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    assert LANGUAGE_COOKIE not in response.cookies


async def test_signed_out_pages_still_remember_the_language_then_send_to_login(client: Client) -> None:
    response = await client.get("/recordings/some-id?lang=en", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/recordings/some-id")
    response = await client.get("/recordings/some-id", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/login")


async def test_the_enrollment_page_switches_language_too(client: Client) -> None:
    response = await client.get("/enroll?lang=en", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/enroll")
    assert response.cookies[LANGUAGE_COOKIE].value == "en"


async def test_a_refused_sign_in_is_told_in_the_callers_language(client: Client) -> None:
    body: dict[str, Any] = {"username": "nobody", "password": "wrong-password", "totp": "000000"}
    response = await client.post("/api/v1/login", json=body, headers={"Accept-Language": "ja-JP"})
    assert response.status == 401
    assert (await response.json())["error"] == translator("ja").gettext(LOGIN_REFUSED)
    response = await client.post("/api/v1/login", json=body, headers={"Accept-Language": "en"})
    assert (await response.json())["error"] == LOGIN_REFUSED


async def test_the_gateways_refusals_speak_the_callers_language(client: Client) -> None:
    for path in ("/api/v1/targets/desk-01/check", "/api/v1/sessions", "/api/v1/targets"):
        response = await client.get(path, headers={"Accept-Language": "ja-JP"})
        assert (response.status, (await response.json())["error"]) == (401, "先にログインしてください")
        response = await client.get(path, headers={"Accept-Language": "en"})
        assert (await response.json())["error"] == "log in first"
    response = await client.post("/api/v1/password", json={}, headers={"Origin": "https://elsewhere.example"})
    assert (response.status, (await response.json())["error"]) == (403, "別のサイトからの要求は受け付けられません")


@pytest.mark.parametrize(("holders", "limit", "english", "japanese"), [
    (("bob",), 1, "desk-01 is in use by another operator; choose another desktop or try again later",
     "desk-01 はほかのオペレーターが使用中です。別のデスクトップを選ぶか、しばらくしてからもう一度お試しください"),
    (("alice",), 1, "you already have desk-01 open in another window or tab; use that one, or close it and try again",
     "desk-01 はすでに別のウィンドウまたはタブで開いています。そちらを使うか、閉じてからもう一度お試しください"),
    (("bob", "carol"), 2, "desk-01 already has 2 sessions open, its limit; try again later or choose another desktop",
     "desk-01 はすでに上限の 2 セッションが使用中です。しばらくしてからもう一度お試しいただくか、別のデスクトップを選んでください"),
])
def test_a_desktop_in_use_is_explained_in_either_language(holders: tuple[str, ...], limit: int, english: str,
                                                          japanese: str) -> None:
    refusal = TargetInUse("desk-01", limit, holders, "alice")
    assert (refusal.reason, str(refusal), refusal.explain(translator("en"))) == (english, english, english)
    assert refusal.explain(translator("ja")) == japanese
