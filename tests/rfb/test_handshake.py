"""The two handshakes: our client against scripted targets, our server against scripted browsers, and each other."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.rfb.errors import (
    LimitExceeded,
    LocalProtocolError,
    ProtocolViolation,
    TargetAuthFailed,
    TargetUnavailable,
)
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeState,
    ServerHandshake,
    Version,
)
from gateway.rfb.messages import RGBX8888, PixelFormat, ServerInit, SetPixelFormat
from gateway.rfb.vncauth import vnc_auth_response
from tests.rfb.helpers import ConnectionPair, chunkings, comparable, u32

SERVER_INIT = ServerInit(1024, 768, RGBX8888, b"desk-01")
CHALLENGE = bytes(range(0x40, 0x50))
PASSWORD = b"hunter2!"
NONE, VNC_AUTH = 1, 2


def version_line(version: Version) -> bytes:
    return b"RFB %03d.%03d\n" % version


def target_transcript(version: Version, security: int, *, offered: bytes | None = None) -> tuple[bytes, bytes]:
    """What a well-behaved target sends for ``security``, and what our client must answer."""
    received = version_line(version)
    sent = version_line(version)
    if version == (3, 3):
        received += u32(security)
    else:
        received += offered if offered is not None else bytes((1, security))
        sent += bytes((security,))
    if security == VNC_AUTH:
        received += CHALLENGE
        sent += vnc_auth_response(PASSWORD, CHALLENGE)
    if version == (3, 8) or security == VNC_AUTH:
        received += u32(0)
    return received + SERVER_INIT.encode(), sent + b"\x01"


def drive_client(handshake: ClientHandshake, chunks: Sequence[bytes]) -> tuple[list[object], bytes]:
    events: list[object] = []
    sent = b""
    for chunk in chunks:
        handshake.receive_data(chunk)
        events += handshake.events_received()
        sent += handshake.data_to_send()
    return events, sent


def client_failure(received: bytes, **options: object) -> Exception:
    events, _ = drive_client(ClientHandshake(**options), [received])  # type: ignore[arg-type]
    assert len(events) == 1 and isinstance(events[0], HandshakeFailed), events
    return events[0].error


def assert_same_for_every_split(make: type[ClientHandshake] | object, received: bytes) -> tuple[list[object], bytes]:
    expected_events, expected_sent = drive_client(make(), [received])  # type: ignore[operator]
    for chunks in chunkings(received):
        events, sent = drive_client(make(), chunks)  # type: ignore[operator]
        assert (comparable(events), sent) == (comparable(expected_events), expected_sent)
    return expected_events, expected_sent


# ---------------------------------------------------------------- ClientHandshake against scripted targets

OFFERED_VERSIONS = [
    ((3, 3), (3, 3)),
    ((3, 4), (3, 3)),
    ((3, 5), (3, 3)),
    ((3, 6), (3, 3)),
    ((3, 7), (3, 7)),
    ((3, 8), (3, 8)),
    ((3, 889), (3, 8)),
    ((4, 1), (3, 8)),
    ((5, 0), (3, 8)),
]


@pytest.mark.parametrize(("offered", "spoken"), OFFERED_VERSIONS)
@pytest.mark.parametrize("security", [NONE, VNC_AUTH])
def test_client_completes_with_every_version_and_security_in_every_split(
    offered: Version, spoken: Version, security: int
) -> None:
    received, expected_sent = target_transcript(spoken, security)
    received = version_line(offered) + received[12:]
    password = PASSWORD if security == VNC_AUTH else None
    events, sent = assert_same_for_every_split(lambda: ClientHandshake(password=password), received)
    assert sent == expected_sent
    assert events == [HandshakeComplete(spoken, True, SERVER_INIT, b"")]


def test_client_prefers_vnc_auth_with_a_password_and_none_without() -> None:
    received, _ = target_transcript((3, 8), VNC_AUTH, offered=b"\x03\x10\x02\x01")
    _, sent = drive_client(ClientHandshake(password=PASSWORD), [received])
    assert sent[12:13] == b"\x02"
    received, expected_sent = target_transcript((3, 8), NONE, offered=b"\x03\x02\x10\x01")
    assert drive_client(ClientHandshake(), [received])[1] == expected_sent


def test_client_sends_the_shared_flag_and_hands_over_trailing_bytes() -> None:
    received, _ = target_transcript((3, 8), NONE)
    events, sent = drive_client(ClientHandshake(shared=False), [received + b"\x02\x02"])
    assert sent.endswith(b"\x00")
    assert events == [HandshakeComplete((3, 8), False, SERVER_INIT, b"\x02\x02")]


@pytest.mark.parametrize(
    ("version", "result", "message"),
    [
        ((3, 8), u32(1) + u32(6) + b"denied", "the target refused the VNC password: denied"),
        ((3, 7), u32(1), "the target refused the VNC password: no reason given"),
        ((3, 3), u32(1), "the target refused the VNC password: no reason given"),
    ],
)
def test_a_wrong_password_fails_with_the_targets_reason(version: Version, result: bytes, message: str) -> None:
    received, _ = target_transcript(version, VNC_AUTH)
    received = received[: received.index(CHALLENGE) + 16] + result
    events, sent = assert_same_for_every_split(lambda: ClientHandshake(password=b"wrong"), received)
    assert comparable(events) == [("HandshakeFailed", TargetAuthFailed, message)]


def test_security_result_failed_after_none_names_the_connection() -> None:
    error = client_failure(b"RFB 003.008\n\x01\x01" + u32(1) + u32(6) + b"nope\x1b\n")
    assert type(error) is TargetAuthFailed
    assert str(error) == "the target refused the connection: nope  "


@pytest.mark.parametrize(
    "received",
    [b"RFB 003.008\n\x00" + u32(9) + b"Too many!", b"RFB 003.003\n" + u32(0) + u32(9) + b"Too many!"],
)
def test_a_target_refusing_the_connection_gives_its_reason(received: bytes) -> None:
    error = client_failure(received)
    assert type(error) is TargetUnavailable
    assert str(error) == "the target refused the connection: Too many!"


def test_a_reason_over_the_limit_fails_before_it_is_read() -> None:
    assert type(client_failure(b"RFB 003.008\n\x00" + u32(2000))) is LimitExceeded


@pytest.mark.parametrize("received", [b"RFB 003.008\n\x02\x12\x13", b"RFB 003.003\n" + u32(16)])
def test_a_target_without_none_or_vnc_auth_is_refused(received: bytes) -> None:
    error = client_failure(received, password=PASSWORD)
    assert type(error) is TargetAuthFailed
    offered = "[18, 19]" if received.endswith(b"\x13") else "[16]"
    assert str(error) == f"target offers security types {offered}; deskgate supports None and VNC authentication"


@pytest.mark.parametrize("received", [b"RFB 003.008\n\x01\x02", b"RFB 003.003\n" + u32(2)])
def test_vnc_auth_without_a_password_is_refused(received: bytes) -> None:
    error = client_failure(received)
    assert type(error) is TargetAuthFailed
    assert "no password is configured" in str(error)


@pytest.mark.parametrize(
    "garbage", [b"RFB 003.00x\n", b"HTTP/1.1 400", b"RFB 002.000\n", b"RFB 003.008\r", b"\x00" * 12, b"rfb 003.008\n"]
)
def test_garbage_versions_fail(garbage: bytes) -> None:
    assert type(client_failure(garbage)) is ProtocolViolation
    assert type(server_failure(garbage)) is ProtocolViolation


def server_init_failure(header: bytes, **options: object) -> Exception:
    return client_failure(b"RFB 003.008\n\x01\x01" + u32(0) + header, **options)


def test_server_init_sizes_are_checked() -> None:
    for width, height in [(0, 768), (1024, 0), (16385, 768)]:
        init = ServerInit(width, height, RGBX8888, b"")
        assert type(server_init_failure(init.encode())) is LimitExceeded
    small = ServerInit(800, 600, RGBX8888, b"").encode()
    assert type(server_init_failure(small, max_framebuffer=(640, 480))) is LimitExceeded


def test_a_server_init_name_over_the_limit_fails_before_the_name_arrives() -> None:
    header = ServerInit(1024, 768, RGBX8888, b"x" * 2000).encode()[:24]
    error = server_init_failure(header, max_name=1024)
    assert type(error) is LimitExceeded


def test_a_server_init_with_an_unusable_pixel_format_fails() -> None:
    header = ServerInit(1024, 768, RGBX8888, b"").encode()
    header = header[:4] + b"\x18" + header[5:]  # 24 bits per pixel
    assert type(server_init_failure(header)) is ProtocolViolation


def test_after_failing_or_completing_the_client_is_done() -> None:
    failed = ClientHandshake()
    failed.receive_data(b"SSH-2.0-OpenSSH\r\n")
    assert failed.state is HandshakeState.FAILED
    failed.data_to_send()
    failed.events_received()
    failed.receive_data(b"RFB 003.008\n")
    assert failed.events_received() == [] and failed.data_to_send() == b""

    complete = ClientHandshake()
    complete.receive_data(target_transcript((3, 8), NONE)[0])
    assert complete.state is HandshakeState.COMPLETE
    with pytest.raises(LocalProtocolError):
        complete.receive_data(b"\x02")


@pytest.mark.parametrize("password", [PASSWORD, b"correct horse battery staple"])
@pytest.mark.parametrize("result", [u32(0) + SERVER_INIT.encode(), u32(1) + u32(6) + b"denied"])
def test_the_password_never_shows(password: bytes, result: bytes) -> None:
    handshake = ClientHandshake(password=password)
    events, sent = drive_client(handshake, [b"RFB 003.008\n\x01\x02" + CHALLENGE + result])
    assert password[:8] not in sent
    texts = [repr(handshake), repr(events), *(str(getattr(event, "error", "")) for event in events)]
    for text in texts:
        for secret in (password, password[:8]):
            assert secret.decode() not in text and secret.hex() not in text


# ---------------------------------------------------------------- ServerHandshake against scripted browsers


def drive_server(chunks: Sequence[bytes], *, verdict: ServerInit | str = SERVER_INIT) -> tuple[list[object], bytes]:
    """Feed a browser's bytes; accept with a ServerInit (or reject with a reason) when its version arrives."""
    handshake = ServerHandshake()
    handshake.initiate()
    sent = handshake.data_to_send()
    events: list[object] = []
    for chunk in chunks:
        handshake.receive_data(chunk)
        for event in handshake.events_received():
            events.append(event)
            if isinstance(event, ClientVersionReceived):
                handshake.accept(verdict) if isinstance(verdict, ServerInit) else handshake.reject(verdict)
                events += handshake.events_received()
        sent += handshake.data_to_send()
    return events, sent


