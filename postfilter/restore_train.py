"""Train a restoration network (:mod:`postfilter.restore`) on synthetic degradations.

    python -m postfilter.restore_train ../shared/data/train --task denoise --out runs/denoise \
        --minutes 35 --export postfilter/weights/denoise-v1.safetensors

Random patches (8 flips/rotations) of the photos at scales 1, 0.75 and 0.5, degraded on the
fly: denoising with sigma uniform in 0..55 (half of the inputs rounded to 8 bits, as saved
pictures are), deblurring with a Gaussian blur sigma uniform in 0.5..3 plus noise sigma in
0..25, super-resolution with Pillow's bicubic downscale.  MSE loss (L1 for
super-resolution, as EDSR), Adam, bfloat16 autocast, cosine learning rate over the time or
step budget.  Every 10th photo is held out; validation degrades its centre crop
with a fixed seed.  ``<out>/ckpt.pt`` is written every ``--ckpt-every`` steps and a rerun
resumes from it; ``<out>/log.csv`` logs training and validation PSNR.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation.metrics import psnr

from . import restore
from .data import photo_paths
from .restore import RestoreConfig, Restorer
from .train import (
    add_bf16_argument,
    add_run_arguments,
    budget_step,
    log_beside,
    open_log,
    resume,
    save_checkpoint,
    to_tensor,
    to_uint8,
    write_row,
)
from .weights import export_restorer

SCALES = (1.0, 0.75, 0.5)
TRAIN_NOISE_MAX = 55.0  # a little beyond the 0..50 range so its end is well learnt
VAL_SIDE = 192
VAL_SETTINGS = {  # (sigma, blur) of the validation degradations
    "denoise": [(15.0, None), (25.0, None), (50.0, None)],
    "deblur": [(0.0, 1.0), (2.55, 1.6), (7.65, 2.5)],
    "sr2": [(None, None)],
    "sr4": [(None, None)],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m postfilter.restore_train", description=__doc__)
    p.add_argument("photos", type=Path, help="folder of training photos")
    p.add_argument("--task", choices=restore.TASKS, required=True)
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log)")
    p.add_argument("--holdout-every", type=int, default=10, help="every n-th photo validates")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128, help="target patch side (high resolution)")
    p.add_argument("--lr", type=float, default=1e-3)
    add_bf16_argument(p)
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    p.add_argument("--steps", type=int, help="step budget (whichever budget ends first)")
    add_run_arguments(p)
    p.add_argument("--model-id", help="default: the export file's stem")
    return p.parse_args(argv)


def load_photos(paths: list[Path]) -> list[np.ndarray]:
    """Every photo at every scale of :data:`SCALES`, as HxWx3 uint8."""
    out = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        for s in SCALES:
            im = img if s == 1 else img.resize((round(img.width * s), round(img.height * s)))
            out.append(np.asarray(im))
    return out


def random_patches(photos: list[np.ndarray], n: int, side: int, rng: np.random.Generator):
    """``n`` random ``side`` x ``side`` patches, each flipped/rotated at random (uint8)."""
    out = []
    for i in rng.integers(0, len(photos), n):
        img = photos[i]
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        p = img[y : y + side, x : x + side]
        p = np.rot90(p, rng.integers(4)) if rng.random() < 0.5 else p
        out.append(p[:, ::-1] if rng.random() < 0.5 else p)
    return np.stack(out)


def degrade(
    task: str,
    clean: np.ndarray,
    gen: torch.Generator,
    sigma: torch.Tensor | None = None,
    blur: torch.Tensor | None = None,
):
    """(input, target, sigma, blur) for a batch of clean uint8 patches.

    ``sigma``/``blur`` (N,) fix the degradation (validation); drawn at random when None.
    """
    n = len(clean)
    target = to_tensor(clean)
    if task in ("sr2", "sr4"):
        low = np.stack([restore.bicubic_downscale(c, int(task[2:])) for c in clean])
        return to_tensor(low), target, None, None

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    if task == "deblur":
        blur = uniform(restore.BLUR_MIN, restore.BLUR_MAX) if blur is None else blur
        if sigma is None:
            sigma = uniform(0, restore.DEBLUR_NOISE_MAX)
        x = torch.cat([restore.gaussian_blur(target[i : i + 1], float(blur[i])) for i in range(n)])
        return restore.add_noise(x, sigma, gen), target, sigma, blur
    if sigma is not None:  # validation: the literature's unclipped float noise
        return restore.add_noise(target, sigma, gen), target, sigma, None
    sigma = uniform(0, TRAIN_NOISE_MAX)
    x = restore.add_noise(target, sigma, gen)
    rounded = torch.rand(n, generator=gen) < 0.5  # saved pictures: 8 bits, clipped
    x = torch.where(rounded.view(-1, 1, 1, 1), (x.clamp(0, 1) * 255).round() / 255, x)
    return x, target, sigma, None


class Validation:
    """Centre crops of the held-out photos, degraded once with a fixed seed."""

    def __init__(self, task: str, paths: list[Path]) -> None:
        crops = []
        for path in paths:
            img = np.asarray(Image.open(path).convert("RGB"))
            y, x = (img.shape[0] - VAL_SIDE) // 2, (img.shape[1] - VAL_SIDE) // 2
            crops.append(img[y : y + VAL_SIDE, x : x + VAL_SIDE])
        clean = np.stack(crops)
        gen = torch.Generator().manual_seed(1234)
        self.sets = []
        for sigma, blur in VAL_SETTINGS[task]:
            s = None if sigma is None else torch.full((len(clean),), sigma)
            b = None if blur is None else torch.full((len(clean),), blur)
            x, _, s, b = degrade(task, clean, gen, s, b)
            name = f"x{task[2:]}" if sigma is None else f"s{sigma:g}"
            self.sets.append((name if blur is None else f"b{blur:g}_{name}", x, clean, s, b))

    @torch.no_grad()
    def run(self, net: Restorer) -> dict[str, float]:
        """Mean PSNR (RGB, dB) of the restored crops per setting, and of the inputs."""
        net.eval()
        row = {}
        for name, x, clean, s, b in self.sets:
            out = to_uint8(net(x, s, b))
            row[f"psnr_{name}"] = float(
                np.mean([psnr(c, o) for c, o in zip(clean, out, strict=True)])
            )
        net.train()
        return row


def train(args: argparse.Namespace) -> Restorer:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    paths = photo_paths(args.photos)
    val_paths = paths[:: args.holdout_every]
    train_paths = [p for p in paths if p not in val_paths]
    config = RestoreConfig(args.task, channels=args.channels, blocks=args.blocks)
    net = Restorer(config)
    scale = config.scale
    if args.patch % (2 * scale):
        raise SystemExit(f"error: --patch must be a multiple of {2 * scale}")
    photos = [p for p in load_photos(train_paths) if min(p.shape[:2]) >= args.patch]
    val = Validation(args.task, val_paths)
    params = net.net.parameters()
    opt = torch.optim.Adam(params, lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = args.out / "ckpt.pt", args.out / "log.csv"
    step, elapsed = resume(ckpt_path, net, opt)
    rng = np.random.default_rng(args.seed + step)
    gen = torch.Generator().manual_seed(args.seed + step)
    fields = ["step", "elapsed_s", "lr", "loss"] + list(val.run(net))
    f, log = open_log(log_path, fields)
    with f:
        start = time.monotonic() - elapsed
        loss_sum = 0.0
        while (now := budget_step(args, opt, start, step)) is not None:
            elapsed, lr = now
            clean = random_patches(photos, args.batch, args.patch, rng)
            x, target, sigma, blur = degrade(args.task, clean, gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = net(x, sigma, blur).float()
            loss = F.l1_loss(out, target) if scale > 1 else F.mse_loss(out, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item()
            row = {}
            if step % args.log_every == 0:
                row["loss"] = f"{loss_sum / args.log_every:.6g}"
                loss_sum = 0.0
            if step % args.val_every == 0:
                row |= {k: f"{v:.3f}" for k, v in val.run(net).items()}
            write_row(log, f, row, step, elapsed, lr)
            if step % args.ckpt_every == 0:
                save_checkpoint(ckpt_path, net, opt, step, time.monotonic() - start)
        elapsed = time.monotonic() - start
        final = {k: f"{v:.3f}" for k, v in val.run(net).items()}
        log.writerow({"step": step, "elapsed_s": f"{elapsed:.1f}", **final})
        print("final", final, flush=True)
    save_checkpoint(ckpt_path, net, opt, step, elapsed)
    return net


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    net = train(args)
    if args.export:
        export_restorer(net, args.export, args.model_id or args.export.stem)
        log_beside(args.out, args.export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
