"""Benchmark the filter of our codec's decodes on Kodak: "ours + filter" against ours alone.

    python -m postfilter.benchmark_lcodec --kodak ../shared/data/kodak \
        -o results/postfilter_lcodec.json [--weights W] [--threads 2]

Every Kodak image is coded at every ``--qualities`` level with the shipped codec (bpp from the
file's bytes), decoded, and filtered as ``lcodec decode --enhance artifacts`` filters (native
convolutions), told the quality level and blind.  Per quality: mean bpp, PSNR-RGB before and
after, mean and worst per-image change; BD-rate and BD-PSNR of ours + filter against ours
alone; the filter's wall time per image on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from tqdm import tqdm

from evaluation.files import write_text_atomic
from evaluation.metrics import bpp

from .api import PostFilter, filter_for
from .benchmark import filter_bd, filter_times, kodak_paths, measure, per_quality, table_lines
from .weights import PostFilterError

if TYPE_CHECKING:
    from codec import Codec


def kodak_rows(pf: PostFilter, model: Codec, kodak: Path, qualities: list[int]) -> list[dict]:
    """One row per image and quality: bpp, PSNR before/after (told, blind), filter times."""
    from codec.determinism import one_thread

    rows = []
    for path in tqdm(kodak_paths(kodak), desc="kodak", unit="image"):
        ref = Image.open(path).convert("RGB")
        for q in qualities:
            data = model.encode(ref, quality=q)
            dec = model.decode_array(data)[1]
            row = {"image": path.name, "quality": q, "bpp": bpp(len(data), *ref.size)}
            with one_thread():  # the pixels lcodec decode --enhance writes
                rows.append(row | measure(pf, ref, dec, q, ensemble=1))  # as decode --enhance
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m postfilter.benchmark_lcodec", description=__doc__)
    p.add_argument("--kodak", type=Path, required=True, help="Kodak folder (24 PNG)")
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--weights", type=Path, help="filter weights (default: the shipped lcodec one)")
    p.add_argument("--codec-weights", type=Path, help="codec weights (default: the shipped)")
    p.add_argument("--qualities", default="1,2,3,4,5,6,7,8", help="quality levels")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.qualities.split(",")]
    if not args.kodak.is_dir():
        print(f"error: Kodak not found at {args.kodak}", file=sys.stderr)
        return 2
    try:
        pf = filter_for("quality", args.weights)
    except PostFilterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import codec

    model = codec.load_model(args.codec_weights)
    rows = kodak_rows(pf, model, args.kodak, qualities)
    per_q = per_quality(rows, qualities)
    result = {
        "model_id": pf.model_id,
        "codec": {"model_id": model.model_id, "digest": model.digest.hex()},
        "threads": args.threads,
        "convolutions": "native (as lcodec decode --enhance)",
        "per_quality": per_q,
        "bd_vs_lcodec": filter_bd(per_q),
        "time_per_image_s": filter_times(rows),
        "per_image": rows,
    }
    write_text_atomic(args.output, json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    return "\n".join(table_lines(result, result["bd_vs_lcodec"], with_qp=False))


if __name__ == "__main__":
    sys.exit(main())
