"""Test-side helpers: pixel formats, random images, and wire packing of PIXEL, TPIXEL and CPIXEL.

Written from the spec, apart from the decoders, so the tests can build payloads
for every format and know the RGB they must decode to.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.rfb.messages import RGBX8888, PixelFormat
from recorder.decoders import DecoderState

Pixels = npt.NDArray[np.uint32]  # wire pixel values, any shape
RGBImage = npt.NDArray[np.uint8]

FORMATS: dict[str, PixelFormat] = {
    "rgbx8888_le": RGBX8888,
    "rgbx8888_be": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "bgrx8888_le": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16),
    "xrgb_high_le": PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8),
    "xrgb_high_be": PixelFormat(32, 24, True, True, 255, 255, 255, 24, 16, 8),
    "rgb101010_le": PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0),
    "rgb565_mid_be": PixelFormat(32, 16, True, True, 31, 63, 31, 19, 13, 8),
    "rgb565_le": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "rgb565_be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555_be": PixelFormat(16, 15, True, True, 31, 31, 31, 10, 5, 0),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "colour_map8": PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0),
}

#: A fixed colour map for the colour-map format: entry i, as 16-bit channels.
COLOUR_MAP_16 = [((i * 37) % 256 * 257, (255 - i) * 257, (i * 11) % 256 * 257) for i in range(256)]
COLOUR_MAP_8 = np.array(COLOUR_MAP_16, np.uint32) >> 8


def new_state(pixel_format: PixelFormat, **limits: int) -> DecoderState:
    """A decoder state, with the test colour map loaded."""
    state = DecoderState(pixel_format, **limits)
    state.set_colour_map_entries(0, COLOUR_MAP_16)
    return state


def random_pixels(pixel_format: PixelFormat, shape: tuple[int, ...], rng: np.random.Generator) -> Pixels:
    """Random valid wire pixel values (unused bits zero)."""
    if not pixel_format.true_colour:
        return rng.integers(0, 256, shape, dtype=np.uint32)
    pixels = np.zeros(shape, np.uint32)
    for maximum, shift in _channels(pixel_format):
        pixels |= rng.integers(0, maximum + 1, shape, dtype=np.uint32) << np.uint32(shift)
    return pixels


def expected_rgb(pixel_format: PixelFormat, pixels: Pixels) -> RGBImage:
    """The RGB the decoders must produce: channels scaled as v * 255 // max, or the colour map."""
    if not pixel_format.true_colour:
        return COLOUR_MAP_8[pixels].astype(np.uint8)
    channels = [((pixels >> shift) & maximum) * 255 // maximum for maximum, shift in _channels(pixel_format)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def pack_pixels(pixel_format: PixelFormat, pixels: npt.ArrayLike) -> bytes:
    """PIXELs on the wire."""
    order = ">" if pixel_format.big_endian else "<"
    return np.asarray(pixels, np.uint32).astype(f"{order}u{pixel_format.bytes_per_pixel}").tobytes()


def pack_tpixels(pixel_format: PixelFormat, pixels: npt.ArrayLike) -> bytes:
    """Tight TPIXELs: R, G, B bytes for 32-bit depth-24 true colour with 8-bit channels."""
    if pixel_format.tight_pixel_size != 3:
        return pack_pixels(pixel_format, pixels)
    values = np.asarray(pixels, np.uint32).reshape(-1)
    rgb = [(values >> shift) & 0xFF for _, shift in _channels(pixel_format)]
    return np.stack(rgb, axis=-1).astype(np.uint8).tobytes()


#: For each 32-bit format with 3-byte CPIXELs: which wire byte is dropped (0 = first, 3 = last).
CPIXEL_DROPPED_BYTE = {
    "rgbx8888_le": 3,  # LE, bits in the low bytes: send the first three
    "rgbx8888_be": 0,  # BE, bits in the low bytes: send the last three
    "bgrx8888_le": 3,
    "xrgb_high_le": 0,  # LE, bits in the high bytes: send the last three
    "xrgb_high_be": 3,  # BE, bits in the high bytes: send the first three
    "rgb565_mid_be": 3,  # both fit; TigerVNC and libvncserver send the first three
}


def pack_cpixels(name: str, pixels: npt.ArrayLike) -> bytes:
    """ZRLE CPIXELs for the format called ``name`` in FORMATS."""
    pixel_format = FORMATS[name]
    wire = pack_pixels(pixel_format, pixels)
    if name not in CPIXEL_DROPPED_BYTE:
        return wire
    dropped = CPIXEL_DROPPED_BYTE[name]
    quads = np.frombuffer(wire, np.uint8).reshape(-1, 4)
    assert not quads[:, dropped].any(), "the dropped byte must be unused"
    return np.delete(quads, dropped, axis=1).tobytes()


def _channels(pixel_format: PixelFormat) -> list[tuple[int, int]]:
    return [
        (pixel_format.red_max, pixel_format.red_shift),
        (pixel_format.green_max, pixel_format.green_shift),
        (pixel_format.blue_max, pixel_format.blue_shift),
    ]
