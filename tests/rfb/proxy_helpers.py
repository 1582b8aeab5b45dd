"""What the proxy tests share: a desktop, and a transcript of what a proxy said and sent."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.rfb.messages import (
    RGBX8888,
    ServerInit,
)
from gateway.rfb.proxy import (
    JournalData,
    ProxyConnection,
    ProxyEvent,
    Side,
)

WIDTH, HEIGHT = 64, 48
SERVER_INIT = ServerInit(WIDTH, HEIGHT, RGBX8888, b"desk")


@dataclass
class Transcript:
    """What a proxy said: events other than JournalData, journal bytes by sender, sent bytes by destination."""

    events: list[ProxyEvent] = field(default_factory=list)
    journal: dict[Side, bytes] = field(default_factory=lambda: {Side.BROWSER: b"", Side.TARGET: b""})
    sent: dict[Side, bytes] = field(default_factory=lambda: {Side.BROWSER: b"", Side.TARGET: b""})

    def collect(self, proxy: ProxyConnection) -> None:
        for event in proxy.events_received():
            if isinstance(event, JournalData):
                self.journal[event.sender] += event.data
                # From the browser, the journaled messages as framed are exactly the journaled bytes.
                framed = b"".join(message.raw for message in event.messages)
                assert framed == (event.data if event.sender is Side.BROWSER else b"")
            else:
                self.events.append(event)
        self.sent[Side.BROWSER] += proxy.data_to_send_browser()  # what the target sent, to the browser
        self.sent[Side.TARGET] += proxy.data_to_send_target()


def feed(proxy: ProxyConnection, side: Side, chunks: Sequence[bytes], transcript: Transcript | None = None) -> Transcript:
    transcript = transcript if transcript is not None else Transcript()
    receive = proxy.receive_browser_data if side is Side.BROWSER else proxy.receive_target_data
    for chunk in chunks:
        receive(chunk)
        transcript.collect(proxy)
    return transcript
