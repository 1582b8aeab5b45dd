"""The payload constants' wire values, as RFC 6143 and rfbproto give them."""

from __future__ import annotations

from gateway.rfb.constants import (
    HEXTILE_DEFINED_BITS,
    ExtendedDesktopSizeReason,
    ExtendedDesktopSizeStatus,
    HextileSubencoding,
    TightBasic,
    TightCompression,
    TightFilter,
)


def test_hextile_subencoding_bits() -> None:
    assert [int(bit) for bit in HextileSubencoding] == [1, 2, 4, 8, 16]
    assert HEXTILE_DEFINED_BITS == 0x1F


def test_tight_control_nibble_and_filters() -> None:
    assert (TightCompression.FILL, TightCompression.JPEG) == (0x8, 0x9)
    assert (TightBasic.STREAM, TightBasic.EXPLICIT_FILTER) == (0x3, 0x4)
    assert [int(tight_filter) for tight_filter in TightFilter] == [0, 1, 2]


def test_extended_desktop_size_reasons_and_status() -> None:
    assert [int(reason) for reason in ExtendedDesktopSizeReason] == [0, 1, 2]
    assert [int(status) for status in ExtendedDesktopSizeStatus] == [0, 1, 2, 3]
