"""P-frame encode/decode time at one frame size: the target is 2 frames/s each at 416x240
on 2 CPU cores.

    python -m benchmarks.inter_speed --weights RUN/model.safetensors --threads 2

Without ``--weights`` a random-init model of the default architecture is timed: the
transforms cost the same whatever the weights, and every latent symbol is entropy coded
(there is no mask), so only the range coder's share varies a little with trained weights.
Times are medians of ``--repeat`` runs after one warm-up; ``forward_s`` is the training
graph (:class:`codec.inter_model.InterCodec`) without gradients, for comparison.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from evaluation.report import write_report

from .speed import _time


def moving_frames(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(current, reference): a smooth textured picture moved by a few pixels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0 : width + 4] / max(height, width)
    base = np.stack([np.sin(9 * xx + c) + np.cos(7 * yy - c) for c in range(3)], axis=-1)
    img = (128 + 60 * base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[:, 3 : width + 3]), np.ascontiguousarray(img[:, :width])


def main(argv: list[str] | None = None) -> None:
    from codec.inter_coder import InterCoder
    from codec.inter_model import InterCodec
    from codec.inter_weights import export_inter_weights

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, help="P-frame weights (default: random init)")
    ap.add_argument("--size", default="416x240", help="WxH")
    ap.add_argument("--quality", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("-o", "--output", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = args.weights
        if path is None:
            torch.manual_seed(0)
            path = Path(tmp) / "random.safetensors"
            export_inter_weights(InterCodec(), path, model_id="random-init")
        coder = InterCoder(path)
    cur, ref = moving_frames(width, height)
    payload, _ = coder.encode(cur, ref, args.quality)
    align = coder.net.ALIGN
    padded = (1, 3, -(-height // align) * align, -(-width // align) * align)
    x, r, q = torch.rand(padded), torch.rand(padded), torch.tensor([args.quality - 1])
    with torch.no_grad():
        forward_s = _time(lambda: coder.net(x, r, q), args.repeat)
    result = {
        "size": f"{width}x{height}",
        "threads": args.threads,
        "weights": str(args.weights) if args.weights else "random init",
        "parameters": sum(p.numel() for p in coder.net.parameters()),
        "encode_s": _time(lambda: coder.encode(cur, ref, args.quality), args.repeat),
        "decode_s": _time(lambda: coder.decode(payload, ref), args.repeat),
        "forward_s": forward_s,
        "payload_bytes": len(payload),
    }
    print(json.dumps(result, indent=2))
    if args.output:
        write_report(args.output, result)


if __name__ == "__main__":
    main()
