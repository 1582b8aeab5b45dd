"""One render, timed in CPU time and checked for quality: ``python -m bench.render_check JOURNAL OUT.mp4``.

Runs :func:`recorder.render.render_journal` (what ``deskgate recordings render`` runs) with the
export defaults, and prints one JSON line: the session's duration, the render's CPU time (this
process's user + system time: other jobs on the machine do not inflate it, as they do wall
time), the wall time, the frames, and the PSNR of every ``SAMPLE_EVERY``-th frame of the MP4
against the picture that was handed to the encoder — decoded as a player does (BT.709,
limited range), so that the figure covers the colour conversion, 4:2:0 and x264 together.
The sampled pictures are copied as they pass (a few per cent of a frame's cost).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import av
import numpy as np

import recorder.render
from recorder.framebuffer import RGBArray
from recorder.keyring import RecordingKeyring, install
from recorder.video import VideoEncoder

SAMPLE_EVERY = 10


class SamplingEncoder(VideoEncoder):
    """A :class:`VideoEncoder` that keeps a copy of every ``SAMPLE_EVERY``-th frame it is given."""

    samples: dict[int, RGBArray] = {}  # frame index -> the picture

    def add_frame(self, rgb: RGBArray, t: float) -> None:
        if self.frames % SAMPLE_EVERY == 0:
            SamplingEncoder.samples[self.frames] = self._fit(rgb).copy()
        super().add_frame(rgb, t)


def yuv_to_rgb(frame: av.VideoFrame) -> RGBArray:
    """A yuv420p frame in RGB as a player shows it: BT.709, limited range, chroma repeated."""
    height, width = frame.height, frame.width
    planes = frame.to_ndarray().astype(np.float64)
    luma = (planes[:height] - 16) / 219
    chroma = planes[height:].reshape(2, height // 2, width // 2).repeat(2, axis=1).repeat(2, axis=2)
    blue, red = (chroma - 128) / 224
    rgb = np.stack([luma + 1.5748 * red, luma - 0.18732 * blue - 0.46812 * red, luma + 1.8556 * blue], axis=-1)
    picture: RGBArray = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    return picture


def psnr(a: RGBArray, b: RGBArray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def sampled_psnr(video: Path, samples: dict[int, RGBArray]) -> list[float]:
    """PSNR of each sampled frame of ``video`` against its picture."""
    values = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index in samples:
                values.append(psnr(yuv_to_rgb(frame), samples[index]))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.render_check", description=__doc__.splitlines()[0])
    parser.add_argument("journal", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--keys", type=Path, help="the recording keys of an encrypted journal (storage.recording_keys)")
    args = parser.parse_args()
    if args.keys is not None:
        install(RecordingKeyring.load(args.keys, create=False))
    setattr(recorder.render, "VideoEncoder", SamplingEncoder)  # noqa: B010 — render_journal's encoder, sampled
    result = recorder.render.render_journal(args.journal, args.output)
    quality = sampled_psnr(args.output, SamplingEncoder.samples)
    print(json.dumps({"duration": result.duration, "cpu_seconds": result.cpu_seconds,
                      "wall_seconds": result.wall_seconds,
                      "frames": result.frames, "error": result.error, "sampled_frames": len(quality),
                      "min_psnr_db": min(quality, default=math.inf), "bytes": args.output.stat().st_size}))


if __name__ == "__main__":
    main()
