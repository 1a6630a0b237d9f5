"""Train the post-filter on HEVC decodes (``--source hevc``, the default: HEIC pictures of the
training photos and, with ``--clips``, libx265 decodes of training video clips), or on our
own codec's decodes of the training photos (``--source lcodec``, told the quality level):

    python -m postfilter.train ../shared/data/train --clips ../shared/data/video/train \
        --out runs/pf2 --minutes 90 --init postfilter/weights/denoise-v1.safetensors \
        --export postfilter/weights/hevc-artifacts-v2.safetensors
    python -m postfilter.train ../shared/data/train --clips ../shared/data/video/train \
        --out runs/pf4 --minutes 75 --blocks 16 --blind-share 0 \
        --grow-from postfilter/weights/hevc-artifacts-v2.safetensors \
        --export runs/pf4/hevc-artifacts-v4.safetensors   # then postfilter.train_estimator
    python -m postfilter.train ../shared/data/train --source lcodec --cache runs/lcodec-pf-data \
        --out runs/lcodec-pf --minutes 55 --init postfilter/weights/denoise-v1.safetensors \
        --export runs/lcodec-pf/lcodec-artifacts-v1.safetensors   # then lcodec-artifacts-v2

Codes (once) and caches the training pairs (see :mod:`postfilter.data`), then trains the
filter (relative MSE; told the QP with a little jitter, or the exact quality level, or blind
for ``--blind-share`` of the patches) with Adam, bfloat16 autocast and a cosine learning
rate over the time or step budget.  ``--init`` starts the trunk from a half-resolution
restoration network (the denoiser) instead of from scratch; ``--grow-from`` starts a wider or
deeper filter as a trained one (:func:`grow_from`).  With ``--blind-share 0`` the whole network
learns the told mode, and blind mode comes from :mod:`postfilter.train_estimator`.
``<out>/ckpt.pt`` is written every ``--ckpt-every`` steps and a rerun resumes from it;
``<out>/log.csv`` logs training and validation (held-out photos: PSNR gain told the QP or
quality and blind, worst pair; told at QP 37 and 22 for HEVC, at every quality level for
ours).  ``--export`` writes the weights and copies the log beside them, with residual scales
(safety) calibrated on the held-out photos per told value and for blind mode.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from codec.video_io import YCBCR
from evaluation.metrics import plane_psnr, psnr

from . import data
from .api import filter_dtype
from .model import CONDITIONS, ArtifactNet, FilterConfig, qp_conditions
from .weights import export_weights, load_restorer, load_weights

MIN_MSE = (2 / 255) ** 2  # floor of a patch's decode MSE in the relative loss
#: ``--loss relative-yuv``: the error's BT.601 Y, Cb and Cr, weighted 6:1:1 (the combined
#: YUV PSNR of video coding), for filters of video decodes, which are judged on Y-PSNR.
YUV_ROWS = torch.tensor(YCBCR, dtype=torch.float32)
YUV_WEIGHTS = torch.tensor([6.0, 1.0, 1.0]) / 8
LUMA = YCBCR[0]
BASE_LOG_FIELDS = [
    "step",
    "elapsed_s",
    "lr",
    "loss",
    "train_gain_db",
    "val_gain_db",
    "val_blind_gain_db",
    "val_worst_gain_db",
]
LOG_FIELDS = BASE_LOG_FIELDS + ["val_gain_qp37_db", "val_blind_gain_qp37_db", "val_gain_qp22_db"]
QUALITIES = range(int(CONDITIONS["quality"].low), int(CONDITIONS["quality"].high) + 1)
LCODEC_LOG_FIELDS = BASE_LOG_FIELDS + [f"val_gain_q{q}_db" for q in QUALITIES]


@dataclass(frozen=True)
class Source:
    """What a ``--source`` trains on: the condition kind and the defaults that go with it."""

    condition: str
    model_id: str
    cache: Path
    jitter: float  # std of the noise on the told value
    log_fields: list[str]


SOURCES = {
    "hevc": Source("qp", "hevc-artifacts-v4", Path("runs/postfilter-data"), 1.0, LOG_FIELDS),
    # the quality level is read from the file exactly: no jitter
    "lcodec": Source(
        "quality", "lcodec-artifacts-v1", Path("runs/lcodec-pf-data"), 0.0, LCODEC_LOG_FIELDS
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m postfilter.train", description=__doc__)
    p.add_argument("photos", type=Path, help="folder of training photos")
    p.add_argument(
        "--source",
        choices=sorted(SOURCES),
        default="hevc",
        help="decodes to learn: HEVC/HEIC (told the QP) or our codec's (told the quality level)",
    )
    p.add_argument("--clips", type=Path, help="hevc: folder of training video clips (libx265)")
    p.add_argument(
        "--codec-weights", type=Path, help="lcodec: the codec's weights (default: the shipped)"
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log)")
    p.add_argument(
        "--cache",
        type=Path,
        help="pair cache (default: runs/postfilter-data for hevc, runs/lcodec-pf-data for lcodec)",
    )
    p.add_argument("--crops-per-image", type=int, default=16)
    p.add_argument("--crops-per-clip", type=int, default=24)
    p.add_argument("--crop", type=int, default=256, help="side of the coded crops")
    p.add_argument("--holdout-every", type=int, default=10, help="every n-th photo validates")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--init", type=Path, help="start from this restoration network (denoise)")
    p.add_argument(
        "--grow-from",
        type=Path,
        help="start from this artefact filter (at most --channels channels and --blocks blocks; "
        "what it lacks is added so that the grown filter starts computing what it does)",
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128, help="training patch side (multiple of 4)")
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="validate, keep and export an exponential moving average of the weights with "
        "this decay per step (e.g. 0.999; 0: the weights themselves)",
    )
    add_bf16_argument(p)
    p.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    p.add_argument("--steps", type=int, help="step budget (whichever budget ends first)")
    p.add_argument(
        "--loss",
        choices=["relative", "relative-yuv", "mse"],
        default="relative",
        help="relative: each patch's MSE divided by its decode's (every QP counts alike); "
        "relative-yuv: the same on Y, Cb, Cr weighted 6:1:1, validated on Y-PSNR (video)",
    )
    p.add_argument(
        "--share-420", type=float, default=0.2, help="hevc: share of HEIC pairs coded 4:2:0"
    )
    p.add_argument(
        "--grain-share",
        type=float,
        default=0.0,
        help="hevc: share of photo crops given film grain before coding (postfilter.data)",
    )
    p.add_argument(
        "--clip-holdout", type=int, default=0, help="hevc: every n-th clip validates (0: none)"
    )
    p.add_argument(
        "--qp-jitter",
        type=float,
        help="std of the noise on the told QP or quality (default: 1 for hevc, 0 for lcodec)",
    )
    p.add_argument("--blind-share", type=float, default=0.3, help="share of patches told no QP")
    add_run_arguments(p)
    p.add_argument(
        "--model-id", help="default: hevc-artifacts-v4 or lcodec-artifacts-v1, by source"
    )
    p.add_argument(
        "--max-loss-db",
        type=float,
        default=0.03,
        help="residual-scale safety: largest PSNR loss allowed on a validation crop",
    )
    args = p.parse_args(argv)
    source = SOURCES[args.source]
    if args.init is not None and args.grow_from is not None:
        p.error("--init and --grow-from are exclusive")
    if args.source == "lcodec" and args.clips is not None:
        p.error("--clips is for --source hevc")
    if args.source == "hevc" and args.codec_weights is not None:
        p.error("--codec-weights is for --source lcodec")
    args.cache = source.cache if args.cache is None else args.cache
    args.qp_jitter = source.jitter if args.qp_jitter is None else args.qp_jitter
    args.model_id = source.model_id if args.model_id is None else args.model_id
    return args


def add_bf16_argument(p: argparse.ArgumentParser) -> None:
    """``--bf16/--no-bf16``, by default whether the CPU runs bfloat16 natively
    (:func:`native_bf16`)."""
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=native_bf16(),
        help="bfloat16 autocast (default: where the CPU runs it natively, AMX/AVX512-BF16, "
        "about 2.4x faster there; emulated elsewhere, it is about 10x slower)",
    )


def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (:func:`postfilter.api.filter_dtype`)."""
    return filter_dtype() == torch.bfloat16


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


