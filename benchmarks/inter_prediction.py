"""How much a P-frame model gets out of its prediction: one frame pair per clip, per quality.

    python -m benchmarks.inter_prediction ../shared/data/video/train/yes.mkv \
        [--inter WEIGHTS] -o results/inter_prediction.json

For the first two frames of each clip (the reference uncoded, cropped to the model's
alignment) it prints, for each candidate prediction, its PSNR and what the residual coder
makes of it (the reconstruction's PSNR and the bpp, motion bits counted where the
prediction uses them): the reference itself (``static``), the reference warped by the coded
flow (``coded warp``), the model's prediction (``prediction``: coded flow plus motion
compensation) and that prediction made from a coded zero flow (``zero motion``).  The JSON
adds ``warp_psnr``, the reference warped by the uncoded flow, and, per clip,
``block_matching_psnr``, the reference warped by an exhaustive integer block search (8x8
blocks, +-16 pixels): what a classical motion search finds, the flow estimator's yardstick.
A model that uses its prediction well codes the ``prediction`` row in far fewer bits than
the ``static`` one; with conditional coding the prediction is a feature map for the coder,
so ``zero motion``, not ``static``, says what the motion is worth.
Use held-out or training clips, never ``video/test``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from codec.flow import warp
from codec.inter_model import FLOW_SCALE
from evaluation.report import environment


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(1 / (a.clamp(0, 1) - b).pow(2).mean())).item()


def block_matching(
    frame: torch.Tensor, reference: torch.Tensor, block: int = 8, radius: int = 16
) -> torch.Tensor:
    """The backward flow of an exhaustive integer search: per ``block`` x ``block`` block of
    ``frame``, the displacement within ``radius`` pixels of least mean absolute error."""
    h, w = frame.shape[2:]
    padded = F.pad(reference, [radius] * 4, mode="replicate")
    best = torch.full((1, 1, h // block, w // block), float("inf"))
    flow = torch.zeros(1, 2, h // block, w // block)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            moved = padded[:, :, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            error = F.avg_pool2d((frame - moved).abs().mean(1, keepdim=True), block)
            better = error < best
            best = torch.where(better, error, best)
            flow = torch.where(
                better, torch.tensor([dx, dy], dtype=flow.dtype).view(1, 2, 1, 1), flow
            )
    return F.interpolate(flow, scale_factor=block, mode="nearest")


@torch.no_grad()
def measure(net, reference: torch.Tensor, frame: torch.Tensor, quality: int) -> dict:
    """The table's numbers for one frame pair at ``quality`` (1-based)."""
    q = torch.tensor([quality - 1])
    pixels = frame.shape[2] * frame.shape[3]
    analysed = net.motion_input(frame, reference)
    flow = analysed[:, :2] / FLOW_SCALE  # the estimator's flow (FLOW_SCALE is a power of 2)
    flow_hat, motion_bits = net.motion(analysed, q, "hard")
    flow_hat = flow_hat / FLOW_SCALE
    zero_hat, zero_bits = net.motion(torch.zeros_like(analysed), q, "hard")
    predictions = {
        "static": (reference, 0.0),
        "coded warp": (warp(reference, flow_hat), motion_bits.item()),
        "prediction": (net.predict(reference, flow_hat), motion_bits.item()),
        "zero motion": (net.predict(reference, zero_hat / FLOW_SCALE), zero_bits.item()),
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
    report = {"inter": str(args.inter), "clips": {}, "block_matching_psnr": {}}
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
        matched = warp(reference, block_matching(frame, reference))
        report["block_matching_psnr"][path.name] = psnr(matched, frame)
        for row in rows:
            for name in ("static", "coded warp", "prediction", "zero motion"):
                r = row[name]
                print(
                    f"{path.stem[:14]:14s} {row['quality']:2d} {name:>11s} "
                    f"{r['prediction_psnr']:9.2f} {r['psnr']:6.2f} {r['bpp']:6.3f}"
                )
        print(
            f"{path.stem[:14]:14s} warp PSNR: flow estimator {rows[0]['warp_psnr']:.2f}, "
            f"block matching {report['block_matching_psnr'][path.name]:.2f}, "
            f"static {rows[0]['static']['prediction_psnr']:.2f}"
        )
    report["environment"] = environment()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
