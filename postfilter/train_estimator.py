"""Train the blind strength estimator of an artefact filter and attach it to the filter:

    python -m postfilter.train_estimator runs/pf4/hevc-artifacts-v4.safetensors \
        --cache runs/postfilter-data-v2 --out runs/estimator --minutes 20 \
        --export postfilter/weights/hevc-artifacts-v4.safetensors

The estimator (:class:`postfilter.estimator.StrengthEstimator`) learns on the filter's own
training pairs (the cache :mod:`postfilter.train` built), with Adam and a cosine learning
rate, on patches whose corner lies on the 8-pixel transform grid, one of two objectives:

- ``--objective qp`` (first): read each decode's QP (or quality level, for a filter of our
  codec's decodes) off it; squared error on the normalised value.
- ``--objective filter`` (then, ``--init`` from the first run's checkpoint, or from the
  estimator of another filter's file): the filter's own loss (relative MSE, the filter
  frozen) when it is told the estimate.  Where the QP cannot be read off a patch (smooth
  content looks alike at QP 22 and 35), this teaches the estimator the value that is safe
  for the filter rather than a guess.

``<out>/ckpt.pt`` makes it resumable; ``<out>/log.csv`` logs the validation error in QP (or
quality) units on the held-out photos.  ``--export`` then writes the filter with the
estimator inside, its blind-mode residual scale calibrated anew on the held-out photos
(blind, the filter is told the estimate), and copies the log beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .api import fast_precision
from .estimator import StrengthEstimator
from .model import CONDITIONS, ArtifactNet
from .train import (
    add_run_arguments,
    budget_step,
    calibrate_scale,
    filter_residuals,
    log_beside,
    open_log,
    pair_gains,
    relative_mse,
    resume,
    sample_batch,
    save_checkpoint,
    to_tensor,
    validation_metric,
    write_row,
)
from .weights import export_weights, load_weights

LOG_FIELDS = [
    "step",
    "elapsed_s",
    "lr",
    "loss",
    "val_mae",
    "val_max_error",
    "val_blind_gain_db",
    "val_blind_worst_db",
]
ALIGN = 8  # patch corners on the transform grid


@dataclasses.dataclass
class EstimatorConfig:
    """The estimator's size and the condition kind it reads (the filter's)."""

    channels: int
    condition: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EstimatorConfig:
        return cls(int(d["channels"]), str(d["condition"]))


class Estimator(StrengthEstimator):
    """A :class:`StrengthEstimator` that carries its config, for the shared checkpointing."""

    def __init__(self, config: EstimatorConfig) -> None:
        super().__init__(config.channels)
        self.config = config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m postfilter.train_estimator", description=__doc__)
    p.add_argument("filter", type=Path, help="the artefact filter's weights (safetensors)")
    p.add_argument("--cache", type=Path, required=True, help="the filter's pair cache")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log)")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=128, help="training patch side (multiple of 8)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--objective",
        choices=["qp", "filter"],
        default="qp",
        help="learn the QP, or the filter's loss when told the estimate (default: %(default)s)",
    )
    p.add_argument(
        "--loss",
        choices=["relative", "relative-yuv"],
        default="relative",
        help="the filter objective's loss and the validation metric, as the filter was "
        "trained (relative-yuv: Y-PSNR, for video filters)",
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from this estimator checkpoint (ckpt.pt) or a filter file's estimator",
    )
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    p.add_argument("--steps", type=int, help="step budget (whichever budget ends first)")
    p.add_argument(
        "--max-loss-db",
        type=float,
        default=0.03,
        help="blind residual-scale safety: largest PSNR loss allowed on a validation crop",
    )
    add_run_arguments(p)
    return p.parse_args(argv)


@torch.no_grad()
def validation_errors(est: StrengthEstimator, val: dict, condition: str) -> np.ndarray:
    """Estimate minus truth, in QP (or quality) units, for every validation pair."""
    kind = CONDITIONS[condition]
    values = []
    for i in range(0, len(val["qp"]), 16):
        values.append(kind.denormalize(est(to_tensor(val["dec"][i : i + 16]))).numpy())
    return np.concatenate(values) - val["qp"]


def filter_loss(
    net: ArtifactNet,
    guess: torch.Tensor,
    dec: torch.Tensor,
    org: torch.Tensor,
    yuv: bool = False,
) -> torch.Tensor:
    """The filter's relative loss (:func:`postfilter.train.relative_mse`, on RGB or with
    ``yuv`` on weighted Y, Cb, Cr) when it is told the normalised estimates ``guess`` (N,),
    clamped as blind mode clamps them."""
    value = guess.clamp(-1, 1)
    with fast_precision():
        out = net(dec, torch.stack([value, torch.ones_like(value)], dim=1)).float()
    return relative_mse(out, dec, org, yuv)


def validation_row(
    est: Estimator, val: dict, filtered: ArtifactNet | None, metric
) -> dict[str, str]:
    """The log's validation columns: estimate errors, and for ``--objective filter`` (the
    ``filtered`` network, :func:`attach`) the blind filter's mean and worst ``metric`` change on
    the held-out pairs."""
    est.eval()
    errors = np.abs(validation_errors(est, val, est.config.condition))
    row = {"val_mae": f"{errors.mean():.3f}", "val_max_error": f"{errors.max():.3f}"}
    if filtered is not None:
        filtered.estimator.load_state_dict(est.state_dict())
        gains = pair_gains(val, filter_residuals(filtered, val, blind=True), metric=metric)
        row["val_blind_gain_db"] = f"{gains.mean():.4f}"
        row["val_blind_worst_db"] = f"{gains.min():.4f}"
    est.train()
    return row


def initial_estimator(path: Path) -> dict[str, torch.Tensor]:
    """The estimator weights to start from: an estimator run's checkpoint (``ckpt.pt``), or
    the estimator inside a filter's weights file (``.safetensors``)."""
    if path.suffix == ".safetensors":
        net, _ = load_weights(path)
        if net.estimator is None:
            raise SystemExit(f"error: {path} holds no strength estimator")
        return net.estimator.state_dict()
    return torch.load(path, weights_only=True)["net"]