def sample_batch(pairs: dict, batch: int, patch: int, rng: np.random.Generator, align: int = 2):
    """Random patches (offsets multiples of ``align``, random flips) of random pairs: dec,
    orig, QP (or quality level)."""
    n, side = pairs["orig"].shape[:2]
    idx = rng.integers(0, n, batch)
    ys, xs = align * rng.integers(0, (side - patch) // align + 1, (2, batch))
    pos = zip(idx, ys, xs, strict=True)
    crops = [(i, slice(y, y + patch), slice(x, x + patch)) for i, y, x in pos]
    dec, org = (np.stack([pairs[k][c] for c in crops]) for k in ("dec", "orig"))
    for axis in (1, 2):
        if rng.random() < 0.5:
            dec, org = np.flip(dec, axis), np.flip(org, axis)
    return to_tensor(dec), to_tensor(org), torch.from_numpy(pairs["qp"][idx])


def init_from_restorer(net: ArtifactNet, path: Path) -> None:
    """Copy a half-resolution restoration network's features (head and residual blocks) into
    ``net``.  The QP planes' weights and the output layer start at zero, so ``net`` starts
    as the identity (the restorer's own conditioning and output are dropped)."""
    src, _ = load_restorer(path)
    own = net.state_dict()
    state = {k.removeprefix("net."): v for k, v in src.state_dict().items()}
    if (
        state.keys() != own.keys()
        or state["body.0.conv1.weight"].shape != own["body.0.conv1.weight"].shape
    ):
        raise SystemExit(f"error: {path} does not match --channels/--blocks")
    head = torch.zeros_like(own["head.weight"])
    head[:, :12] = state["head.weight"][:, :12]
    tail = {k: torch.zeros_like(own[k]) for k in ("tail.weight", "tail.bias")}
    net.load_state_dict(state | {"head.weight": head} | tail)


def grow_from(net: ArtifactNet, path: Path) -> None:
    """Start ``net`` as the artefact filter ``path`` (same condition, no fewer channels, no
    fewer blocks), computing exactly what it computes: its weights fill the first channels
    of every layer, the added channels never feed the old ones (those weights start at zero,
    the rest as initialised, so training grows them into use), and each residual block it
    lacks is appended with a zero second convolution, an identity.  A wider or deeper network
    so starts where a trained one stands instead of from scratch.  The strength estimator is
    not copied: it is trained for the grown filter afterwards."""
    src, _ = load_weights(path)
    have, want = src.config, net.config
    fits = have.channels <= want.channels and have.blocks <= want.blocks
    if have.condition != want.condition or not fits:
        raise SystemExit(f"error: {path} ({have}) cannot grow into {want}")
    for block in net.body[have.blocks :]:
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
    state = net.state_dict()
    for name, value in src.state_dict().items():
        if name in state:  # not the estimator's
            grown = state[name]
            grown[: value.shape[0]] = 0  # the old outputs read the old inputs only
            grown[tuple(slice(n) for n in value.shape)] = value
    net.load_state_dict(state)


def patch_mse(diff: torch.Tensor, yuv: bool = False) -> torch.Tensor:
    """Each patch's mean squared ``diff`` (N x 3 x H x W RGB), or with ``yuv`` that of its
    Y, Cb, Cr weighted 6:1:1."""
    if not yuv:
        return (diff**2).mean(dim=(1, 2, 3))
    power = (torch.einsum("cd,ndhw->nchw", YUV_ROWS, diff) ** 2).mean(dim=(2, 3))
    return power @ YUV_WEIGHTS


def relative_mse(
    out: torch.Tensor,
    dec: torch.Tensor,
    org: torch.Tensor,
    yuv: bool = False,
    keep_scale: bool = False,
) -> torch.Tensor:
    """The relative loss: the mean over patches of each one's :func:`patch_mse` of ``out``
    divided by its decode's (floored at ``MIN_MSE``), so that every QP counts alike; with
    ``keep_scale`` times the decodes' mean, which keeps an MSE's scale, for Adam's sake."""
    per_in = patch_mse(dec - org, yuv).clamp_min(MIN_MSE)
    if keep_scale:
        return (patch_mse(out - org, yuv) * (per_in.mean() / per_in)).mean()
    return (patch_mse(out - org, yuv) / per_in).mean()


def validation_metric(loss: str):
    """How validation scores a filter trained with ``loss``: PSNR of the luma for the YUV
    loss (video), of RGB otherwise."""
    return luma_psnr if loss == "relative-yuv" else psnr


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of the BT.601 luma of two HxWx3 uint8 pictures (peak 255, full range)."""
    return plane_psnr(a.astype(np.float64) @ LUMA, b.astype(np.float64) @ LUMA)


@torch.no_grad()
def filter_residuals(net: ArtifactNet, val: dict, blind: bool) -> list[torch.Tensor]:
    """The predicted corrections of the validation pairs, told the QP (or quality) or blind,
    in chunks (blind: told what the strength estimator reads, if the network has one)."""
    out = []
    for i in range(0, len(val["qp"]), 16):
        dec = to_tensor(val["dec"][i : i + 16])
        qp = torch.from_numpy(val["qp"][i : i + 16])
        cond = net.blind_conditions(dec) if blind else qp_conditions(qp, kind=net.config.condition)
        out.append(net.residual(dec, cond))
    return out


def pair_gains(
    val: dict, residuals: list[torch.Tensor], scale: float | np.ndarray = 1.0, metric=psnr
) -> np.ndarray:
    """``metric`` (a PSNR) change of every validation pair when ``scale`` times its residual
    is added."""
    scale = np.broadcast_to(np.asarray(scale, np.float32), val["qp"].shape)
    gains = []
    for k, res in enumerate(residuals):
        i = 16 * k
        s = torch.from_numpy(np.ascontiguousarray(scale[i : i + 16])).view(-1, 1, 1, 1)
        out = to_uint8(to_tensor(val["dec"][i : i + 16]) + s * res)
        for o, d, ref in zip(out, val["dec"][i : i + 16], val["orig"][i : i + 16], strict=True):
            gains.append(metric(ref, o) - metric(ref, d))
    return np.array(gains)


@torch.no_grad()
def validate(net: ArtifactNet, val: dict, metric=psnr) -> dict[str, float]:
    """Mean and worst PSNR gain on the validation pairs, told the QP (or quality) and blind;
    told at QP 37 and 22 (and blind at 37) for HEVC, told at each quality level for ours."""
    told = pair_gains(val, filter_residuals(net, val, blind=False), metric=metric)
    blind = pair_gains(val, filter_residuals(net, val, blind=True), metric=metric)
    values = np.round(val["qp"])
    out = {
        "val_gain_db": float(told.mean()),
        "val_blind_gain_db": float(blind.mean()),
        "val_worst_gain_db": float(min(told.min(), blind.min())),
    }
    if net.config.condition == "quality":
        at = {q: values == q for q in QUALITIES}
        return out | {f"val_gain_q{q}_db": float(told[s].mean()) for q, s in at.items() if s.any()}
    return out | {
        "val_gain_qp37_db": float(told[values == 37].mean()),
        "val_blind_gain_qp37_db": float(blind[values == 37].mean()),
        "val_gain_qp22_db": float(told[values == 22].mean()),
    }


SCALES = np.linspace(0.1, 1, 10)


@torch.no_grad()
def calibrate_scale(
    net: ArtifactNet, val: dict, max_loss_db: float, metric=psnr
) -> tuple[list[tuple[float, float]], float]:
    """Residual scales in 0..1 (step 0.1) with the best mean gain among those where no
    validation crop loses more than ``max_loss_db``: one per validation QP or quality level
    (told mode) and one for blind mode (all of them)."""
    res_told, res_blind = (filter_residuals(net, val, blind=b) for b in (False, True))
    told = {s: pair_gains(val, res_told, s, metric) for s in SCALES}
    blind = {s: pair_gains(val, res_blind, s, metric) for s in SCALES}

    def best(gains: dict[float, np.ndarray], sel: np.ndarray) -> float:
        ok = [(g[sel].mean(), s) for s, g in gains.items() if g[sel].min() >= -max_loss_db]
        return float(max(ok)[1]) if ok and max(ok)[0] > 0 else 0.0

    points = [(float(qp), best(told, val["qp"] == qp)) for qp in np.unique(val["qp"])]
    return points, best(blind, np.ones(len(val["qp"]), bool))


def train(args: argparse.Namespace) -> ArtifactNet:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    source = SOURCES[args.source]
    common = (args.photos, args.cache, args.crops_per_image, args.crop, args.holdout_every)
    if args.source == "lcodec":
        data.build_lcodec(*common, seed=args.seed, codec_weights=args.codec_weights)
    else:
        data.build(
            *common,
            share_420=args.share_420,
            seed=args.seed,
            clips=args.clips,
            crops_per_clip=args.crops_per_clip,
            clip_holdout=args.clip_holdout,
            grain_share=args.grain_share,
        )
    pairs, val = data.load(args.cache, "train"), data.load(args.cache, "val")
    metric = validation_metric(args.loss)
    config = FilterConfig(channels=args.channels, blocks=args.blocks, condition=source.condition)
    net = ArtifactNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = args.out / "ckpt.pt", args.out / "log.csv"
    best_path = args.out / "best.pt"
    step, elapsed = resume(ckpt_path, net, opt)
    if not step and args.init:
        init_from_restorer(net, args.init)
        print(f"initialised from {args.init}")
    if not step and args.grow_from:
        grow_from(net, args.grow_from)
        print(f"grown from {args.grow_from}")
    net = net.to(memory_format=torch.channels_last)  # about 1.6x faster steps on the CPU
    ema = moving_average(net, args.ema, ckpt_path)
    kept = net if ema is None else ema.module  # the network validated, kept and exported
    rng = np.random.default_rng(args.seed + step)
    new_log = not log_path.is_file()
    f, log = open_log(log_path, source.log_fields)
    with f:
        if new_log:
            first = validate(kept, val, metric)
            write_row(log, f, {k: f"{v:.4f}" for k, v in first.items()}, 0, 0, 0)
        start = time.monotonic() - elapsed
        sums = np.zeros(2)
        while (now := budget_step(args, opt, start, step)) is not None:
            elapsed, lr = now
            dec, org, qp = sample_batch(pairs, args.batch, args.patch, rng)
            dec = dec.contiguous(memory_format=torch.channels_last)
            cond = qp_conditions(qp + args.qp_jitter * torch.randn_like(qp), kind=config.condition)
            cond[torch.from_numpy(rng.random(len(qp)) < args.blind_share)] = 0
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = net(dec, cond)
            mse, mse_in = F.mse_loss(out.float(), org), F.mse_loss(dec, org)
            loss = mse
            if args.loss != "mse":
                yuv = args.loss == "relative-yuv"
                loss = relative_mse(out.float(), dec, org, yuv, keep_scale=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
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
                kept.eval()
                scores = validate(kept, val, metric)
                row |= {k: f"{v:.4f}" for k, v in scores.items()}
                keep_best(best_path, kept, step, scores, args.blind_share > 0)
                kept.train()
            write_row(log, f, row, step, elapsed, lr)
            if step % args.ckpt_every == 0:
                save_checkpoint(ckpt_path, net, opt, step, time.monotonic() - start, ema)
        elapsed = time.monotonic() - start
        kept.eval()
        scores = validate(kept, val, metric)
        final = {k: f"{v:.4f}" for k, v in scores.items()}
        log.writerow({"step": step, "elapsed_s": f"{elapsed:.1f}", "lr": "", **final})
        print("final", final, flush=True)
    save_checkpoint(ckpt_path, net, opt, step, elapsed, ema)
    if not keep_best(best_path, kept, step, scores, args.blind_share > 0):
        best = torch.load(best_path, weights_only=True)
        kept.load_state_dict(best["net"])
        print(f"best validation at step {best['step']}: exporting that network", flush=True)
    return kept


def moving_average(net: ArtifactNet, decay: float, ckpt_path: Path) -> AveragedModel | None:
    """An exponential moving average of ``net``'s weights (``decay`` per step), resumed from
    the checkpoint at ``ckpt_path`` when it holds one; None for ``decay`` 0.  The average
    of a noisy run's last few thousand steps validates better than its last step."""
    if not decay:
        return None
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True).get("ema")
        if state is not None:
            ema.load_state_dict(state)
    return ema


