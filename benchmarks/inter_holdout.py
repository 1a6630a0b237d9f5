"""P-frame models against all-intra on held-out training clips: what chooses a P-frame model.

    python -m benchmarks.inter_holdout ../shared/data/video/train/yes.mkv \
        --inter v1=OLD.safetensors --inter v2=NEW.safetensors -o results/inter_holdout.json

The clips are the ones ``codec.train_inter`` holds out (by default the last by name), read
as it reads them (downscaled by ``--scale``), at full frame size rather than in crops.  Each
is coded at every quality as one I-frame and forced P-frames (``--gop 0``, no I-frame
fallback), and all-intra by the same image model; the table gives bpp, RGB PSNR and the mean
P-frame bpp, and the BD-rate of each P-frame model against all-intra.  Never point it at
``video/test``: the test sequences are for the RD suite only.
"""

from __future__ import annotations

import argparse
import io
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from evaluation import metrics
from evaluation.bd import bd_rate
from evaluation.report import environment


def code(video, frames: list[np.ndarray], quality: int) -> dict[str, float]:
    """bpp (file bytes), RGB PSNR (the mean of the frames', as the RD suite's) and mean
    P-frame bpp of one coding."""
    from bitstream.video import read_frames, read_header

    buf = io.BytesIO()
    records = list(video.encode_frames(iter(frames), buf, Fraction(25), quality, gop=0))
    buf.seek(0)
    header = read_header(buf)
    decoded = list(video.decode_frames(header, read_frames(buf, header)))
    pixels = frames[0].shape[0] * frames[0].shape[1]
    frame_psnr = [metrics.psnr(f, d) for f, d in zip(frames, decoded, strict=True)]
    p_bits = [8 * r.bytes / pixels for r in records if r.type == "P"]
    return {
        "bpp": 8 * len(buf.getvalue()) / (pixels * len(frames)),
        "psnr": float(np.mean(frame_psnr)),
        "p_frame_bpp": float(np.mean(p_bits)) if p_bits else None,
    }


def main(argv: list[str] | None = None) -> None:
    import torch

    from codec.coder import Codec
    from codec.inter_coder import InterCoder
    from codec.inter_weights import DEFAULT_INTER_WEIGHTS
    from codec.video import VideoCodec
    from codec.video_data import decode_clip

    p = argparse.ArgumentParser(prog="python -m benchmarks.inter_holdout", description=__doc__)
    p.add_argument("clips", type=Path, nargs="+", help="held-out training clips")
    p.add_argument("--inter", action="append", metavar="NAME=WEIGHTS", help="P-frame model")
    p.add_argument("--image", type=Path, help="image model (default: the shipped one)")
    p.add_argument("--scale", type=float, default=0.5, help="downscale, as the trainer's")
    p.add_argument("--frames", type=int, default=6, help="first frames of each clip")
    p.add_argument("-q", "--qualities", default="1,3,5,7")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = dict(m.split("=", 1) for m in args.inter or [f"shipped={DEFAULT_INTER_WEIGHTS}"])
    qualities = [int(q) for q in args.qualities.split(",")]
    image = Codec(args.image)
    codings = {"all-intra": VideoCodec(image)}
    codings |= {n: VideoCodec(image, InterCoder(w), choose_intra=False) for n, w in models.items()}

    results = []
    for clip in args.clips:
        frames = list(decode_clip(clip, 0, args.scale, args.frames))
        curves = {name: [code(v, frames, q) for q in qualities] for name, v in codings.items()}
        intra = curves["all-intra"]
        for name, points in curves.items():
            bd = bd_rate(
                [c["bpp"] for c in intra],
                [c["psnr"] for c in intra],
                [c["bpp"] for c in points],
                [c["psnr"] for c in points],
            )
            results.append({"clip": clip.name, "coding": name, "points": points, "bd_vs_intra": bd})
            pts = "  ".join(f"{c['bpp']:.3f}/{c['psnr']:.2f}" for c in points)
            bd_text = "" if name == "all-intra" else f"  BD-rate vs all-intra {bd:+.1f}%"
            print(f"{clip.name:<12} {name:<10} {pts}{bd_text}")
    out = {
        "clips": [c.name for c in args.clips],
        "frames": args.frames,
        "scale": args.scale,
        "qualities": qualities,
        "image_model": image.model_id,
        "inter_models": {n: str(w) for n, w in models.items()},
        "results": results,
        "environment": environment(),
    }
    args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