def train(args: argparse.Namespace, net: ArtifactNet) -> Estimator:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    pairs, val = data.load(args.cache, "train"), data.load(args.cache, "val")
    condition = net.config.condition
    est = Estimator(EstimatorConfig(args.channels, condition))
    opt = torch.optim.Adam(est.parameters(), lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "ckpt.pt"
    step, elapsed = resume(ckpt_path, est, opt)
    if not step and args.init:
        est.load_state_dict(initial_estimator(args.init))
        print(f"initialised from {args.init}")
    filtered = None  # the filter told the estimate (the filter objective)
    if args.objective == "filter":
        filtered = attach(net, est).to(memory_format=torch.channels_last).requires_grad_(False)
    rng = np.random.default_rng(args.seed + step)
    kind = CONDITIONS[condition]
    f, log = open_log(args.out / "log.csv", LOG_FIELDS)
    with f:
        start, total = time.monotonic() - elapsed, 0.0
        while (now := budget_step(args, opt, start, step)) is not None:
            elapsed, lr = now
            dec, org, qp = sample_batch(pairs, args.batch, args.patch, rng, align=ALIGN)
            dec = dec.contiguous(memory_format=torch.channels_last)
            with fast_precision():
                guess = est(dec)
            if filtered is not None:
                loss = filter_loss(filtered, guess, dec, org, args.loss == "relative-yuv")
            else:
                loss = F.mse_loss(guess, kind.normalize(qp))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step, total = step + 1, total + loss.item()
            row = {}
            if step % args.log_every == 0:
                row["loss"], total = f"{total / args.log_every:.4f}", 0.0
            if step % args.val_every == 0:
                row |= validation_row(est, val, filtered, validation_metric(args.loss))
            write_row(log, f, row, step, elapsed, lr)
            if step % args.ckpt_every == 0:
                save_checkpoint(ckpt_path, est, opt, step, time.monotonic() - start)
        elapsed = time.monotonic() - start
    save_checkpoint(ckpt_path, est, opt, step, elapsed)
    errors = np.abs(validation_errors(est.eval(), val, condition))
    print(f"validation error: mean {errors.mean():.2f}, max {errors.max():.2f}", flush=True)
    return est


def attach(net: ArtifactNet, est: Estimator) -> ArtifactNet:
    """``net`` with ``est`` as its blind strength estimator, in place of any it had (a new
    network; weights copied)."""
    config = dataclasses.replace(net.config, estimator=est.config.channels)
    out = ArtifactNet(config)
    trunk = {k: v for k, v in net.state_dict().items() if not k.startswith("estimator.")}
    out.load_state_dict(trunk, strict=False)
    assert out.estimator is not None
    out.estimator.load_state_dict(est.state_dict())
    return out.eval()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    net, meta = load_weights(args.filter)
    est = train(args, net)
    if args.export:
        net = attach(net, est)
        val = data.load(args.cache, "val")
        scale, blind = calibrate_scale(net, val, args.max_loss_db, validation_metric(args.loss))
        print(f"blind residual scale (told the estimate): {blind:.1f}")
        export_weights(net, args.export, meta["model_id"], scale, blind)
        log_beside(args.out, args.export, "estimator")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