def server_failure(received: bytes) -> Exception:
    events, _ = drive_server([received])
    assert isinstance(events[-1], HandshakeFailed), events
    return events[-1].error


BROWSER_TRANSCRIPTS = [
    # (browser's version, what it sends after it, version spoken, what the server sends after its version)
    ((3, 8), b"\x01\x01", (3, 8), b"\x01\x01" + u32(0) + SERVER_INIT.encode()),
    ((3, 7), b"\x01\x01", (3, 7), b"\x01\x01" + SERVER_INIT.encode()),
    ((3, 3), b"\x01", (3, 3), u32(1) + SERVER_INIT.encode()),
    ((3, 5), b"\x01", (3, 3), u32(1) + SERVER_INIT.encode()),
    ((3, 889), b"\x01\x01", (3, 8), b"\x01\x01" + u32(0) + SERVER_INIT.encode()),
]


@pytest.mark.parametrize(("offered", "after", "spoken", "expected"), BROWSER_TRANSCRIPTS)
def test_server_completes_with_every_version_in_every_split(
    offered: Version, after: bytes, spoken: Version, expected: bytes
) -> None:
    received = version_line(offered) + after
    expected_events, expected_sent = drive_server([received])
    assert expected_sent == b"RFB 003.008\n" + expected
    assert expected_events == [ClientVersionReceived(spoken), HandshakeComplete(spoken, True, SERVER_INIT, b"")]
    for chunks in chunkings(received):
        assert drive_server(chunks) == (expected_events, expected_sent)


