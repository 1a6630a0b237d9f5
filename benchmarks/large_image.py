"""Encode and decode a large synthetic photo; report time and peak memory.

    python -m benchmarks.large_image --size 8000x6000 -o results/large_image.json

The picture is generated (smooth gradients, texture and noise), so the benchmark
needs no data.  Encode and decode run in separate child processes; peak RSS is
each child's own.  The target is 4 GB for an 8000x6000 picture.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluation.report import write_report

from .isolated import measure


def synthetic_photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    xx = np.linspace(0, 6, w, dtype=np.float32)
    for r0 in range(0, h, 500):  # row blocks keep generation memory small
        yy = np.linspace(r0 / h * 4, min(r0 + 500, h) / h * 4, min(500, h - r0), dtype=np.float32)
        for c in range(3):
            block = np.sin(xx[None] * (1 + c) + yy[:, None] * 2) * 60 + 128
            block += np.sin(xx[None] * 40 + yy[:, None] * 33) * 12
            block += rng.normal(0, 6, block.shape).astype(np.float32)
            img[r0 : r0 + 500, :, c] = block.clip(0, 255)
    return img


def _step(step: str, src: str, dst: str, quality: int) -> dict:
    import codec

    model = codec.load_model()
    t = time.perf_counter()
    if step == "encode":
        Path(dst).write_bytes(model.encode(src, quality=quality))
    else:
        model.decode(Path(src).read_bytes()).save(dst, compress_level=1)
    return {"seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="8000x6000")
    ap.add_argument("-q", "--quality", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=Path("results/large_image.json"))
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        src, lcf, out = Path(tmp) / "big.png", Path(tmp) / "big.lcf", Path(tmp) / "big_dec.png"
        Image.fromarray(synthetic_photo(w, h)).save(src, compress_level=1)
        enc = measure(_step, ("encode", str(src), str(lcf), args.quality), args.threads)
        dec = measure(_step, ("decode", str(lcf), str(out), args.quality), args.threads)
        size = lcf.stat().st_size
        a = np.asarray(Image.open(src), dtype=np.float32)
        b = np.asarray(Image.open(out), dtype=np.float32)
        psnr = float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))
    report = {
        "size": [w, h],
        "quality": args.quality,
        "threads": args.threads,
        "bytes": size,
        "bpp": size * 8 / (w * h),
        "psnr": psnr,
        "encode": enc,
        "decode": dec,
    }
    print(json.dumps(report, indent=2))
    write_report(args.output, report)


if __name__ == "__main__":
    main()
