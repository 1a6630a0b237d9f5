"""``lcodec enhance``: restore a picture or video with a decoder-side network.

``--task artifacts`` removes HEVC/HEIC coding artefacts from a decoded picture (PNG etc.),
an HEIC/HEIF file (decoded with pillow-heif) or an HEVC/H.264 video (``.mp4``/``.mkv``,
decoded with PyAV; written losslessly as FFV1 RGB in ``.mkv``, or as ``.y4m``: 8-bit, in
the source's chroma format where that is 4:2:0, 4:2:2 or 4:4:4, else 4:4:4).
``denoise``, ``sr`` and ``deblur`` (:mod:`postfilter.restore_api`) take pictures;
``lcodec decode --enhance`` runs them, or (``artifacts``) the filter of our codec's decodes
told the file's quality level, on a decoded ``.lcf`` file (:func:`add_decode_options`,
:func:`decode_enhancer`).  The progress bar shows on a terminal only.  Errors print one
``error:`` line, return status 2 and leave no output file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .io import CliError, atomic_path, check_output, read_bytes, write_atomic

if TYPE_CHECKING:
    from bitstream import Header
    from postfilter.restore_api import RestoreRunner

HEIF_EXTS = {".heic", ".heif"}
#: Video inputs: what FFmpeg demuxes by name (raw .yuv would need a size, so it is not one).
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".y4m"}
VIDEO_OUT = {".mkv": ("matroska", "ffv1"), ".y4m": ("yuv4mpegpipe", "rawvideo")}
Y4M_FORMATS = {"yuv420p", "yuv422p", "yuv444p"}
#: The options each task takes (argparse destinations); the others must be left unset.
TASK_OPTIONS = {
    "artifacts": {"qp", "ensemble"},
    "denoise": {"sigma"},
    "sr": {"scale"},
    "sr2": set(),
    "sr4": set(),
    "deblur": {"sigma", "blur_sigma"},
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``enhance`` subcommand to ``subparsers``; it dispatches to :func:`run`."""
    p = subparsers.add_parser(
        "enhance",
        help="remove coding artefacts, noise or blur from a picture, or upscale it",
        description="Post-filter a decoded picture (PNG etc.), an .heic/.heif file or an "
        ".mp4/.mkv video (written as lossless FFV1 .mkv or .y4m) against coding artefacts; "
        "denoise, upscale (sr) or deblur a picture.",
    )
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument(
        "--task",
        choices=["artifacts", "denoise", "sr", "deblur"],
        default="artifacts",
        help="coding artefacts, Gaussian noise, super-resolution or Gaussian blur "
        "(default: %(default)s)",
    )
    p.add_argument("--qp", type=float, help="artifacts: HEVC QP (default: blind)")
    _add_sigma_options(p)
    p.add_argument("--scale", type=int, choices=[2, 4], help="sr: upscaling factor")
    p.add_argument("--weights", type=Path, help="network weights (default: the shipped ones)")
    p.add_argument(
        "--tile", type=int, default=512, help="tile side in pixels (default: %(default)s)"
    )
    p.add_argument(
        "--ensemble",
        type=int,
        choices=[1, 2, 4],
        help="artifacts: average the correction over this many flips of the picture "
        "(default: 2; 1 is twice as fast, 4 half as fast)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)
    return p


def _add_sigma_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sigma",
        type=float,
        help="denoise, deblur: std of the Gaussian noise on the 0..255 scale "
        "(denoise: 0..50, default: estimate it; deblur: 0..25, default 0)",
    )
    p.add_argument(
        "--blur-sigma", type=float, help="deblur: std of the Gaussian blur in pixels (0.5..3)"
    )


def add_decode_options(p: argparse.ArgumentParser) -> None:
    """Add ``--enhance TASK`` and its options to the ``decode`` subcommand."""
    p.add_argument(
        "--enhance",
        choices=["artifacts", "denoise", "sr2", "sr4", "deblur"],
        help="restore the decoded picture with this network (artifacts: remove the codec's "
        "artefacts, told the file's quality level; full-size files only)",
    )
    _add_sigma_options(p)
    p.add_argument("--enhance-weights", type=Path, help="its weights (default: the shipped ones)")


