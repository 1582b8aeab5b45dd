"""ProxyConnection: both directions after the handshakes, bytes in, events and bytes out."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation
from gateway.rfb.framing import RectangleReceived, ServerMessageFramer
from gateway.rfb.messages import (
    RGBX8888,
    Bell,
    ClientCutText,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PixelFormat,
    PointerEvent,
    QEMUExtendedKeyEvent,
    Rectangle,
    ServerCutText,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb.proxy import (
    ClipboardBlocked,
    ConnectionClosed,
    InputActivity,
    InputCounted,
    JournalData,
    ProxyConnection,
    ProxyEvent,
    ProxyFailed,
    Resized,
    Side,
)
from tests.rfb.helpers import chunkings, update
from tests.rfb.proxy_helpers import HEIGHT, SERVER_INIT, WIDTH, Transcript, feed

RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
TIGHT_FILL = b"\x80\x11\x22\x33"  # a Tight fill rectangle's payload: control byte and one TPIXEL
UNFRAMEABLE = (-312, -309, 21)  # Fence, ExtendedClipboard-ish pseudo-encodings and JPEG: the framer cannot frame them


def make_proxy(**rules: bool) -> ProxyConnection:
    return ProxyConnection(SERVER_INIT, **rules)


# A browser session as noVNC starts it, then some input, and the target's answer.
BROWSER_SETUP = (
    SetPixelFormat(RGBX8888).encode()
    + SetEncodings((Encoding.TIGHT, Encoding.RAW, Encoding.DESKTOP_SIZE, Encoding.CURSOR)).encode()
    + FramebufferUpdateRequest(False, 0, 0, WIDTH, HEIGHT).encode()
)
BROWSER_INPUT = (
    KeyEvent(True, 0x61).encode()
    + KeyEvent(False, 0x61).encode()
    + PointerEvent(1, 10, 10).encode()
    + PointerEvent(0, 11, 10).encode()
    + QEMUExtendedKeyEvent(True, 0x62, 0x30).encode()
)
TARGET_STREAM = (
    update((Rectangle(0, 0, 8, 8, Encoding.TIGHT), TIGHT_FILL), (Rectangle(0, 0, 2, 1, Encoding.RAW), bytes(8)))
    + Bell().encode()
    + update((Rectangle(0, 0, 80, 60, Encoding.DESKTOP_SIZE), b""))
    + update((Rectangle(70, 50, 10, 10, Encoding.TIGHT), TIGHT_FILL))  # inside the new size only
)


def session(proxy: ProxyConnection, browser: Sequence[bytes], target: Sequence[bytes]) -> Transcript:
    """The browser's chunks first (they choose the target's encodings), then the target's."""
    transcript = feed(proxy, Side.BROWSER, browser)
    return feed(proxy, Side.TARGET, target, transcript)


# ---------------------------------------------------------------- forwarding, whole and in pieces


def test_a_whole_session_is_forwarded_and_journaled_byte_for_byte() -> None:
    transcript = session(make_proxy(), [BROWSER_SETUP + BROWSER_INPUT], [TARGET_STREAM])
    assert transcript.sent == {Side.TARGET: BROWSER_SETUP + BROWSER_INPUT, Side.BROWSER: TARGET_STREAM}
    assert transcript.journal == {Side.BROWSER: BROWSER_SETUP + BROWSER_INPUT, Side.TARGET: TARGET_STREAM}
    assert transcript.events == [InputActivity(), Resized(80, 60)]


def test_every_split_gives_the_same_bytes_and_events() -> None:
    expected = session(make_proxy(), [BROWSER_SETUP + BROWSER_INPUT], [TARGET_STREAM])
    for chunks in chunkings(TARGET_STREAM):
        assert session(make_proxy(), [BROWSER_SETUP + BROWSER_INPUT], chunks) == expected
    for chunks in chunkings(BROWSER_SETUP + BROWSER_INPUT):
        transcript = session(make_proxy(), chunks, [TARGET_STREAM])
        assert (transcript.sent, transcript.journal) == (expected.sent, expected.journal)
        assert {type(event) for event in transcript.events} == {InputActivity, Resized}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1 << 16), max_size=12), st.lists(st.integers(0, 1 << 16), max_size=12),
       st.booleans())
