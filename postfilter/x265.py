"""Code frame sequences with libx265 through PyAV (fixed QP), for training pairs and benchmarks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

RATE = 25


def encode(frames: list[av.VideoFrame], qp: int, path: Path, preset: str = "medium") -> None:
    """Write ``frames`` (yuv420p) to ``path`` (.mp4), coded by libx265 at a fixed ``qp``:
    an I frame, then P and B frames (x265's default QP offsets), on one thread.  The frames
    are renumbered (their ``pts`` and ``time_base`` are overwritten)."""
    tmp = Path(path).with_name("tmp_" + Path(path).name)
    with av.open(str(tmp), "w") as out:
        s = out.add_stream("libx265", rate=RATE)
        s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        s.codec_context.color_range = frames[0].color_range  # else full range is mislabelled
        s.options = {"preset": preset, "x265-params": f"qp={qp}:pools=1:log-level=error"}
        for i, f in enumerate(frames):
            f.pts, f.time_base = i, Fraction(1, RATE)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    tmp.replace(path)


def decode(path: Path) -> list[av.VideoFrame]:
    """The frames of a video file, in display order."""
    with av.open(str(path)) as inp:
        return list(inp.decode(video=0))