def decode_enhancer(
    args: argparse.Namespace, header: Header
) -> Callable[[Image.Image], Image.Image]:
    """The restoration ``decode --enhance`` asked for (identity without it) of the picture
    decoded from a file with ``header``.

    Options are checked and the network loaded here, before anything is decoded.
    """
    if args.enhance is None:
        extra = [o for o in ("sigma", "blur_sigma", "enhance_weights") if vars(args)[o] is not None]
        if extra:
            raise CliError(f"{_flag(extra[0])} needs --enhance")
        return lambda image: image
    from codec.determinism import one_thread
    from postfilter import PostFilterError
    from postfilter.api import lcodec_enhancer
    from postfilter.restore_api import check_conditions, restore_image

    _check_options(args.enhance, args)
    if args.enhance == "artifacts":
        try:
            return lcodec_enhancer(header, args.enhance_weights, progress=True)
        except PostFilterError as e:
            raise CliError(str(e)) from None
    sigma, blur = check_conditions(args.enhance, args.sigma, args.blur_sigma)
    runner = _runner(args.enhance, args.enhance_weights)

    def restore(image: Image.Image) -> Image.Image:
        with one_thread():  # decoded pixels must not depend on the thread count
            return restore_image(image, runner, sigma, blur, progress=True)

    return restore


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_options(task: str, args: argparse.Namespace) -> None:
    """Refuse options ``task`` does not take and require the ones it cannot do without."""
    for dest in ("qp", "ensemble", "sigma", "scale", "blur_sigma"):
        if vars(args).get(dest) is not None and dest not in TASK_OPTIONS[task]:
            raise CliError(f"{_flag(dest)} does not apply to the {task} task")
    if task == "sr" and args.scale is None:
        raise CliError("--task sr needs --scale 2 or 4")
    if task == "deblur" and args.blur_sigma is None:
        raise CliError("deblurring needs --blur-sigma")


def _runner(task: str, weights: Path | None) -> RestoreRunner:
    """The loaded restoration network of ``task``, its load errors as :class:`CliError`."""
    from postfilter import PostFilterError
    from postfilter.restore_api import runner_for

    try:
        return runner_for(task, weights)
    except PostFilterError as e:
        raise CliError(str(e)) from None


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
    _check_options(args.task, args)
    if args.qp is not None and not 0 <= args.qp <= 51:
        raise CliError(f"--qp must be between 0 and 51, got {args.qp:g}")
    if args.tile < 16 or args.tile % 2:
        raise CliError(f"--tile must be even and at least 16, got {args.tile}")
    if not src.is_file():
        raise CliError(f"no such file: {src}")
    if src.suffix.lower() in (".lcf", ".lcv"):
        raise CliError(f"{src} is coded by lcodec: decode it first (lcodec decode, --enhance)")
    is_video = src.suffix.lower() in VIDEO_EXTS
    if is_video and args.task != "artifacts":
        raise CliError(f"--task {args.task} takes pictures; videos need --task artifacts")
    out_ext = dst.suffix.lower()
    if is_video and out_ext not in VIDEO_OUT:
        raise CliError(f"video output must be .mkv (FFV1) or .y4m, not {out_ext or '(none)'!r}")
    if not is_video and out_ext not in Image.registered_extensions():
        raise CliError(f"unknown output image format {out_ext or '(none)'!r}; use e.g. .png")
    check_output(dst, src)
    if args.task != "artifacts":
        return _restore(args, src, dst)

    from postfilter import filter_for
    from postfilter.api import DEFAULT_ENSEMBLE

    pf = filter_for("qp", args.weights, video=is_video)
    qp, how = args.qp, "blind" if args.qp is None else f"at QP {args.qp:g}"
    if qp is None and src.suffix.lower() in HEIF_EXTS:
        from postfilter.hevc import heif_qp

        qp = heif_qp(read_bytes(src))  # told beats blind; None where unreadable
        how = how if qp is None else f"at QP {qp:g}, read from the file"
    settings = (qp, args.tile, args.ensemble or DEFAULT_ENSEMBLE)
    if is_video:
        n, sound = _enhance_video(pf, src, dst, settings, progress=not args.quiet)
        return f"{dst}: {n} frames enhanced with {pf.model_id} ({how}){sound}"
    image = _read_image(src)
    out, told = pf.restore_picture(image, *settings, progress=not args.quiet)
    if qp is None and told is not None:
        how = f"blind, QP estimated at {told:.1f}"
    fmt = Image.registered_extensions()[out_ext]
    icc = {"icc_profile": image.info["icc_profile"]} if image.info.get("icc_profile") else {}
    write_atomic(dst, lambda tmp: out.save(tmp, format=fmt, **icc))
    return f"{dst}: enhanced with {pf.model_id} ({how})"


def _restore(args: argparse.Namespace, src: Path, dst: Path) -> str:
    """Denoise, upscale or deblur the picture ``src`` into ``dst``; return the summary."""
    from codec.image import to_picture
    from postfilter.restore_api import check_conditions, restore_image

    task = f"sr{args.scale}" if args.task == "sr" else args.task
    sigma, blur = check_conditions(task, args.sigma, args.blur_sigma)
    runner = _runner(task, args.weights)
    image = _read_image(src)
    if task == "denoise":
        how = "told" if sigma is not None else "estimated"
        sigma = runner.estimate_sigma(to_picture(image).rgb) if sigma is None else sigma
        done = f"denoised with {runner.model_id} at sigma {sigma:.1f} ({how})"
    elif task == "deblur":
        done = f"deblurred with {runner.model_id} (blur sigma {blur:g}, noise sigma {sigma:g})"
    else:
        done = f"upscaled x{runner.scale} with {runner.model_id}"
    out = restore_image(image, runner, sigma, blur, args.tile, progress=not args.quiet)
    fmt = Image.registered_extensions()[dst.suffix.lower()]
    write_atomic(dst, lambda tmp: out.save(tmp, format=fmt))
    return f"{dst}: {done}"