def test_server_hands_over_the_shared_flag_and_trailing_bytes() -> None:
    trailing = SetPixelFormat(RGBX8888).encode()
    events, _ = drive_server([b"RFB 003.008\n", b"\x01\x00" + trailing])
    assert events[-1] == HandshakeComplete((3, 8), False, SERVER_INIT, trailing)


def test_server_refuses_a_security_type_it_did_not_offer() -> None:
    error = server_failure(b"RFB 003.008\n\x02")
    assert type(error) is ProtocolViolation
    assert str(error) == "the browser chose security type 2; deskgate offered only None"


@pytest.mark.parametrize(
    ("version", "expected"),
    [((3, 8), b"\x00"), ((3, 7), b"\x00"), ((3, 3), u32(0))],
)
def test_reject_sends_the_reason_the_browser_shows(version: Version, expected: bytes) -> None:
    reason = "desk-01 is unreachable: connection refused"
    events, sent = drive_server([version_line(version)], verdict=reason)
    assert sent == b"RFB 003.008\n" + expected + u32(len(reason)) + reason.encode()
    assert events == [ClientVersionReceived(version)]


def test_after_reject_the_server_is_closed_and_ignores_data() -> None:
    handshake = ServerHandshake()
    handshake.initiate()
    handshake.receive_data(b"RFB 003.008\n")
    handshake.reject("no")
    assert handshake.state is HandshakeState.CLOSED
    handshake.data_to_send()
    handshake.receive_data(b"\x01\x01")
    assert handshake.events_received() == [ClientVersionReceived((3, 8))]
    assert handshake.data_to_send() == b""