def test_any_split_gives_the_same_bytes_and_counts(browser_cuts: list[int], target_cuts: list[int],
                                                   journal_input: bool) -> None:
    browser = BROWSER_SETUP + BROWSER_INPUT + ClientCutText(b"copied").encode()
    expected = session(make_proxy(journal_input=journal_input, clipboard_to_remote=True), [browser], [TARGET_STREAM])
    transcript = session(make_proxy(journal_input=journal_input, clipboard_to_remote=True),
                         cut(browser, browser_cuts), cut(TARGET_STREAM, target_cuts))
    assert (transcript.sent, transcript.journal) == (expected.sent, expected.journal)
    assert counts(transcript.events) == counts(expected.events)
    assert [event for event in transcript.events if not isinstance(event, (InputActivity, InputCounted))] == [
        Resized(80, 60)
    ]


def cut(data: bytes, points: Sequence[int]) -> list[bytes]:
    cuts = sorted({point % (len(data) + 1) for point in points} | {0, len(data)})
    return [data[start:end] for start, end in zip(cuts, cuts[1:])]


def counts(events: Sequence[ProxyEvent]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for event in events:
        if isinstance(event, InputCounted):
            totals[event.kind] = totals.get(event.kind, 0) + event.count
    return totals


def test_each_chunk_is_sent_as_one_piece_and_journaled_as_sent() -> None:
    proxy = make_proxy()
    feed(proxy, Side.BROWSER, [BROWSER_SETUP])
    proxy.receive_target_data(TARGET_STREAM)
    (journal,) = proxy.events_received()[1:]
    assert isinstance(journal, JournalData) and journal.sender is Side.TARGET
    assert proxy.data_to_send_browser() is journal.data  # one join, shared by the journal and the socket
    assert proxy.data_to_send_browser() == b""


def test_bytes_not_yet_taken_accumulate_in_order() -> None:
    proxy = make_proxy()
    proxy.receive_browser_data(KeyEvent(True, 1).encode())
    proxy.receive_browser_data(KeyEvent(False, 1).encode())
    assert proxy.data_to_send_target() == KeyEvent(True, 1).encode() + KeyEvent(False, 1).encode()
    assert [type(event) for event in proxy.events_received()] == [InputActivity, JournalData] * 2


def test_an_incomplete_message_waits_for_its_end() -> None:
    proxy = make_proxy()
    transcript = feed(proxy, Side.BROWSER, [KeyEvent(True, 1).encode()[:5]])
    assert transcript == Transcript()
    feed(proxy, Side.BROWSER, [KeyEvent(True, 1).encode()[5:]], transcript)
    assert transcript.sent[Side.TARGET] == KeyEvent(True, 1).encode()


# ---------------------------------------------------------------- the encoding filter and the framers' coupling


def test_set_encodings_loses_what_the_target_framer_cannot_frame() -> None:
    asked = (Encoding.TIGHT, *UNFRAMEABLE, Encoding.ZRLE, -26, -250)
    transcript = feed(make_proxy(), Side.BROWSER, [SetEncodings(asked).encode()])
    allowed = SetEncodings((Encoding.TIGHT, Encoding.ZRLE, -26, -250)).encode()
    assert transcript.sent[Side.TARGET] == allowed
    assert transcript.journal[Side.BROWSER] == allowed  # the journal holds what the target was sent


def test_set_encodings_the_framer_can_frame_are_forwarded_as_they_came() -> None:
    wire = SetEncodings((Encoding.HEXTILE, Encoding.RAW, Encoding.LAST_RECT)).encode()
    assert feed(make_proxy(), Side.BROWSER, [wire]).sent[Side.TARGET] == wire


def test_the_targets_preferred_encoding_goes_first_only_when_the_browser_listed_it() -> None:
    asked = (Encoding.TIGHT, Encoding.HEXTILE, Encoding.ZRLE, Encoding.RAW, -26, Encoding.CURSOR)
    proxy = ProxyConnection(SERVER_INIT, preferred_encoding=Encoding.ZRLE)
    preferred = SetEncodings((Encoding.ZRLE, Encoding.TIGHT, Encoding.HEXTILE, Encoding.RAW, -26, Encoding.CURSOR))
    transcript = feed(proxy, Side.BROWSER, [SetEncodings(asked).encode()])
    assert transcript.sent[Side.TARGET] == transcript.journal[Side.BROWSER] == preferred.encode()
    without = SetEncodings((Encoding.TIGHT, Encoding.RAW)).encode()  # never an encoding the browser cannot decode
    assert feed(ProxyConnection(SERVER_INIT, preferred_encoding=Encoding.ZRLE), Side.BROWSER,
                [without]).sent[Side.TARGET] == without
    browser_order = feed(ProxyConnection(SERVER_INIT, preferred_encoding=None), Side.BROWSER,
                         [SetEncodings(asked).encode()])
    assert browser_order.sent[Side.TARGET] == SetEncodings(asked).encode()


def test_the_target_may_use_only_the_encodings_the_browser_asked_for() -> None:
    tight = update((Rectangle(0, 0, 8, 8, Encoding.TIGHT), TIGHT_FILL))
    refused = feed(make_proxy(), Side.TARGET, [tight])
    assert refused.sent[Side.BROWSER] == tight[:4]  # the update's header came before the violation
    assert isinstance(refused.events[-1], ProxyFailed)
    assert refused.events[-1].side is Side.TARGET and "did not request" in str(refused.events[-1].error)
    proxy = make_proxy()
    feed(proxy, Side.BROWSER, [SetEncodings((Encoding.TIGHT,)).encode()])
    assert feed(proxy, Side.TARGET, [tight]).sent[Side.BROWSER] == tight


def test_a_forwarded_pixel_format_frames_the_target_stream_from_then_on() -> None:
    proxy = make_proxy()
    feed(proxy, Side.BROWSER, [SetPixelFormat(RGB565).encode()])
    raw = update((Rectangle(0, 0, 4, 2, Encoding.RAW), bytes(4 * 2 * 2)), (Rectangle(0, 0, 1, 1, Encoding.RAW), b"\x01\x02"))
    transcript = feed(proxy, Side.TARGET, [raw + Bell().encode()])
    assert transcript.sent[Side.BROWSER] == raw + Bell().encode()
    assert transcript.events == []


# ---------------------------------------------------------------- the clipboard rule


@pytest.mark.parametrize(("to_remote", "to_local"), [(False, False), (True, False), (False, True), (True, True)])
def test_cut_text_crosses_only_where_allowed(to_remote: bool, to_local: bool) -> None:
    proxy = make_proxy(clipboard_to_remote=to_remote, clipboard_to_local=to_local)
    key = KeyEvent(True, 0x61).encode()
    client_cut, server_cut = ClientCutText(b"secret!").encode(), ServerCutText(b"remote text").encode()
    transcript = session(proxy, [client_cut + key], [server_cut + Bell().encode()])
    assert transcript.sent[Side.TARGET] == (client_cut if to_remote else b"") + key
    assert transcript.sent[Side.BROWSER] == (server_cut if to_local else b"") + Bell().encode()
    assert transcript.journal == {Side.BROWSER: transcript.sent[Side.TARGET], Side.TARGET: transcript.sent[Side.BROWSER]}
    blocked = [event for event in transcript.events if isinstance(event, ClipboardBlocked)]
    assert blocked == [ClipboardBlocked("to_remote", 7)] * (not to_remote) + [ClipboardBlocked("to_local", 11)] * (
        not to_local
    )


def test_a_chunk_of_blocked_cut_text_alone_sends_and_journals_nothing() -> None:
    transcript = feed(make_proxy(), Side.BROWSER, [ClientCutText(b"x").encode()])
    assert transcript == Transcript(events=[ClipboardBlocked("to_remote", 1)])


# ---------------------------------------------------------------- the input-recording rule


def test_with_counts_the_operators_input_is_forwarded_but_only_counted() -> None:
    request = FramebufferUpdateRequest(True, 0, 0, WIDTH, HEIGHT).encode()
    cut_text = ClientCutText(b"copied").encode()
    chunk = BROWSER_INPUT + request + cut_text + PointerEvent(6, 1, 1).encode()
    transcript = feed(make_proxy(journal_input=False, clipboard_to_remote=True), Side.BROWSER, [chunk])
    assert transcript.sent[Side.TARGET] == chunk
    assert transcript.journal[Side.BROWSER] == request  # everything but the input, in order
    assert transcript.events[0] == InputActivity()
    assert counts(transcript.events) == {"keys": 2, "clicks": 3, "pointer": 3, "cut_text": 1}


def test_with_counts_a_chunk_of_input_alone_journals_nothing() -> None:
    transcript = feed(make_proxy(journal_input=False), Side.BROWSER, [PointerEvent(0, 5, 5).encode()])
    assert transcript.journal[Side.BROWSER] == b"" and transcript.sent[Side.TARGET] == PointerEvent(0, 5, 5).encode()
    assert transcript.events == [InputActivity(), InputCounted("pointer", 1)]


def test_button_presses_are_counted_across_chunks() -> None:
    proxy = make_proxy(journal_input=False)
    masks = [1, 1, 0, 3, 2, 0]  # presses: button 1, button 1 again, buttons 1 and 2 together
    transcript = feed(proxy, Side.BROWSER, [PointerEvent(mask, 0, 0).encode() for mask in masks])
    assert counts(transcript.events) == {"clicks": 3, "pointer": 6}


def test_with_full_input_recording_nothing_is_counted() -> None:
    transcript = feed(make_proxy(clipboard_to_remote=True), Side.BROWSER, [BROWSER_INPUT + ClientCutText(b"c").encode()])
    assert transcript.journal[Side.BROWSER] == transcript.sent[Side.TARGET]
    assert transcript.events == [InputActivity()]  # once per chunk, for the idle watchdog


def test_japanese_keys_and_unicode_keysyms_pass_unchanged_as_input() -> None:
    """Zenkaku/Hankaku, Henkan, Muhenkan, Hiragana/Katakana, Eisu, Kanji, and 山 typed as its Unicode keysym."""
    keys = [0xFF2A, 0xFF23, 0xFF22, 0xFF27, 0xFF30, 0xFF21, 0x01005C71]
    chunk = b"".join(KeyEvent(down, key).encode() for key in keys for down in (True, False))
    qemu = QEMUExtendedKeyEvent(True, 0xFF23, 0x79).encode()  # Henkan with its scancode
    transcript = feed(make_proxy(), Side.BROWSER, [chunk, qemu])
    assert transcript.sent[Side.TARGET] == chunk + qemu
    assert transcript.journal[Side.BROWSER] == chunk + qemu
    assert transcript.events == [InputActivity(), InputActivity()]


def test_update_requests_and_cut_text_are_not_input_activity() -> None:
    chunk = FramebufferUpdateRequest(True, 0, 0, 1, 1).encode() + ClientCutText(b"c").encode()
    assert feed(make_proxy(clipboard_to_remote=True), Side.BROWSER, [chunk]).events == []


# ---------------------------------------------------------------- resize


def test_a_resize_is_an_event_and_frames_later_rectangles() -> None:
    proxy = make_proxy()
    feed(proxy, Side.BROWSER, [SetEncodings((Encoding.EXTENDED_DESKTOP_SIZE,)).encode()])
    resize = update((Rectangle(0, 0, 100, 90, Encoding.EXTENDED_DESKTOP_SIZE), bytes(4)))
    refused_request = update((Rectangle(1, 3, 10, 10, Encoding.EXTENDED_DESKTOP_SIZE), bytes(4)))
    far = update((Rectangle(90, 80, 10, 10, Encoding.RAW), bytes(400)))
    transcript = feed(proxy, Side.TARGET, [resize + refused_request + far])
    assert transcript.events == [Resized(100, 90)]
    assert transcript.journal[Side.TARGET] == resize + refused_request + far


# ---------------------------------------------------------------- the desktop's name


def desktop_name(name: bytes) -> tuple[Rectangle, bytes]:
    return Rectangle(0, 0, 0, 0, Encoding.DESKTOP_NAME), len(name).to_bytes(4, "big") + name


HOSTILE_NAME = b"<img src=x onerror=alert(1)>\x00\x1b[2J"


def test_the_browser_gets_the_gateways_name_for_the_desktop_and_the_journal_the_targets() -> None:
    pixel = (Rectangle(1, 1, 1, 1, Encoding.RAW), bytes(4))
    stream = Bell().encode() + update(pixel, desktop_name(HOSTILE_NAME), pixel)
    expected = Bell().encode() + update(pixel, desktop_name(b"desk-01"), pixel)
    for chunks in chunkings(stream):
        proxy = ProxyConnection(SERVER_INIT, desktop_name=b"desk-01")
        feed(proxy, Side.BROWSER, [SetEncodings((Encoding.RAW, Encoding.DESKTOP_NAME)).encode()])
        transcript = feed(proxy, Side.TARGET, chunks)
        assert transcript.sent[Side.BROWSER] == expected
        assert transcript.journal[Side.TARGET] == stream  # what the target sent, as the journal header keeps its name
        assert transcript.events == []


def test_a_recorded_rename_replays() -> None:
    from recorder.decoders import DecoderState, decode_rectangle
    from recorder.framebuffer import Framebuffer

    proxy = ProxyConnection(SERVER_INIT, desktop_name=b"desk-01")
    feed(proxy, Side.BROWSER, [SetEncodings((Encoding.RAW, Encoding.DESKTOP_NAME)).encode()])
    journal = feed(proxy, Side.TARGET, [update(desktop_name(b"x" * 1024), (Rectangle(0, 0, 1, 1, Encoding.RAW),
                                                                               bytes(4)))]).journal[Side.TARGET]
    replay = ServerMessageFramer(RGBX8888, WIDTH, HEIGHT, encodings=(Encoding.RAW, Encoding.DESKTOP_NAME))
    replay.receive_data(journal)
    state, framebuffer = DecoderState(RGBX8888), Framebuffer(WIDTH, HEIGHT)
    rectangles = [event for event in replay.events_received() if isinstance(event, RectangleReceived)]
    for event in rectangles:
        decode_rectangle(state, framebuffer, event.rect, event.payload)
    assert [event.rect.encoding for event in rectangles] == [Encoding.DESKTOP_NAME, Encoding.RAW]


def test_a_desktop_name_over_the_limit_fails_the_target() -> None:
    proxy = make_proxy()
    feed(proxy, Side.BROWSER, [SetEncodings((Encoding.DESKTOP_NAME,)).encode()])
    (failure,) = feed(proxy, Side.TARGET, [update(desktop_name(b"x" * 1025))]).events
    assert isinstance(failure, ProxyFailed) and failure.side is Side.TARGET
    assert "desktop name of 1025 bytes is over the limit" in str(failure.error)


# ---------------------------------------------------------------- failures


def test_a_browser_that_breaks_the_protocol_fails_the_proxy() -> None:
    proxy = make_proxy(journal_input=False)
    transcript = feed(proxy, Side.BROWSER, [KeyEvent(True, 1).encode() + b"\x63garbage"])
    assert transcript.events[:2] == [InputActivity(), InputCounted("keys", 1)]  # what came before still happened
    (failure,) = transcript.events[2:]
    assert isinstance(failure, ProxyFailed) and failure.side is Side.BROWSER
    assert isinstance(failure.error, ProtocolViolation) and "client message type 99" in str(failure.error)
    assert transcript.sent[Side.TARGET] == KeyEvent(True, 1).encode()  # what came before the violation goes on
    assert transcript.journal == Transcript().journal  # counted, not journaled (journal_input=False)


def test_a_target_that_breaks_the_protocol_fails_the_proxy_and_later_data_is_ignored() -> None:
    proxy = make_proxy()
    transcript = feed(proxy, Side.TARGET, [Bell().encode(), b"\x09"])
    assert transcript.sent[Side.BROWSER] == Bell().encode()
    (failure,) = transcript.events
    assert isinstance(failure, ProxyFailed) and failure.side is Side.TARGET
    assert "server message type 9" in str(failure.error)
    later = session(proxy, [KeyEvent(True, 1).encode()], [Bell().encode()])
    proxy.receive_eof(Side.BROWSER)
    later.collect(proxy)
    assert later == Transcript()


def test_a_limit_the_peer_exceeds_is_a_failure_too() -> None:
    proxy = make_proxy(clipboard_to_remote=True)
    header = ClientCutText(b"").encode()[:4] + (2 << 20).to_bytes(4, "big")  # 2 MiB announced, 1 MiB allowed
    (failure,) = feed(proxy, Side.BROWSER, [header]).events
    assert isinstance(failure, ProxyFailed) and "limit" in str(failure.error)


# ---------------------------------------------------------------- end of stream and misuse


def test_the_end_of_the_targets_stream_is_an_event_and_the_browser_goes_on() -> None:
    proxy = make_proxy()
    proxy.receive_target_data(Bell().encode() + b"\x03\x00")  # an unfinished ServerCutText is dropped
    proxy.events_received()
    proxy.receive_eof(Side.TARGET)
    proxy.receive_eof(Side.TARGET)  # repeated: ignored
    assert proxy.events_received() == [ConnectionClosed(Side.TARGET)]
    assert proxy.data_to_send_browser() == Bell().encode()
    assert feed(proxy, Side.BROWSER, [KeyEvent(True, 1).encode()]).sent[Side.TARGET] == KeyEvent(True, 1).encode()


def test_the_end_of_the_browsers_stream_is_an_event_and_the_target_goes_on() -> None:
    proxy = make_proxy()
    proxy.receive_browser_data(KeyEvent(True, 1).encode()[:3])
    proxy.receive_eof(Side.BROWSER)
    assert proxy.events_received() == [ConnectionClosed(Side.BROWSER)]
    assert proxy.data_to_send_target() == b""
    assert feed(proxy, Side.TARGET, [Bell().encode()]).sent[Side.BROWSER] == Bell().encode()


@pytest.mark.parametrize("side", list(Side))
def test_data_after_the_end_of_that_stream_is_our_bug(side: Side) -> None:
    proxy = make_proxy()
    proxy.receive_eof(side)
    receive = proxy.receive_browser_data if side is Side.BROWSER else proxy.receive_target_data
    with pytest.raises(LocalProtocolError, match=f"from the {side.value} after its end of stream"):
        receive(b"\x02")


# ---------------------------------------------------------------- fuzz: only documented outcomes


FUZZ = settings(max_examples=300, deadline=None)
prefixes = st.sampled_from([b"", BROWSER_SETUP, SetEncodings(tuple(Encoding)).encode()])
# Chunks from either side; None is that side's end of stream.
feeds = st.lists(st.tuples(st.sampled_from(list(Side)), st.none() | st.binary(max_size=512)), max_size=12)


@FUZZ
@given(prefixes, feeds, st.booleans(), st.booleans(), st.booleans())
def test_arbitrary_bytes_from_either_side_never_escape(
    prefix: bytes, chunks: list[tuple[Side, bytes | None]], to_remote: bool, to_local: bool, journal_input: bool
) -> None:
    proxy = make_proxy(clipboard_to_remote=to_remote, clipboard_to_local=to_local, journal_input=journal_input)
    received = {Side.BROWSER: prefix, Side.TARGET: b""}
    transcript = feed(proxy, Side.BROWSER, [prefix])
    ended: set[Side] = set()
    for side, data in chunks:
        if data is None:
            proxy.receive_eof(side)
            transcript.collect(proxy)
            ended.add(side)
        elif side in ended:  # the one documented exception: our misuse
            with pytest.raises(LocalProtocolError):
                feed(proxy, side, [data], transcript)
        else:
            received[side] += data
            feed(proxy, side, [data], transcript)
    failures = [event for event in transcript.events if isinstance(event, ProxyFailed)]
    after_failure = transcript.events[transcript.events.index(failures[0]) + 1 :] if failures else []
    assert len(failures) <= 1 and after_failure == []
    assert all(isinstance(failure.error, ProtocolViolation) for failure in failures)
    closings = [event.side for event in transcript.events if isinstance(event, ConnectionClosed)]
    assert len(closings) == len(set(closings)) and set(closings) <= ended
    # Nothing is forwarded that was not received, and the target's bytes are forwarded as they came.
    assert len(transcript.sent[Side.TARGET]) <= len(received[Side.BROWSER])
    if to_local:  # the journal keeps the target's bytes; the browser gets them less any desktop name
        assert received[Side.TARGET].startswith(transcript.journal[Side.TARGET])
    if journal_input:
        assert transcript.journal[Side.BROWSER] == transcript.sent[Side.TARGET]


def test_messages_before_a_violation_in_the_same_chunk_are_still_forwarded_and_journaled() -> None:
    key, bad = KeyEvent(True, 0x61).encode(), b"\xff\x01"
    proxy = ProxyConnection(ServerInit(64, 48, RGBX8888, b"desk"))
    proxy.receive_browser_data(key + bad)
    assert proxy.data_to_send_target() == key
    events = proxy.events_received()
    assert JournalData(Side.BROWSER, key) in events and isinstance(events[-1], ProxyFailed)
