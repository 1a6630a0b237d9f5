"""``lcodec rd``: rate-distortion evaluation of codecs on a folder of images (or, with
``--video``, of ``.y4m`` sequences: :mod:`evaluation.video`).

Errors the user can fix print one ``error:`` line and return exit status 2.
"""

from __future__ import annotations

import argparse
import sys

CODEC_HELP = (
    "comma list of: ours, ours-refine, ours-down2, ours-down4, jpeg, jpeg444, webp, jpeg2000,"
    " heic (adds heic-payload), avif, jxl; 'anchors' = all but ours*, 'all' = everything"
    " (default: %(default)s)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``rd`` subcommand to ``subparsers``; it dispatches to :func:`run`."""
    p = subparsers.add_parser(
        "rd",
        help="rate-distortion evaluation against classic codecs and published curves",
        description="Code every image at every quality with each codec; report bpp, PSNR, "
        "MS-SSIM, timings, BD-rates and plots.",
    )
    p.add_argument(
        "image_dir", help="folder of images (PNG etc.), e.g. ../shared/data/kodak (or .y4m)"
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="video suite on the folder's .y4m files (codecs: ours, ours-intra, x265-medium,"
        " x265-veryslow, x264-medium, x264-veryslow; -o names the output folder)",
    )
    p.add_argument("--codecs", default="all", help=CODEC_HELP)
    p.add_argument(
        "-q",
        "--qualities",
        action="append",
        metavar="LIST",
        help="qualities for every codec ('5,20,50') or one codec ('jpeg=5,20,50'); repeatable"
        " (default: each codec's own list)",
    )
    p.add_argument("-o", "--output", required=True, help="results JSON")
    p.add_argument("--csv", help="also write per-codec, per-quality averages as CSV")
    p.add_argument("--plot", help="also write RD plots to this PNG (and an SVG beside it)")
    p.add_argument("--reference", help="CSV of reference curves (default: published Kodak results)")
    p.add_argument(
        "--ref-codec",
        help="reference curve for BD-rates (default: bpg444; x265-medium with --video)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="recompute everything (no <output>.cache.jsonl)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    from evaluation.video_options import add_arguments

    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by parsed ``args``; return the exit status."""
    from evaluation import EvaluationError

    try:
        (_run_video if args.video else _run_images)(args)
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (finished results are cached)", file=sys.stderr)
        return 130
    return 0


def _run_images(args: argparse.Namespace) -> None:
    """The image suite of :func:`evaluation.run_rd`."""
    from evaluation import run_rd
    from evaluation.curves import DEFAULT_REFERENCE
    from evaluation.report import format_bd_table
    from evaluation.runner import parse_qualities

    result = run_rd(
        args.image_dir,
        args.codecs,
        qualities=parse_qualities(args.qualities),
        out_json=args.output,
        csv=args.csv,
        plot=args.plot,
        reference_csv=args.reference,
        ref_codec=args.ref_codec or DEFAULT_REFERENCE,
        cache=not args.no_cache,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(format_bd_table(result["bd"]))
        print(
            f"{result['evaluated']} coded, {result['reused']} from cache,"
            f" {result['elapsed_s']:.0f} s; wrote {args.output}"
        )


def _run_video(args: argparse.Namespace) -> None:
    """``rd --video``: the video suite of :mod:`evaluation.video` into the ``-o`` folder."""
    from evaluation import EvaluationError
    from evaluation.video import run_args

    if args.csv or args.plot or args.reference:
        raise EvaluationError(
            "--csv, --plot and --reference are for images; --video"
            " writes rd.json, rd.csv and plots into the -o folder"
        )
    run_args(args, args.image_dir)
