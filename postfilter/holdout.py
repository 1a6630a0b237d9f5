"""Compare artefact filters as shipped on the held-out crops of pair caches:

    python -m postfilter.holdout --cache runs/postfilter-data-v7 runs/postfilter-calib-s8 \
        runs/postfilter-calib-s9 --weights postfilter/weights/hevc-artifacts-v6.safetensors \
        postfilter/weights/hevc-artifacts-v7.safetensors -o results/postfilter_holdout_v7.json

Each filter runs as :class:`~postfilter.api.PostFilter` does for ``lcodec enhance`` (its
residual scales, bfloat16 where fast, the default flip ensemble), told the QP and blind, on
every held-out pair of every cache (:mod:`postfilter.data`).  Per cache and filter: mean
PSNR-RGB gain told and blind, at QP 37, the worst pair, and the pairs losing more than
0.05 dB.  This is how a new filter is chosen before Kodak is run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from evaluation.files import write_text_atomic
from evaluation.metrics import psnr

from . import data
from .api import PostFilter
from .weights import PostFilterError

LOSS_DB = 0.05  # a pair "loses" below -LOSS_DB


def holdout_gains(pf: PostFilter, val: dict[str, np.ndarray]) -> dict[str, float]:
    """Summary of ``pf``'s PSNR gains on the held-out pairs ``val``, told and blind."""
    at37 = np.round(val["qp"]) == 37
    row: dict[str, float] = {}
    for mode in ("told", "blind"):
        gains = np.array(
            [
                psnr(o, pf(d, float(q) if mode == "told" else None)) - psnr(o, d)
                for o, d, q in zip(val["orig"], val["dec"], val["qp"], strict=True)
            ]
        )
        row |= {
            f"{mode}_mean": float(gains.mean()),
            f"{mode}_qp37": float(gains[at37].mean()) if at37.any() else float("nan"),
            f"{mode}_worst": float(gains.min()),
            f"{mode}_losing": int(np.sum(gains < -LOSS_DB)),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m postfilter.holdout", description=__doc__)
    p.add_argument("--cache", type=Path, nargs="+", required=True, help="pair caches")
    p.add_argument("--weights", type=Path, nargs="+", required=True, help="filters to compare")
    p.add_argument("-o", "--output", type=Path, help="write the rows here (JSON)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        filters = [PostFilter(w) for w in args.weights]
        vals = {c: data.load(c, "val") for c in args.cache}
    except (OSError, PostFilterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    print("cache                    filter                told  QP 37  blind  QP 37  losing")
    for cache, val in vals.items():
        for pf in filters:
            r = {"cache": str(cache), "model_id": pf.model_id, "pairs": len(val["qp"])}
            r |= holdout_gains(pf, val)
            rows.append(r)
            print(
                f"{cache.name:24s} {pf.model_id:20s} {r['told_mean']:+.3f} {r['told_qp37']:+.3f}"
                f" {r['blind_mean']:+.3f} {r['blind_qp37']:+.3f}"
                f"  {r['told_losing']}/{r['blind_losing']}",
                flush=True,
            )
    if args.output:
        write_text_atomic(args.output, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
