"""Compare trained models (the ablation) by real files: bpp from bytes, PSNR on 8-bit RGB.

    python -m benchmarks.ablation --images DIR [--last N] \
        --model full=runs/abl-full/model.safetensors --model noise=... -o results/ablation.json

Every model codes every image at every quality; curves average bpp and PSNR over the
images; BD-rates are against the first model and against the published BPG 4:4:4 curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from codec import load_model
from evaluation.bd import bd_rate
from evaluation.curves import DEFAULT_REFERENCE, PUBLISHED_KODAK, load_curves
from evaluation.metrics import psnr
from evaluation.runner import find_images


def curve(weights: Path, images: list[Path]) -> dict[str, list[float]]:
    model = load_model(weights)
    bpp = np.zeros((model.qualities, len(images)))
    quality = np.zeros_like(bpp)
    for j, path in enumerate(tqdm(images, desc=weights.parent.name, leave=False)):
        img = Image.open(path).convert("RGB")
        for q in range(1, model.qualities + 1):
            data = model.encode(img, quality=q)
            bpp[q - 1, j] = len(data) * 8 / (img.width * img.height)
            quality[q - 1, j] = psnr(img, model.decode(data))
    return {"bpp": bpp.mean(1).tolist(), "psnr": quality.mean(1).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--last", type=int, help="only the last N images (sorted by name)")
    ap.add_argument("--model", action="append", required=True, help="NAME=WEIGHTS")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    images = find_images(args.images)[-args.last if args.last else 0 :]
    models = dict(m.split("=", 1) for m in args.model)
    curves = {name: curve(Path(w), images) for name, w in models.items()}
    bpg = load_curves(PUBLISHED_KODAK)[DEFAULT_REFERENCE]
    first = next(iter(curves.values()))
    print(f"{'model':12s} {'BD-rate vs ' + next(iter(curves)):>22s} {'BD-rate vs BPG':>15s}")
    table = {}
    for name, c in curves.items():
        vs_first = bd_rate(first["bpp"], first["psnr"], c["bpp"], c["psnr"])
        vs_bpg = bd_rate(bpg.bpp, bpg.psnr, c["bpp"], c["psnr"])
        table[name] = {"bd_rate_vs_first": vs_first, "bd_rate_vs_bpg444": vs_bpg}
        print(f"{name:12s} {_pct(vs_first):>22s} {_pct(vs_bpg):>15s}")
    report = {"images": [p.name for p in images], "models": models, "curves": curves, "bd": table}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


if __name__ == "__main__":
    main()
