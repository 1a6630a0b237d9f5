"""``lcodec enhance``: remove HEVC/HEIC coding artefacts from a decoded picture or video.

The input is a decoded picture (PNG etc.), an HEIC/HEIF file (decoded with pillow-heif) or
an HEVC/H.264 video (``.mp4``/``.mkv``, decoded with PyAV; written losslessly as FFV1 RGB
in ``.mkv``, or as ``.y4m`` in the source's YUV format).  The progress bar shows on a
terminal only.  Errors print one ``error:`` line, return status 2 and leave no
output file.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

from PIL import Image

from .io import CliError, atomic_path, read_bytes, write_atomic

HEIF_EXTS = {".heic", ".heif"}
VIDEO_EXTS = {".mp4", ".mkv"}
VIDEO_OUT = {".mkv": ("matroska", "ffv1"), ".y4m": ("yuv4mpegpipe", "rawvideo")}
Y4M_FORMATS = {"yuv420p", "yuv422p", "yuv444p"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``enhance`` subcommand to ``subparsers``; it dispatches to :func:`run`."""
    p = subparsers.add_parser(
        "enhance",
        help="remove coding artefacts from a decoded picture, HEIC file or video",
        description="Post-filter a decoded picture (PNG etc.), an .heic/.heif file or an "
        ".mp4/.mkv video (written as lossless FFV1 .mkv or .y4m).",
    )
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument(
        "--task", choices=["artifacts"], default="artifacts", help="(default: %(default)s)"
    )
    p.add_argument("--qp", type=float, help="HEVC QP it was coded with (default: estimate it)")
    p.add_argument("--weights", type=Path, help="post-filter weights (default: the shipped ones)")
    p.add_argument(
        "--tile", type=int, default=512, help="tile side in pixels (default: %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Enhance ``args.input`` into ``args.output``; return the exit status."""
    from postfilter import PostFilterError

    try:
        summary = _enhance(args)
    except (CliError, PostFilterError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary)
    return 0


def _enhance(args: argparse.Namespace) -> str:
    src, dst = Path(args.input), Path(args.output)
    if args.qp is not None and not 0 <= args.qp <= 51:
        raise CliError(f"--qp must be between 0 and 51, got {args.qp:g}")
    if args.tile < 16 or args.tile % 2:
        raise CliError(f"--tile must be even and at least 16, got {args.tile}")
    if not src.is_file():
        raise CliError(f"no such file: {src}")
    is_video = src.suffix.lower() in VIDEO_EXTS
    out_ext = dst.suffix.lower()
    if is_video and out_ext not in VIDEO_OUT:
        raise CliError(f"video output must be .mkv (FFV1) or .y4m, not {out_ext or '(none)'!r}")
    if not is_video and out_ext not in Image.registered_extensions():
        raise CliError(f"unknown output image format {out_ext or '(none)'!r}; use e.g. .png")

    from postfilter import load_filter

    pf = load_filter(None if args.weights is None else str(args.weights))
    how = "told" if args.qp is not None else "estimated"
    if is_video:
        n = _enhance_video(pf, src, dst, args.qp, args.tile, progress=not args.quiet)
        qp = "estimated per frame" if args.qp is None else f"{args.qp:g} (told)"
        return f"{dst}: {n} frames enhanced with {pf.model_id} at QP {qp}"
    image = _read_image(src)
    qp = pf.estimate_qp(_rgb(image)) if args.qp is None else args.qp
    out = Image.fromarray(pf(_rgb(image), qp, args.tile))
    fmt = Image.registered_extensions()[out_ext]
    write_atomic(dst, lambda tmp: out.save(tmp, format=fmt))
    return f"{dst}: enhanced with {pf.model_id} at QP {qp:.1f} ({how})"


def _rgb(image: Image.Image):
    import numpy as np

    return np.asarray(image.convert("RGB"))


def _read_image(path: Path) -> Image.Image:
    """The decoded picture in ``path`` (any Pillow format, or HEIC/HEIF)."""
    try:
        if path.suffix.lower() in HEIF_EXTS:
            from postfilter.heic import decode

            return decode(read_bytes(path))
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except CliError:
        raise
    except Exception as e:  # any decoder failure means a bad input file
        raise CliError(f"cannot read picture {path}: {e}") from None


def _enhance_video(pf, src: Path, dst: Path, qp: float | None, tile: int, progress: bool) -> int:
    """Filter every frame of ``src`` into ``dst`` (FFV1 .mkv or .y4m); return the frame count."""
    import av

    container, codec = VIDEO_OUT[dst.suffix.lower()]
    try:
        with av.open(str(src)) as inp, atomic_path(dst) as tmp:
            if not inp.streams.video:
                raise CliError(f"no video stream in {src}")
            with av.open(str(tmp), "w", format=container) as out:
                frames = _filter_frames(pf, inp, out, codec, (qp, tile), progress)
            if not frames:
                raise CliError(f"no frames decoded from {src}")
    except (CliError, KeyboardInterrupt):
        raise
    except Exception as e:  # PyAV/FFmpeg errors: unreadable or corrupt video
        raise CliError(f"cannot process video {src}: {e}") from None
    return frames


def _filter_frames(pf, inp, out, codec: str, qp_tile: tuple, progress: bool) -> int:
    """Decode, filter and encode the first video stream of ``inp`` into ``out``."""
    import av
    from tqdm import tqdm

    vs = inp.streams.video[0]
    ctx = vs.codec_context
    ost = out.add_stream(codec, rate=vs.average_rate or Fraction(25))
    ost.width, ost.height = ctx.width, ctx.height
    ost.pix_fmt = "bgr0" if codec == "ffv1" else _y4m_format(ctx.pix_fmt)
    frames = 0
    bar = tqdm(
        inp.decode(vs),
        total=vs.frames or None,
        unit="frame",
        leave=False,
        disable=None if progress else True,
    )
    for frame in bar:
        rgb = pf(frame.to_ndarray(format="rgb24"), *qp_tile)
        new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        out.mux(ost.encode(new.reformat(format=ost.pix_fmt)))
        frames += 1
    out.mux(ost.encode(None))
    return frames


def _y4m_format(src_fmt: str | None) -> str:
    return src_fmt if src_fmt in Y4M_FORMATS else "yuv444p"
