"""Calibrate a filter's residual scales anew on the held-out pairs of one or more caches:

    python -m postfilter.calibrate runs/pf6/hevc-artifacts-v6-est.safetensors \
        --cache runs/postfilter-data-v6 runs/postfilter-data-v5 runs/postfilter-data-v2 \
        -o postfilter/weights/hevc-artifacts-v6.safetensors

The trainers calibrate on their own cache's held-out crops only.  Caches built with other
seeds crop the same held-out photos elsewhere; pooling them gives the safety scales
(:func:`postfilter.train.calibrate_scale`: per told value, and blind) more pictures to
hold on, so a filter that loses on one unlucky set of crops is caught before it ships.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from . import data
from .train import calibrate_scale
from .weights import export_weights, load_weights


def pooled_val(caches: list[Path]) -> dict[str, np.ndarray]:
    """The held-out pairs of ``caches``, one set; the told values rounded to 0.1, which
    merges the same quality's QPs as different builds logged them."""
    vals = [data.load(c, "val") for c in caches]
    val = {k: np.concatenate([v[k] for v in vals]) for k in ("orig", "dec", "qp")}
    val["qp"] = np.round(val["qp"], 1).astype(np.float32)
    return val


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m postfilter.calibrate", description=__doc__)
    p.add_argument("weights", type=Path, help="the filter to calibrate")
    p.add_argument("--cache", type=Path, nargs="+", required=True, help="pair caches")
    p.add_argument("-o", "--output", type=Path, required=True, help="calibrated weights")
    p.add_argument("--max-loss-db", type=float, default=0.03, help="as postfilter.train's")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    net, meta = load_weights(args.weights)
    told, blind = calibrate_scale(net, pooled_val(args.cache), args.max_loss_db)
    print("residual scale per QP:", ", ".join(f"{q:.1f}: {v:.1f}" for q, v in told))
    print(f"blind residual scale: {blind:.1f}")
    export_weights(net, args.output, meta["model_id"], told, blind)
    print(f"exported {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
