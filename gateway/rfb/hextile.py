"""Hextile sub-rectangle bounds, checked for a whole tile at once (the framer's hottest loop)."""

from __future__ import annotations

from gateway.rfb.errors import ProtocolViolation

# For n sub-rectangles (a tile has at most 255): n byte lanes of 0x01, of 0x0F and of 0x80.
_LANES = [tuple(int.from_bytes(bytes((lane,)) * count, "big") for lane in (0x01, 0x0F, 0x80)) for count in range(256)]


def check_hextile_subrects(buffer: bytes, start: int, end: int, stride: int, width: int, height: int) -> None:
    """Each sub-rectangle in ``buffer[start:end]`` ends with x<<4|y and (w-1)<<4|(h-1); it must fit its tile.

    Fast path: all are tested at once, on big integers with one byte lane per sub-rectangle. A
    lane's x + (w-1) is at most 30, and adding 128 - width sets its top bit exactly when
    x + (w-1) >= width, without carrying into the next lane; the same goes for y and height.
    Only a tile that fails is walked, to name its first culprit.
    """
    positions = int.from_bytes(buffer[start + stride - 2 : end : stride], "big")
    sizes = int.from_bytes(buffer[start + stride - 1 : end : stride], "big")
    ones, nibbles, top_bits = _LANES[(end - start) // stride]
    right = ((positions >> 4) & nibbles) + ((sizes >> 4) & nibbles) + ones * (128 - width)
    bottom = (positions & nibbles) + (sizes & nibbles) + ones * (128 - height)
    if not (right | bottom) & top_bits:
        return
    for at in range(start + stride - 2, end, stride):
        xy, wh = buffer[at], buffer[at + 1]
        if (xy >> 4) + (wh >> 4) >= width or (xy & 15) + (wh & 15) >= height:
            raise ProtocolViolation(
                f"Hextile sub-rectangle {(wh >> 4) + 1}x{(wh & 15) + 1} at ({xy >> 4}, {xy & 15}) "
                f"lies outside its {width}x{height} tile"
            )
