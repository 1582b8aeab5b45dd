"""swscale contexts kept per picture size, shared by the Tight JPEG decoder and the video encoder."""

from __future__ import annotations

from collections import OrderedDict

from av.video.reformatter import VideoReformatter


class KeptReformatters:
    """One ``VideoReformatter`` per size, the least recently used dropped beyond ``limit``.

    A context set up for one size is cheap to reuse and costly to rebuild (swscale's filters
    and tables); a recording shows a few sizes over and over.
    """

    __slots__ = ("_kept", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: OrderedDict[tuple[int, int], VideoReformatter] = OrderedDict()

    def for_size(self, width: int, height: int) -> VideoReformatter:
        kept = self._kept
        reformatter = kept.get((width, height))
        if reformatter is None:
            reformatter = kept[width, height] = VideoReformatter()
            if len(kept) > self._limit:
                kept.popitem(last=False)
        else:
            kept.move_to_end((width, height))
        return reformatter