def _read_image(path: Path) -> Image.Image:
    """The decoded picture in ``path`` (any Pillow format, or HEIC/HEIF), turned upright as
    its EXIF orientation says (the output keeps no EXIF)."""
    from codec.image import ImageError, open_image, upright

    try:
        if path.suffix.lower() in HEIF_EXTS:
            from postfilter.heic import decode

            return upright(decode(read_bytes(path)))[0]
        return upright(open_image(path))[0]
    except (CliError, ImageError):
        raise
    except Exception as e:  # any decoder failure means a bad input file
        raise CliError(f"cannot read picture {path}: {e}") from None


def _enhance_video(pf, src: Path, dst: Path, settings: tuple, progress: bool) -> tuple[int, str]:
    """Filter every frame of ``src`` into ``dst`` (FFV1 .mkv or .y4m); return the frame count
    and what became of the sound, for the summary ("" where there was none)."""
    import av

    from codec.video_io import VideoIOError, check_y4m_end

    container, codec = VIDEO_OUT[dst.suffix.lower()]
    try:
        with av.open(str(src)) as inp, atomic_path(dst) as tmp:
            if not inp.streams.video:
                raise CliError(f"no video stream in {src}")
            with av.open(str(tmp), "w", format=container) as out:
                frames = _filter_frames(pf, inp, out, codec, settings, progress)
            if not frames:
                raise CliError(f"no frames decoded from {src}")
            if src.suffix.lower() == ".y4m":
                check_y4m_end(src, frames)
            sound = ""
            if inp.streams.audio:
                sound = ", its sound copied" if codec == "ffv1" else "; sound not copied (.y4m)"
    except (CliError, KeyboardInterrupt):
        raise
    except VideoIOError as e:
        raise CliError(str(e)) from None
    except Exception as e:  # PyAV/FFmpeg errors: unreadable or corrupt video
        raise CliError(f"cannot process video {src}: {e}") from None
    return frames, sound


def _filter_frames(pf, inp, out, codec: str, settings: tuple, progress: bool) -> int:
    """Decode, filter and encode the first video stream of ``inp`` into ``out``; into FFV1
    ``.mkv`` copy the packets of the first audio stream as they are.

    Frames go to RGB in the range they say they are in.  A ``.y4m`` of a 4:2:0 source gets
    the decoded planes plus the filter's change (:func:`codec.video_io.add_rgb_change`),
    other ``.y4m`` formats the filtered RGB converted back, both in the source's range and
    flagged so; FFV1 keeps the filtered RGB exactly.  Frames keep their timestamps."""
    import av
    from av.video.reformatter import ColorRange
    from tqdm import tqdm

    from codec.video_io import add_rgb_change, is_full_range, to_rgb

    vs = inp.streams.video[0]
    ctx = vs.codec_context
    ost = out.add_stream(codec, rate=vs.average_rate or Fraction(25))
    ost.width, ost.height = ctx.width, ctx.height
    ost.pix_fmt = "bgr0" if codec == "ffv1" else _y4m_format(ctx.pix_fmt)
    sound = inp.streams.audio[0] if codec == "ffv1" and inp.streams.audio else None
    sound_out = out.add_stream_from_template(sound) if sound is not None else None

    def encode_restored(frame: av.VideoFrame, first: bool) -> None:
        full = is_full_range(frame)
        rgb = to_rgb(frame, full)
        restored = pf(rgb, *settings)
        if ost.pix_fmt == frame.format.name.replace("yuvj", "yuv") == "yuv420p":
            new = add_rgb_change(frame, rgb, restored, full)
        else:
            new = av.VideoFrame.from_ndarray(restored, format="rgb24").reformat(
                format=ost.pix_fmt,
                dst_colorspace="itu601",
                dst_color_range="JPEG" if full else "MPEG",
            )
        if first and codec != "ffv1":
            ost.codec_context.color_range = ColorRange.JPEG if full else ColorRange.MPEG
        elif first and frame.rotation:  # players turn the FFV1 output as the source
            ost.set_display_rotation(frame.rotation)
        if frame.pts is not None:
            new.pts, new.time_base = frame.pts, frame.time_base
        out.mux(ost.encode(new))

    frames = 0
    bar = tqdm(
        total=vs.frames or None, unit="frame", leave=False, disable=None if progress else True
    )
    for packet in inp.demux(*(s for s in (vs, sound) if s is not None)):
        if packet.stream.type == "audio":
            if packet.dts is not None:  # not the demuxer's end-of-stream marker
                packet.stream = sound_out
                out.mux(packet)
            continue
        for frame in packet.decode():
            encode_restored(frame, first=not frames)
            frames += 1
            bar.update()
    bar.close()
    out.mux(ost.encode(None))
    return frames


def _y4m_format(src_fmt: str | None) -> str:
    src_fmt = (src_fmt or "").replace("yuvj", "yuv")  # the range goes into the header
    return src_fmt if src_fmt in Y4M_FORMATS else "yuv444p"