def keep_best(
    path: Path, net: ArtifactNet, step: int, scores: dict[str, float], blind: bool = True
) -> bool:
    """Save ``net`` to ``path`` when its validation score (mean gain told, plus blind where
    ``blind`` mode is trained) beats the one saved there; whether it did.  Training can
    overshoot (a bad step, a noisy batch): the network exported is the best validated one."""
    score = scores["val_gain_db"] + (scores["val_blind_gain_db"] if blind else 0.0)
    if path.is_file() and torch.load(path, weights_only=True)["score"] >= score:
        return False
    torch.save({"net": net.state_dict(), "step": step, "score": score}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return True


def resume(path: Path, net, opt) -> tuple[int, float]:
    """Load the checkpoint at ``path`` into ``net`` and ``opt``, if there is one, and return
    its (step, elapsed seconds); (0, 0.0) for a fresh run.  A checkpoint of another
    architecture than ``net.config`` stops the run."""
    if not path.is_file():
        return 0, 0.0
    ckpt = torch.load(path, weights_only=True)
    if type(net.config).from_dict(ckpt["config"]) != net.config:
        raise SystemExit(f"error: {path} was trained with {ckpt['config']}")
    net.load_state_dict(ckpt["net"])
    opt.load_state_dict(ckpt["opt"])
    print(f"resumed from {path} at step {ckpt['step']}")
    return int(ckpt["step"]), float(ckpt["elapsed"])


def save_checkpoint(
    path: Path, net, opt, step: int, elapsed: float, ema: AveragedModel | None = None
) -> None:
    """Write the network, optimiser, progress and moving average (if any) to ``path``,
    atomically."""
    state = {
        "net": net.state_dict(),
        "opt": opt.state_dict(),
        "step": step,
        "elapsed": elapsed,
        "config": net.config.to_dict(),
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
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


def open_log(path: Path, fields: list[str]) -> tuple[TextIO, csv.DictWriter]:
    """The CSV log at ``path``, open for appending.  A new log gets ``fields`` as its header;
    an existing one (a resumed run) keeps its own header, which must hold every field, so
    that appended rows stay in their columns."""
    if not path.is_file():
        f = open(path, "w", newline="")  # noqa: SIM115 (the caller closes it)
        log = csv.DictWriter(f, fields)
        log.writeheader()
        return f, log
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    missing = [k for k in fields if k not in header]
    if missing:
        raise SystemExit(f"error: {path} has no column {missing[0]!r}; log to a new --out")
    f = open(path, "a", newline="")  # noqa: SIM115
    return f, csv.DictWriter(f, header)


def write_row(log: csv.DictWriter, f, row: dict, step: int, elapsed: float, lr: float) -> None:
    """Log ``row`` (when not empty) with the step, time and rate, to the CSV and stdout."""
    if not row:
        return
    row |= {"step": step, "elapsed_s": f"{elapsed:.1f}", "lr": f"{lr:.3g}"}
    log.writerow(row)
    f.flush()
    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def log_beside(run: Path, export: Path, kind: str = "train") -> None:
    """Copy the run's ``log.csv`` beside the exported weights ``export``, as
    ``<stem>.<kind>_log.csv``, and say the export is done."""
    shutil.copyfile(run / "log.csv", export.with_name(f"{export.stem}.{kind}_log.csv"))
    print(f"exported {export}")


def cosine_lr(base: float, progress: float) -> float:
    """Cosine decay from ``base`` at progress 0 to 2% of it at progress 1."""
    return base * max(0.02, 0.5 * (1 + math.cos(math.pi * progress)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    net = train(args)
    if args.export:
        val = data.load(args.cache, "val")
        scale, blind = calibrate_scale(net, val, args.max_loss_db, validation_metric(args.loss))
        told = {"qp": "QP", "quality": "quality level"}[net.config.condition]
        print(f"residual scale per {told}:", ", ".join(f"{q:.1f}: {v:.1f}" for q, v in scale))
        print(f"blind residual scale: {blind:.1f}")
        export_weights(net, args.export, args.model_id, scale, blind)
        log_beside(args.out, args.export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
