"""How much a P-frame model gets out of its prediction: one frame pair per clip, per quality.

    python -m benchmarks.inter_prediction ../shared/data/video/train/yes.mkv \
        [--inter WEIGHTS] -o results/inter_prediction.json

For the first two frames of each clip (the reference uncoded, cropped to the model's
alignment) it prints, for each candidate prediction, its PSNR and what the residual coder
makes of it (the reconstruction's PSNR and the bpp, motion bits counted where the
prediction uses them): the reference itself (``static``), the reference warped by the coded
flow (``coded warp``) and the model's prediction (``prediction``: coded flow plus motion
compensation).  The JSON adds ``warp_psnr``, the reference warped by the uncoded flow.
A model that uses its prediction well codes the ``prediction`` row in far fewer bits than
the ``static`` one.
Use held-out or training clips, never ``video/test``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from evaluation.report import environment


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(1 / (a.clamp(0, 1) - b).pow(2).mean())).item()


@torch.no_grad()
def measure(net, reference: torch.Tensor, frame: torch.Tensor, quality: int) -> dict:
    """The table's numbers for one frame pair at ``quality`` (1-based)."""
    from codec.flow import warp
    from codec.inter_model import FLOW_SCALE

    q = torch.tensor([quality - 1])
    pixels = frame.shape[2] * frame.shape[3]
    flow = net.flow(frame, reference)
    flow_hat, motion_bits = net.motion(flow * FLOW_SCALE, q, "hard")
    flow_hat = flow_hat / FLOW_SCALE
    predictions = {
        "static": (reference, 0.0),
        "coded warp": (warp(reference, flow_hat), motion_bits.item()),
        "prediction": (net.predict(reference, flow_hat), motion_bits.item()),
    }
    row = {"quality": quality, "warp_psnr": psnr(warp(reference, flow), frame)}
    for name, (pred, bits) in predictions.items():
        decoded, residual_bits = net.residual(net.residual_input(frame, pred), q, "hard")
        row[name] = {
            "prediction_psnr": psnr(pred, frame),
            "psnr": psnr(net.reconstruct(pred, decoded), frame),
            "bpp": (bits + residual_bits.item()) / pixels,
        }
    return row


def main(argv: list[str] | None = None) -> None:
    from codec.inter_weights import DEFAULT_INTER_WEIGHTS, load_inter_model
    from codec.video_io import ClipReader

    p = argparse.ArgumentParser(prog="python -m benchmarks.inter_prediction", description=__doc__)
    p.add_argument("clips", type=Path, nargs="+")
    p.add_argument("--inter", type=Path, default=DEFAULT_INTER_WEIGHTS, help="P-frame model")
    p.add_argument("-q", "--qualities", default="1,5,8")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    net = load_inter_model(args.inter)
    qualities = [int(q) for q in args.qualities.split(",")]
    report = {"inter": str(args.inter), "clips": {}, "environment": environment()}
    print(f"{'clip':14s} {'q':>2s} {'prediction':>11s} {'pred PSNR':>9s} {'PSNR':>6s} {'bpp':>6s}")
    for path in args.clips:
        with ClipReader(path) as clip:
            pair = list(itertools.islice(iter(clip), 2))
        h, w = (s - s % net.ALIGN for s in pair[0].shape[:2])
        reference, frame = (
            torch.from_numpy(f[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255 for f in pair
        )
        rows = [measure(net, reference, frame, q) for q in qualities]
        report["clips"][path.name] = rows
        for row in rows:
            for name in ("static", "coded warp", "prediction"):
                r = row[name]
                print(
                    f"{path.stem[:14]:14s} {row['quality']:2d} {name:>11s} "
                    f"{r['prediction_psnr']:9.2f} {r['psnr']:6.2f} {r['bpp']:6.3f}"
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
