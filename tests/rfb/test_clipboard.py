"""The Extended Clipboard: its messages as bytes, the framers' limits on it, and the proxy's clipboard rule on it."""

from __future__ import annotations

import zlib

import pytest

from gateway.rfb.clipboard import (
    ClipboardAction,
    ClipboardFormat,
    ExtendedClientCutText,
    ExtendedServerCutText,
)
from gateway.rfb.errors import LimitExceeded, LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    ProtocolFailed,
    ServerMessageFramer,
    ServerMessageReceived,
)
from gateway.rfb.messages import RGBX8888, ClientCutText, KeyEvent, ServerCutText
from gateway.rfb.proxy import ClipboardBlocked, ConnectionClosed, InputCounted, ProxyConnection, ProxyFailed, Side
from tests.rfb.helpers import feed as feed_framer
from tests.rfb.proxy_helpers import SERVER_INIT, feed

JAPANESE = "山田太郎\n東京都千代田区"
NOTIFY = ClipboardAction.NOTIFY
REQUEST = ClipboardAction.REQUEST
PEEK = ClipboardAction.PEEK


def test_a_provide_of_japanese_text_is_utf8_with_crlf_and_a_nul_deflated_as_the_spec_says() -> None:
    wire = ExtendedClientCutText.provide_text(JAPANESE).encode()
    assert wire[:4] == bytes((6, 0, 0, 0))
    length = int.from_bytes(wire[4:8], "big", signed=True)
    assert length == -(len(wire) - 8)
    assert wire[8:12] == bytes((0x10, 0, 0, 1))  # provide, text
    data = "山田太郎\r\n東京都千代田区".encode() + b"\0"
    assert zlib.decompress(wire[12:]) == len(data).to_bytes(4, "big") + data
    [event] = feed_framer(ClientMessageFramer(), [wire])
    assert isinstance(event, ClientMessageReceived) and isinstance(event.message, ExtendedClientCutText)
    assert event.message.text == JAPANESE
    assert event.message.action == ClipboardAction.PROVIDE
    assert event.message.inflated_length == len(data)
    assert event.raw == wire


def test_caps_list_the_senders_actions_and_a_size_per_format() -> None:
    caps = ExtendedServerCutText.caps(ClipboardAction.REQUEST | ClipboardAction.PROVIDE, {ClipboardFormat.TEXT: 1 << 20})
    wire = caps.encode()
    assert wire == bytes((3, 0, 0, 0)) + (-8).to_bytes(4, "big", signed=True) + bytes((0x13, 0, 0, 1)) \
        + (1 << 20).to_bytes(4, "big")
    framer = ServerMessageFramer(RGBX8888, 64, 48)
    [event] = feed_framer(framer, [wire])
    assert isinstance(event, ServerMessageReceived) and event.message == caps
    assert event.message.action == ClipboardAction.CAPS and event.message.text is None


def test_noVNCs_caps_with_no_format_bit_but_a_size_still_frame() -> None:
    """noVNC 1.x answers caps with formats 0 and one size word: framed, not refused."""
    wire = bytes((6, 0, 0, 0)) + (-8).to_bytes(4, "big", signed=True) + bytes((0x1F, 0, 0, 0)) + bytes(4)
    [event] = feed_framer(ClientMessageFramer(), [wire])
    assert isinstance(event, ClientMessageReceived) and event.message.action == ClipboardAction.CAPS


def test_classic_cut_text_stays_latin1_beside_it() -> None:
    wire = ClientCutText("café".encode("latin-1")).encode() + ExtendedClientCutText.announce(NOTIFY).encode()
    first, second = feed_framer(ClientMessageFramer(), [wire[i:i + 1] for i in range(len(wire))])
    assert first.message == ClientCutText(b"caf\xe9")  # type: ignore[union-attr]
    assert second.message == ExtendedClientCutText(NOTIFY | ClipboardFormat.TEXT)  # type: ignore[union-attr]


@pytest.mark.parametrize(("wire", "error", "says"), [
    (bytes((6, 0, 0, 0)) + (-(1 << 31)).to_bytes(4, "big", signed=True), LimitExceeded, "announces 2147483648 bytes"),
    (bytes((6, 0, 0, 0)) + (-2).to_bytes(4, "big", signed=True) + b"xx", ProtocolViolation, "shorter than its flags"),
    (ExtendedClientCutText(ClipboardAction.PROVIDE | 1, b"\xffnot zlib").encode(), ProtocolViolation, "zlib"),
    (ExtendedClientCutText(ClipboardAction.PROVIDE | 1, zlib.compress(b"\0\0\0\x09abc")).encode(), ProtocolViolation,
     "ends inside its TEXT data"),
    (ExtendedClientCutText(REQUEST | NOTIFY).encode(), ProtocolViolation, "not one of caps"),
    (ExtendedClientCutText(ClipboardAction.PROVIDE | 1, zlib.compress(bytes(5000))).encode(), LimitExceeded,
     "inflates past the limit of 4096 bytes"),
])
def test_hostile_extended_messages_fail_the_framer_with_a_reason(wire: bytes, error: type[Exception],
                                                                 says: str) -> None:
    framer = ClientMessageFramer(max_cut_text=4096, max_clipboard=4096)
    for byte in range(len(wire)):
        framer.receive_data(wire[byte:byte + 1])
    [failed] = framer.events_received()
    assert isinstance(failed, ProtocolFailed) and type(failed.error) is error and says in str(failed.error)


