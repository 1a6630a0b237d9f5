"""The ``lcodec`` command: encode, decode and inspect lcodec files; evaluate codecs.

Every failure the user can cause (bad file, bad option) prints one line starting
with ``error:`` on stderr and exits with status 2, leaving no output file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from PIL import Image

from . import enhance, models, rd, video
from .io import CliError, check_output, read_bytes, write_atomic

SIGPIPE_STATUS = 128 + signal.SIGPIPE  # what a Unix tool stopped by a closed pipe reports
MAX_THREADS = 256  # far more than helps; a huge count makes PyTorch's thread pool crash
LCF_SUFFIX = ".lcf"
#: Options of one kind of input, refused with the other (argparse destinations).
VIDEO_OPTIONS = ("gop", "size", "fps", "inter_model", "salvage")
ENHANCE_OPTIONS = ("enhance", "sigma", "blur_sigma", "enhance_weights")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _version() -> str:
    """The package version and the file formats it writes."""
    from importlib.metadata import PackageNotFoundError, version

    from bitstream.container import FORMAT_VERSION
    from bitstream.video import VIDEO_FORMAT_VERSION

    try:
        package = version("lcodec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        package = "(not installed)"
    return f"lcodec {package} (.lcf format {FORMAT_VERSION}, .lcv format {VIDEO_FORMAT_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lcodec", description="Learned image and video codec.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--model", type=Path, help="weights file (default: the shipped model)")
    p.add_argument("--threads", type=int, help="CPU threads for the transforms")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    e = sub.add_parser("encode", help="compress a picture (.lcf) or a video (.lcv)")
    e.set_defaults(func=cmd_encode)
    e.add_argument("input", type=Path, nargs="+", help="one file, or several with -o FOLDER")
    e.add_argument("-o", "--output", required=True, help=OUTPUT_HELP)  # a Path in batch()
    g = e.add_mutually_exclusive_group()
    g.add_argument("-q", "--quality", type=int, help="quality level, higher is better (default 4)")
    g.add_argument(
        "--target-bpp", type=float, help="best quality with at most this many bits/pixel"
    )
    e.add_argument(
        "--downscale",
        type=int,
        choices=(1, 2, 4),
        help="low-rate mode: code at 1/2 or 1/4 size, super-resolve when decoding "
        "(default 1; with --target-bpp, 2 then 4 when no quality fits at full size)",
    )
    e.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="optimise the latent for STEPS gradient steps: smaller files, slower encoding "
        "(about 0.9 s per step and megapixel; 50 is a good value; default 0, off)",
    )
    video.add_encode_options(e)

    d = sub.add_parser("decode", help="decompress .lcf to a picture (PNG, ...), .lcv to a video")
    d.set_defaults(func=cmd_decode)
    d.add_argument("input", type=Path, nargs="+", help="one file, or several with -o FOLDER")
    d.add_argument("-o", "--output", required=True, help=OUTPUT_HELP)  # a Path in batch()
    enhance.add_decode_options(d)
    video.add_decode_options(d)

    i = sub.add_parser("info", help="header and section (or frame) sizes of an .lcf/.lcv file")
    i.set_defaults(func=cmd_info)
    i.add_argument("input", type=Path)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--plot", type=Path, metavar="PNG", help="video: chart the bits of each frame")

    rd.add_parser(sub)
    enhance.add_parser(sub)
    return p


OUTPUT_HELP = (
    "output file; or an existing folder (needed with several inputs), where each goes to"
    " <name>.lcf or .lcv (encode), .png or .y4m (decode)"
)


def batch(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One ``args`` per input of ``encode`` or ``decode``, each with its own output: a file
    in the folder ``-o`` named after the input (pictures and videos, coded or decoded)
    where ``-o`` is an existing folder or ends in a slash, else ``-o`` itself, which one
    input needs (a folder there is the PNG frames of a decoded video)."""
    inputs, out = args.input, Path(args.output)
    folder = out.is_dir() or args.output.endswith(("/", os.sep))
    if len(inputs) == 1 and (not folder or (args.command == "decode" and video.is_lcv(inputs[0]))):
        return [argparse.Namespace(**{**vars(args), "input": inputs[0], "output": out})]
    if not out.is_dir():
        if len(inputs) == 1:
            raise CliError(f"output folder does not exist: {out}")
        raise CliError(f"{len(inputs)} inputs need -o FOLDER, an existing folder: {out}")
    if args.command == "encode":
        suffixes = [".lcv" if video.is_video_input(p) else ".lcf" for p in inputs]
    else:
        suffixes = [".y4m" if video.is_lcv(p) else ".png" for p in inputs]
    outputs = [out / (p.stem + suffix) for p, suffix in zip(inputs, suffixes, strict=True)]
    clash = next((o for o in outputs if outputs.count(o) > 1), None)
    if clash is not None:
        raise CliError(f"two inputs would be written to {clash}")
    return [
        argparse.Namespace(**{**vars(args), "input": i, "output": o})
        for i, o in zip(inputs, outputs, strict=True)
    ]


