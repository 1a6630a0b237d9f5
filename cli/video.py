"""Video in the ``lcodec`` command: ``encode``, ``decode`` and ``info`` of ``.lcv`` files.

``cli/main.py`` hands a command over when :func:`is_video_encode` or :func:`is_lcv` says
so.  Outputs are written to a temporary file (or folder) and renamed, so a failure leaves
nothing.  A damaged file is an error (one ``error:`` line naming the first damaged frame,
status 2), unless ``decode --salvage``: then the intact frames before the damage are
written, a ``warning:`` line says what was lost, and the status is 0.  The progress bar
(frames per second) shows on a terminal only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import models
from .io import CliError, atomic_dir, atomic_path, check_output, write_atomic

if TYPE_CHECKING:
    from bitstream.video import VideoHeader

LCV_SUFFIX = ".lcv"


def add_encode_options(p: argparse.ArgumentParser) -> None:
    """The video-only options of ``encode``."""
    from bitstream.video import DEFAULT_GOP

    p.add_argument(
        "--gop",
        type=int,
        help=f"video: intra period in frames, 0 = one I-frame (default {DEFAULT_GOP})",
    )
    p.add_argument("--size", help="raw .yuv input (yuv420p): frame size WxH")
    p.add_argument(
        "--fps",
        help="frame rate, e.g. 25 or 30000/1001 (needed for raw .yuv and a folder of frames;"
        " else overrides the file's)",
    )
    _add_inter_option(p, "video: code P-frames with this P-frame model (default: the shipped one)")


def _add_inter_option(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--inter-model", type=Path, metavar="WEIGHTS", help=text)


def add_decode_options(p: argparse.ArgumentParser) -> None:
    """The video-only options of ``decode``."""
    p.add_argument(
        "--salvage",
        action="store_true",
        help="video: write the intact frames before the first damaged one (status 0)",
    )
    _add_inter_option(p, "video: the P-frame model the file names (default: the shipped one)")


def is_video_encode(args: argparse.Namespace) -> bool:
    """Whether ``encode`` should code a video: a video input or an ``.lcv`` output."""
    return is_video_input(args.input) or is_lcv(args.output)


def is_video_input(path: Path) -> bool:
    """Whether ``encode`` reads ``path`` as a video: by its suffix, or a folder of frames."""
    from codec.video_io import VIDEO_SUFFIXES

    return path.suffix.lower() in VIDEO_SUFFIXES or path.is_dir()


def is_lcv(path: Path) -> bool:
    return path.suffix.lower() == LCV_SUFFIX


def _load(args: argparse.Namespace, header: VideoHeader | None = None):
    """The video codec: the image model and a P-frame model, ``--inter-model`` or else the
    shipped one.  Decoding (``header``: the file's) loads a P-frame model only for a file
    that names one, and only the one it names; encoding loads none for ``--gop 1`` (unless
    given)."""
    from codec.inter_weights import DEFAULT_INTER_WEIGHTS
    from codec.video import VideoCodec

    image = models.picture_codec(args.model)
    needed = header.inter_id if header is not None else ""
    path = args.inter_model
    if (header is not None and not needed) or (header is None and path is None and args.gop == 1):
        return VideoCodec(image)
    if path is None and DEFAULT_INTER_WEIGHTS.is_file():
        path = DEFAULT_INTER_WEIGHTS
    if path is None:
        if not needed:
            return VideoCodec(image)  # encoding, no P-frame model installed: all-intra
        raise CliError(f"video needs P-frame model {needed}: give it with --inter-model")
    inter = models.p_frame_coder(path)
    if needed and (inter.model_id, inter.digest) != (needed, header.inter_digest):
        raise CliError(
            f"video needs P-frame model {needed} ({header.inter_digest.hex()}), {path} holds"
            f" {inter.model_id} ({inter.digest.hex()}): give the right one with --inter-model"
        )
    return VideoCodec(image, inter)


def cmd_encode(args: argparse.Namespace) -> int:
    from bitstream.video import DEFAULT_GOP
    from codec.video import encode_video
    from codec.video_io import parse_fps, parse_size

    if args.target_bpp is not None or args.downscale is not None or args.refine:
        raise CliError("--target-bpp, --downscale and --refine are for pictures, not video")
    if not is_lcv(args.output):
        raise CliError(f"video output must end in {LCV_SUFFIX}: {args.output}")
    check_output(args.output, args.input)
    gop = DEFAULT_GOP if args.gop is None else args.gop
    if gop < 0:
        raise CliError("--gop must be 0 (one I-frame) or a positive intra period")
    size = parse_size(args.size) if args.size else None
    fps = parse_fps(args.fps) if args.fps else None
    if not args.input.exists():
        raise CliError(f"no such file: {args.input}")
    model = _load(args)
    quality = 4 if args.quality is None else args.quality
    with atomic_path(args.output) as tmp:
        summary = encode_video(
            args.input, tmp, quality, gop, size=size, fps=fps, codec=model, progress=_tty()
        )
    types = summary.types
    print(
        f"{args.output}: {len(summary.frames)} frames ({types['I']} I, {types['P']} P;"
        f" gop {gop} requested{_all_intra_note(summary.header.inter_id)}),"
        f" {summary.bytes} bytes, {summary.bpp:.4f} bpp"
        + (f" ({'; '.join(summary.changes)})" if summary.changes else "")
    )
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from codec.video import decode_video, scan_video
    from codec.video_io import output_kind

    kind = output_kind(args.output)
    if not args.input.is_file():
        raise CliError(f"no such file: {args.input}")
    if kind != "png":
        check_output(args.output, args.input)
    scanned = scan_video(args.input)  # report a damaged file before loading the model
    if scanned.damage is not None and not (args.salvage and scanned.frames):
        raise scanned.damage
    model = _load(args, scanned.header)
    place = atomic_dir if kind == "png" else atomic_path
    with place(args.output) as tmp:
        summary = decode_video(args.input, tmp, args.salvage, codec=model, progress=_tty())
    if summary.damage is not None:
        print(
            f"warning: {summary.damage}; wrote the {len(summary.frames)} intact frames"
            f" before it to {args.output}",
            file=sys.stderr,
        )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from codec.video import scan_video

    if not args.input.is_file():
        raise CliError(f"no such file: {args.input}")
    summary = scan_video(args.input)
    if summary.damage is not None:
        raise summary.damage
    h = summary.header
    frames = [
        {"index": f.index, "type": f.type, "bytes": f.bytes, "bits": 8 * f.bytes}
        | ({"quality": f.quality} if f.quality is not None else {})
        for f in summary.frames
    ]
    info = {
        "file": str(args.input),
        "bytes": summary.bytes,
        "bpp": summary.bpp,
        "format_version": h.version,
        "width": h.width,
        "height": h.height,
        "frame_count": h.frames,
        "fps": str(h.fps),
        "gop_requested": h.gop,
        "frame_types": summary.types,
        "intra_model_id": h.intra_id,
        "intra_model_digest": h.intra_digest.hex(),
        "inter_model_id": h.inter_id or None,
        "inter_model_digest": h.inter_digest.hex() if h.inter_id else None,
        "header_bytes": len(h.pack()),
        "frames": frames,
    }
    note = _all_intra_note(h.inter_id)
    if note:
        info["note"] = note.removeprefix("; ")
    if args.plot is not None:
        _plot_frames(args.plot, frames, f"{args.input.name}: {summary.bpp:.4f} bpp, gop {h.gop}")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key != "frames":
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    for f in frames:
        quality = f" quality {f['quality']}" if "quality" in f else ""
        print(f"  frame {f['index']}: {f['type']} {f['bytes']} bytes ({f['bits']} bits){quality}")
    return 0


def _plot_frames(png: Path, frames: list[dict], title: str) -> None:
    """Write the chart of the bits of each frame to ``png``."""
    from evaluation.plot import frame_bits_figure

    if png.suffix.lower() != ".png":
        raise CliError(f"--plot writes a PNG: {png}")
    fig = frame_bits_figure(frames, title)
    write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=130))


def _all_intra_note(inter_id: str) -> str:
    return "" if inter_id else "; no P-frame model, so every frame is an I-frame"


def _tty() -> bool:
    return sys.stderr.isatty()