def test_a_bomb_is_inflated_no_further_than_the_limit() -> None:
    """A 1 KiB message of 100 MiB of zeros costs the framer the limit, not 100 MiB."""
    bomb = zlib.compress(bytes(100 << 20), 9)
    wire = ExtendedClientCutText(ClipboardAction.PROVIDE | 1, bomb).encode()
    assert len(wire) < 200_000
    [failed] = feed_framer(ClientMessageFramer(max_clipboard=1 << 16), [wire])
    assert isinstance(failed, ProtocolFailed) and isinstance(failed.error, LimitExceeded)


def test_announce_builds_only_announcements() -> None:
    with pytest.raises(LocalProtocolError):
        ExtendedClientCutText.announce(ClipboardAction.PROVIDE)


# ---------------------------------------------------------------- the proxy's rule


def proxy(mode: str, journal_input: bool = True) -> ProxyConnection:
    return ProxyConnection(SERVER_INIT, clipboard_to_remote=mode in ("to-remote", "both"),
                           clipboard_to_local=mode in ("to-local", "both"), journal_input=journal_input)


MODES = ("off", "to-remote", "to-local", "both")


@pytest.mark.parametrize("mode", MODES)
def test_the_extended_clipboard_crosses_only_the_way_the_policy_allows(mode: str) -> None:
    to_remote, to_local = mode in ("to-remote", "both"), mode in ("to-local", "both")
    connection = proxy(mode)
    caps = ExtendedServerCutText.caps(ClipboardAction(0x1F << 24), {ClipboardFormat.TEXT: 1 << 20}).encode()
    server = [caps, ExtendedServerCutText.announce(NOTIFY).encode(), ExtendedServerCutText.provide_text("東京").encode(),
              ExtendedServerCutText.announce(REQUEST).encode(), ExtendedServerCutText.announce(PEEK).encode()]
    browser = [caps.replace(b"\x03", b"\x06", 1), ExtendedClientCutText.announce(NOTIFY).encode(),
               ExtendedClientCutText.provide_text("山田").encode(), ExtendedClientCutText.announce(REQUEST).encode(),
               ExtendedClientCutText.announce(PEEK).encode()]
    from_target = feed(connection, Side.TARGET, server)
    from_browser = feed(connection, Side.BROWSER, browser)
    # caps always; the target's notify and provide go local, its request and peek ask for the browser's (remote)
    assert from_target.sent[Side.BROWSER] == b"".join(
        [server[0], *(server[1:3] if to_local else []), *(server[3:] if to_remote else [])])
    assert from_browser.sent[Side.TARGET] == b"".join(
        [browser[0], *(browser[1:3] if to_remote else []), *(browser[3:] if to_local else [])])
    assert from_target.journal[Side.TARGET] == from_target.sent[Side.BROWSER]  # what was dropped is not journaled
    assert from_browser.journal[Side.BROWSER] == from_browser.sent[Side.TARGET]
    assert from_target.events == ([] if to_local else [ClipboardBlocked("to_local", 0),
                                                         ClipboardBlocked("to_local", len("東京\0".encode()))])
    assert from_browser.events == ([] if to_remote else [ClipboardBlocked("to_remote", 0),
                                                          ClipboardBlocked("to_remote", len("山田\0".encode()))])


@pytest.mark.parametrize("mode", MODES)
def test_classic_cut_text_follows_the_same_rule(mode: str) -> None:
    connection = proxy(mode)
    from_target = feed(connection, Side.TARGET, [ServerCutText(b"abc").encode()])
    from_browser = feed(connection, Side.BROWSER, [ClientCutText(b"defg").encode()])
    assert bool(from_target.sent[Side.BROWSER]) is (mode in ("to-local", "both"))
    assert bool(from_browser.sent[Side.TARGET]) is (mode in ("to-remote", "both"))


def test_with_input_counted_only_a_provide_from_the_browser_is_counted_not_journaled() -> None:
    connection = proxy("both", journal_input=False)
    notify = ExtendedClientCutText.announce(NOTIFY).encode()
    provide = ExtendedClientCutText.provide_text(JAPANESE).encode()
    transcript = feed(connection, Side.BROWSER, [notify + provide])
    assert transcript.sent[Side.TARGET] == notify + provide
    assert transcript.journal[Side.BROWSER] == notify
    assert transcript.events == [InputCounted("cut_text", 1)]


@pytest.mark.parametrize("side", list(Side))
def test_an_extended_clipboard_inflating_past_the_limit_fails_the_proxy_on_that_side(side: Side) -> None:
    connection = ProxyConnection(SERVER_INIT, clipboard_to_remote=True, clipboard_to_local=True, max_clipboard=1000)
    message = (ExtendedClientCutText if side is Side.BROWSER else ExtendedServerCutText).provide_text("あ" * 400)
    transcript = feed(connection, side, [KeyEvent(True, 0x61).encode() if side is Side.BROWSER else b"", message.encode()])
    [failed] = [event for event in transcript.events if isinstance(event, ProxyFailed)]
    assert failed.side is side and isinstance(failed.error, LimitExceeded)
    assert "inflates past the limit of 1000 bytes" in str(failed.error)
    assert not [event for event in transcript.events if isinstance(event, ConnectionClosed)]