def check_options(args: argparse.Namespace) -> None:
    """Refuse options of ``encode`` and ``decode`` that no input of the command takes:
    video options without a video, ``decode --enhance`` and its options without a picture."""
    if args.command == "encode":
        lcv_output = video.is_lcv(Path(args.output))
        videos = [lcv_output or video.is_video_input(p) for p in args.input]
    elif args.command == "decode":
        videos = [video.is_lcv(p) for p in args.input]
        if all(videos):
            _refuse(args, ENHANCE_OPTIONS, "applies to pictures, not to videos")
    else:
        return
    if not any(videos):
        _refuse(args, VIDEO_OPTIONS, "is for video")


def _refuse(args: argparse.Namespace, dests: tuple[str, ...], why: str) -> None:
    """CliError naming the first of the options ``dests`` that ``args`` sets."""
    given = [d for d in dests if vars(args).get(d) not in (None, False)]
    if given:
        raise CliError(f"--{given[0].replace('_', '-')} {why}")


def cmd_encode(args) -> int:
    if video.is_video_encode(args):
        return video.cmd_encode(args)
    if args.output.suffix.lower() != LCF_SUFFIX:
        raise CliError(f"picture output must end in {LCF_SUFFIX}: {args.output}")
    check_output(args.output, args.input)
    from codec.image import to_picture

    pic = to_picture(args.input)
    model = models.picture_codec(args.model)
    data = model.encode(
        pic,
        quality=args.quality,
        target_bpp=args.target_bpp,
        downscale=args.downscale,
        refine=args.refine,
    )
    write_atomic(args.output, lambda tmp: tmp.write_bytes(data))
    h, w = pic.rgb.shape[:2]
    note = f" ({'; '.join(pic.changes)})" if pic.changes else ""
    print(f"{args.output}: {len(data)} bytes, {len(data) * 8 / (w * h):.4f} bpp{note}")
    return 0


def cmd_decode(args) -> int:
    if video.is_lcv(args.input):
        return video.cmd_decode(args)
    ext = args.output.suffix.lower()
    if ext not in Image.registered_extensions():
        raise CliError(f"unknown output image format {ext or '(none)'!r}; use e.g. .png")
    check_output(args.output, args.input)
    from bitstream import unpack

    data = read_bytes(args.input)
    header, _ = unpack(data)  # report a bad file before loading the model
    restore = enhance.decode_enhancer(args, header)  # --enhance checked and loaded first
    image = restore(models.picture_codec(args.model).decode(data))
    fmt = Image.registered_extensions()[ext]
    write_atomic(args.output, lambda tmp: image.save(tmp, format=fmt))
    return 0


def cmd_info(args) -> int:
    if video.is_lcv(args.input):
        return video.cmd_info(args)
    if args.plot is not None:
        raise CliError("--plot charts the frames of a video (.lcv)")
    from bitstream import unpack

    data = read_bytes(args.input)
    header, sections = unpack(data)
    pixels = header.width * header.height
    info = {
        "file": str(args.input),
        "bytes": len(data),
        "bpp": len(data) * 8 / pixels,
        "format_version": header.version,
        "width": header.width,
        "height": header.height,
        "channels": header.channels,
        "quality": header.quality,
        "downscale": header.downscale,
        "model_id": header.model_id,
        "model_digest": header.digest.hex(),
        "header_bytes": len(data) - sum(len(s) for s in sections.values()),
        "sections": {tag.decode("latin-1"): len(s) for tag, s in sections.items()},
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "sections":
            for tag, size in value.items():
                print(f"  section {tag}: {size} bytes ({size * 8 / pixels:.4f} bpp)")
        else:
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported in one line
        return int(e.code or 0)
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        print(f"error: --threads must be between 1 and {MAX_THREADS}", file=sys.stderr)
        return 2
    if args.threads is not None:
        import torch  # not at the top: commands that need no network skip its import

        torch.set_num_threads(args.threads)
    try:
        check_options(args)
        jobs = batch(args) if args.command in ("encode", "decode") else [args]
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    for job in jobs:  # a failed input is reported and the others go on
        code = _run(job, f"{job.input}: " if len(jobs) > 1 else "")
        if code in (SIGPIPE_STATUS, INTERRUPTED):
            return 2 if code == INTERRUPTED else code
        status = max(status, code)
    return status


INTERRUPTED = -1  # what _run returns when the user stopped the command


def _run(args: argparse.Namespace, prefix: str = "") -> int:
    """``args.func(args)``; its failures as one ``error:`` line (``prefix`` names the input
    of a batch) and status 2."""
    from bitstream import BitstreamError
    from codec import ImageError, WeightsError

    try:
        return args.func(args)
    except BrokenPipeError:  # the reader stopped early (``lcodec info x.lcf | head``)
        # Silence the interpreter's own flush of stdout at exit, which would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_STATUS
    except (CliError, BitstreamError, ImageError, WeightsError, ValueError, OSError) as e:
        print(f"error: {prefix}{e}", file=sys.stderr)
    except MemoryError:
        print(f"error: {prefix}out of memory", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 2


if __name__ == "__main__":
    sys.exit(main())
