"""The desktop session's edge: close codes and their outcome labels."""

from __future__ import annotations

from gateway.desktop import CloseCode


def test_every_close_code_carries_its_outcome_label() -> None:
    assert {code: code.outcome for code in CloseCode} == {
        1000: "closed",
        1008: "protocol_error",
        1011: "error",
        4004: "target_unavailable",
        4005: "target_closed",
        4008: "idle_timeout",
        4009: "max_session",
        4010: "terminated",
        4011: "recording_failed",
    }
    assert CloseCode.IDLE_TIMEOUT.outcome == "idle_timeout"
    assert isinstance(CloseCode.TERMINATED, int) and int(CloseCode.TERMINATED) == 4010
