"""Train the post-filter on HEIC decodes of the training photos.

    python -m postfilter.train ../shared/data/train --out runs/pf --minutes 31 \
        --export postfilter/weights/hevc-artifacts-v1.safetensors

Codes (once) and caches the training pairs (see :mod:`postfilter.data`), then trains the
filter (relative MSE, told QP with a little jitter) with Adam, bfloat16 autocast and a
cosine learning rate over the time or step budget, then (``--estimator-steps``) the QP
estimator (L1) with the filter frozen.  ``<out>/ckpt.pt`` is
written every ``--ckpt-every`` steps and a rerun resumes from it (also to add estimator
steps); ``<out>/log.csv`` logs training and validation (held-out photos: PSNR gain with the
told QP and blind, worst pair, estimator error).  ``--export`` writes the weights and copies
the log beside them, with a per-QP residual scale (safety) calibrated on the held-out
photos.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.metrics import psnr

from . import data
from .model import (
    QP_SCALE,
    FilterConfig,
    PostFilterNet,
    QPEstimator,
    denormalize_qp,
    normalize_qp,
)
from .weights import export_weights

MIN_MSE = (2 / 255) ** 2  # floor of a patch's decode MSE in the relative loss
LOG_FIELDS = [
    "step",
    "elapsed_s",
    "lr",
    "loss",
    "train_gain_db",
    "est_mae_qp",
    "val_gain_db",
    "val_blind_gain_db",
    "val_worst_gain_db",
    "val_est_mae_qp",
    "val_gain_qp37_db",
    "val_gain_qp22_db",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m postfilter.train", description=__doc__)
    p.add_argument("photos", type=Path, help="folder of training photos")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log)")
    p.add_argument("--cache", type=Path, default=Path("runs/postfilter-data"), help="pair cache")
    p.add_argument("--crops-per-image", type=int, default=16)
    p.add_argument("--crop", type=int, default=256, help="side of the coded crops")
    p.add_argument("--holdout-every", type=int, default=10, help="every n-th photo validates")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128, help="training patch side (multiple of 4)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bfloat16 autocast (about 2.4x faster on CPUs with AMX/AVX512-BF16)",
    )
    p.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    p.add_argument("--steps", type=int, help="step budget (whichever budget ends first)")
    p.add_argument(
        "--estimator-steps", type=int, default=0, help="then train the QP estimator alone"
    )
    p.add_argument("--estimator-lr", type=float, default=2e-3)
    p.add_argument("--estimator-batch", type=int, default=32)
    p.add_argument(
        "--loss",
        choices=["relative", "mse"],
        default="relative",
        help="relative: each patch's MSE divided by its decode's (every QP counts alike)",
    )
    p.add_argument("--qp-jitter", type=float, default=1.0, help="std of QP noise on the input")
    add_run_arguments(p)
    p.add_argument("--model-id", default="hevc-artifacts-v1")
    p.add_argument(
        "--max-loss-db",
        type=float,
        default=0.03,
        help="residual-scale safety: largest PSNR loss allowed on a validation crop",
    )
    return p.parse_args(argv)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Logging, checkpoint, thread, seed and export options shared by the trainers."""
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", type=Path, help="write the trained weights here (safetensors)")


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def sample_batch(pairs: dict, batch: int, patch: int, rng: np.random.Generator):
    """Random patches (even offsets, random flips) of random pairs: dec, orig, QP."""
    n, side = pairs["orig"].shape[:2]
    idx = rng.integers(0, n, batch)
    ys, xs = 2 * rng.integers(0, (side - patch) // 2 + 1, (2, batch))
    pos = zip(idx, ys, xs, strict=True)
    crops = [(i, slice(y, y + patch), slice(x, x + patch)) for i, y, x in pos]
    dec, org = (np.stack([pairs[k][c] for c in crops]) for k in ("dec", "orig"))
    for axis in (1, 2):
        if rng.random() < 0.5:
            dec, org = np.flip(dec, axis), np.flip(org, axis)
    return to_tensor(dec), to_tensor(org), torch.from_numpy(pairs["qp"][idx])


@torch.no_grad()
def validate(net: PostFilterNet, val: dict) -> dict[str, float]:
    """Mean and worst PSNR gain (told QP, blind) and estimator error on the validation pairs."""
    told, blind, errors = [], [], []
    for i in range(0, len(val["qp"]), 16):
        dec = to_tensor(val["dec"][i : i + 16])
        qp = torch.from_numpy(val["qp"][i : i + 16])
        qn_est = net.estimator(dec)
        errors += (denormalize_qp(qn_est) - qp).abs().tolist()
        for gains, qn in ((told, normalize_qp(qp)), (blind, qn_est)):
            out = to_uint8(net.filter(dec, qn))
            refs, decs = val["orig"][i : i + 16], val["dec"][i : i + 16]
            for o, d, ref in zip(out, decs, refs, strict=True):
                gains.append(psnr(ref, o) - psnr(ref, d))
    qps = np.round(val["qp"])
    return {
        "val_gain_db": float(np.mean(told)),
        "val_blind_gain_db": float(np.mean(blind)),
        "val_worst_gain_db": float(min(told)),
        "val_est_mae_qp": float(np.mean(errors)),
        "val_gain_qp37_db": float(np.mean(np.array(told)[qps == 37])),
        "val_gain_qp22_db": float(np.mean(np.array(told)[qps == 22])),
    }


@torch.no_grad()
def calibrate_scale(net: PostFilterNet, val: dict, max_loss_db: float) -> list[tuple[float, float]]:
    """Per validation QP, the residual scale in 0..1 (step 0.1) with the best mean gain among
    those where no validation crop loses more than ``max_loss_db``."""
    points = []
    for qp in np.unique(val["qp"]):
        sel = val["qp"] == qp
        ref, dec = val["orig"][sel], to_tensor(val["dec"][sel])
        res = net.filter.residual(dec, normalize_qp(torch.from_numpy(val["qp"][sel])))
        base = [psnr(r, d) for r, d in zip(ref, val["dec"][sel], strict=True)]
        best = (0.0, 0.0)
        for scale in np.linspace(0.1, 1, 10):
            out = to_uint8(dec + scale * res)
            gains = [psnr(r, o) - b for r, o, b in zip(ref, out, base, strict=True)]
            if min(gains) >= -max_loss_db and np.mean(gains) > best[0]:
                best = (float(np.mean(gains)), float(scale))
        points.append((float(qp), best[1]))
    return points


def train(args: argparse.Namespace) -> PostFilterNet:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data.build(
        args.photos, args.cache, args.crops_per_image, args.crop, args.holdout_every, seed=args.seed
    )
    pairs, val = data.load(args.cache, "train"), data.load(args.cache, "val")
    config = FilterConfig(channels=args.channels, blocks=args.blocks)
    net = PostFilterNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = args.out / "ckpt.pt", args.out / "log.csv"
    step, elapsed, est_step = 0, 0.0, 0
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=True)
        if FilterConfig.from_dict(ckpt["config"]) != config:
            raise SystemExit(f"error: {ckpt_path} was trained with {ckpt['config']}")
        net.load_state_dict(ckpt["net"])
        if ckpt.get("loss", "mse") == args.loss:  # a new loss starts a fresh optimiser
            opt.load_state_dict(ckpt["opt"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        est_step = int(ckpt.get("est_step", 0))
        print(f"resumed from {ckpt_path} at step {step} (estimator step {est_step})")
    rng = np.random.default_rng(args.seed + step)
    new_log = not log_path.is_file()
    with open(log_path, "a", newline="") as f:
        log = csv.DictWriter(f, LOG_FIELDS)
        if new_log:
            log.writeheader()
        start = time.monotonic() - elapsed
        sums = np.zeros(2)
        while (now := budget_step(args, opt, start, step)) is not None:
            elapsed, lr = now
            dec, org, qp = sample_batch(pairs, args.batch, args.patch, rng)
            qn = normalize_qp(qp + args.qp_jitter * torch.randn_like(qp))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = net.filter(dec, qn)
            mse, mse_in = F.mse_loss(out.float(), org), F.mse_loss(dec, org)
            loss = mse
            if args.loss == "relative":  # weights keep the MSE's scale, for Adam's sake
                per_in = ((dec - org) ** 2).mean(dim=(1, 2, 3)).clamp_min(MIN_MSE)
                per_out = ((out.float() - org) ** 2).mean(dim=(1, 2, 3))
                loss = (per_out * (per_in.mean() / per_in)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            gain = 10 * math.log10(mse_in.item() / max(mse.item(), 1e-12))
            sums += (mse.item(), gain)
            row = {}
            if step % args.log_every == 0:
                n = args.log_every
                row = {
                    "loss": f"{sums[0] / n:.6g}",
                    "train_gain_db": f"{sums[1] / n:.4f}",
                }
                sums[:] = 0
            if step % args.val_every == 0:
                net.eval()
                row |= {k: f"{v:.4f}" for k, v in validate(net, val).items()}
                net.train()
            write_row(log, f, row, step, elapsed, lr)
            if step % args.ckpt_every == 0:
                save_checkpoint(ckpt_path, net, opt, step, time.monotonic() - start, loss=args.loss)
        elapsed = time.monotonic() - start
        est_step = train_estimator(net, pairs, args, rng, est_step, log, f)
        net.eval()
        final = {k: f"{v:.4f}" for k, v in validate(net, val).items()}
        log.writerow({"step": step, "elapsed_s": f"{elapsed:.1f}", "lr": "", **final})
        print("final", final, flush=True)
    save_checkpoint(ckpt_path, net, opt, step, elapsed, loss=args.loss, est_step=est_step)
    return net


def train_estimator(net: PostFilterNet, pairs: dict, args, rng, est_step: int, log, f) -> int:
    """Train the QP estimator alone (the filter frozen) up to ``args.estimator_steps``."""
    if est_step >= args.estimator_steps:
        return est_step
    if est_step == 0:  # fresh weights: an older checkpoint may hold a dead estimator
        net.estimator = QPEstimator(net.config)
    opt = torch.optim.Adam(net.estimator.parameters(), lr=args.estimator_lr)
    total, err_sum = args.estimator_steps, 0.0
    while est_step < total:
        lr = cosine_lr(args.estimator_lr, est_step / total)
        for g in opt.param_groups:
            g["lr"] = lr
        dec, _, qp = sample_batch(pairs, args.estimator_batch, args.patch, rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            qn_est = net.estimator(dec)
        err = (qn_est.float() - normalize_qp(qp)).abs().mean()
        opt.zero_grad()
        err.backward()
        opt.step()
        est_step += 1
        err_sum += err.item() * QP_SCALE
        if est_step % args.log_every == 0:
            mae = f"{err_sum / args.log_every:.3f}"
            log.writerow({"step": f"est{est_step}", "lr": f"{lr:.3g}", "est_mae_qp": mae})
            f.flush()
            print(f"estimator step {est_step} lr={lr:.3g} est_mae_qp={mae}", flush=True)
            err_sum = 0.0
    return est_step


def save_checkpoint(path: Path, net, opt, step: int, elapsed: float, **extra) -> None:
    """Write the network, optimiser, progress and ``extra`` entries to ``path``, atomically."""
    state = {
        "net": net.state_dict(),
        "opt": opt.state_dict(),
        "step": step,
        "elapsed": elapsed,
        "config": net.config.to_dict(),
        **extra,
    }
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def budget_step(
    args: argparse.Namespace, opt, start: float, step: int
) -> tuple[float, float] | None:
    """(elapsed seconds, learning rate) for ``step``, the cosine rate set on ``opt``; None once
    the time (``--minutes``) or step (``--steps``) budget is spent."""
    elapsed = time.monotonic() - start
    progress = max(elapsed / (60 * args.minutes), step / args.steps if args.steps else 0)
    if progress >= 1:
        return None
    lr = cosine_lr(args.lr, progress)
    for g in opt.param_groups:
        g["lr"] = lr
    return elapsed, lr


def write_row(log: csv.DictWriter, f, row: dict, step: int, elapsed: float, lr: float) -> None:
    """Log ``row`` (when not empty) with the step, time and rate, to the CSV and stdout."""
    if not row:
        return
    row |= {"step": step, "elapsed_s": f"{elapsed:.1f}", "lr": f"{lr:.3g}"}
    log.writerow(row)
    f.flush()
    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def cosine_lr(base: float, progress: float) -> float:
    """Cosine decay from ``base`` at progress 0 to 2% of it at progress 1."""
    return base * max(0.02, 0.5 * (1 + math.cos(math.pi * progress)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    net = train(args)
    if args.export:
        scale = calibrate_scale(net, data.load(args.cache, "val"), args.max_loss_db)
        print("residual scale per QP:", ", ".join(f"{q:.1f}: {v:.1f}" for q, v in scale))
        export_weights(net, args.export, args.model_id, scale)
        log_copy = args.export.with_name(args.export.stem + ".train_log.csv")
        shutil.copyfile(args.out / "log.csv", log_copy)
        print(f"exported {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