def test_driving_the_server_out_of_order_is_our_bug() -> None:
    handshake = ServerHandshake()
    with pytest.raises(LocalProtocolError):
        handshake.receive_data(b"RFB 003.008\n")
    with pytest.raises(LocalProtocolError):
        handshake.accept(SERVER_INIT)
    handshake.initiate()
    with pytest.raises(LocalProtocolError):
        handshake.initiate()
    with pytest.raises(LocalProtocolError, match="AWAITING_VERDICT"):
        handshake.reject("too early")
    handshake.receive_data(b"RFB 003.008\n")
    handshake.accept(SERVER_INIT)
    with pytest.raises(LocalProtocolError):
        handshake.accept(SERVER_INIT)
    with pytest.raises(LocalProtocolError):
        handshake.reject("too late")
    handshake.receive_data(b"\x01\x01")
    with pytest.raises(LocalProtocolError):
        handshake.receive_data(b"\x00")


# ---------------------------------------------------------------- the peer closes


@pytest.mark.parametrize("cut", [0, 5, 12, 13, 20])
def test_a_target_that_closes_half_way_fails_the_client_handshake(cut: int) -> None:
    received, _ = target_transcript((3, 8), VNC_AUTH)
    handshake = ClientHandshake(password=PASSWORD)
    handshake.receive_data(received[:cut])
    handshake.receive_eof()
    assert comparable(handshake.events_received()) == [
        ("HandshakeFailed", TargetUnavailable, "the target closed the connection during the handshake")
    ]
    assert handshake.state is HandshakeState.FAILED
    handshake.receive_eof()  # again: nothing more happens
    assert handshake.events_received() == []


def test_a_browser_that_closes_half_way_fails_the_server_handshake() -> None:
    handshake = ServerHandshake()
    handshake.initiate()
    handshake.receive_data(b"RFB 003.008\n")
    handshake.receive_eof()  # while the verdict is pending, nothing is read
    assert handshake.events_received() == [ClientVersionReceived((3, 8))]
    handshake.accept(SERVER_INIT)
    assert comparable(handshake.events_received()) == [
        ("HandshakeFailed", ProtocolViolation, "the browser closed the connection during the handshake")
    ]


def test_the_end_of_the_stream_after_the_last_byte_changes_nothing() -> None:
    received, _ = target_transcript((3, 8), NONE)
    handshake = ClientHandshake()
    handshake.receive_data(received[:-1])
    handshake.receive_data(received[-1:])
    assert [type(event) for event in handshake.events_received()] == [HandshakeComplete]
    with pytest.raises(LocalProtocolError):
        handshake.receive_eof()  # the framer gets the end of the stream now


def test_feeding_data_after_the_end_of_the_stream_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        ServerHandshake().receive_eof()  # before initiate()
    handshake = ServerHandshake()
    handshake.initiate()
    handshake.receive_data(b"RFB 003.008\n")
    handshake.receive_eof()
    with pytest.raises(LocalProtocolError, match="receive_eof"):
        handshake.receive_data(b"\x01")


# ---------------------------------------------------------------- both of ours, joined


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_our_client_and_server_complete_each_other(byte_by_byte: bool) -> None:
    pair = ConnectionPair(ClientHandshake(shared=False), ServerHandshake(), SERVER_INIT, byte_by_byte=byte_by_byte)
    pair.run(client_extra=b"\x03\x01\x00\x00\x00\x00\x00\x10\x00\x10", server_extra=b"\x02")
    assert pair.server_events == [
        ClientVersionReceived((3, 8)),
        HandshakeComplete((3, 8), False, SERVER_INIT, b"\x03\x01\x00\x00\x00\x00\x00\x10\x00\x10"),
    ]
    assert pair.client_events == [HandshakeComplete((3, 8), False, SERVER_INIT, b"\x02")]


def test_a_rejection_reaches_our_client_with_its_reason() -> None:
    pair = ConnectionPair(ClientHandshake(), ServerHandshake(), SERVER_INIT, reject_reason="policy says no")
    pair.run()
    assert comparable(pair.client_events) == [
        ("HandshakeFailed", TargetUnavailable, "the target refused the connection: policy says no")
    ]
    assert pair.server.state is HandshakeState.CLOSED


def test_server_init_round_trips_through_both_sides_with_any_pixel_format() -> None:
    init = ServerInit(640, 480, PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0), "Bürodesk".encode())
    pair = ConnectionPair(ClientHandshake(), ServerHandshake(), init)
    pair.run()
    assert pair.client_events == [HandshakeComplete((3, 8), True, init, b"")]
