"""The video suite's command-line options, kept apart from :mod:`evaluation.video` so
that building the ``lcodec`` parser does not load the suite (SciPy, most of a second)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bitstream.video import DEFAULT_GOP


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The suite's options, shared by ``lcodec rd --video`` and ``python -m``."""
    p.add_argument("--frames", type=int, help="first N frames of each sequence (default: all)")
    p.add_argument(
        "--gop",
        type=int,
        default=DEFAULT_GOP,
        help="intra period of ours and the anchors, 0 = one I-frame (default: %(default)s)",
    )
    p.add_argument("--inter-model", type=Path, metavar="WEIGHTS", help="P-frame weights of 'ours'")
