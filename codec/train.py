"""Train the image codec from a folder of photos: ``python -m codec.train DATA --out RUN``.

Random crops, flips and rescales of the photos; one variable-rate model, each crop
drawn at a random quality level.  The quantizer anneals from soft-to-hard
(temperature ``--t-start`` to ``--t-end``) over the first ``--soft-until``
fraction of the steps, then trains on hard values with a straight-through
gradient.  ``--quant noise`` trains with additive noise instead (ablation).

Crops must be large (default 256x256, batch 2): the hyperprior has to learn what it
predicts inside a picture, away from the zero padding of its convolutions.  On 128x128
crops the hyper-latent is 2x2, every position a border one; models trained so (v1 to v3)
under-estimated the scale of interior symbols about 3x and spent up to 2.8x the bits
needed on full-size pictures.

Resumable: ``RUN/checkpoint.pt`` is written every ``--ckpt-every`` steps and picked
up on restart.  ``RUN/train_log.csv`` and ``RUN/val_log.csv`` log the run;
``RUN/model.safetensors`` is the exported, shippable model.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .layers import ResidualBlock
from .model import ImportanceCodec, ModelConfig
from .training import (
    TrainState,
    add_run_arguments,
    add_schedule_arguments,
    csv_log,
    read_checkpoint,
    schedule,
)
from .zoo import export_weights, load_model, load_weights

#: Side of the held-out photos' centre crops that validation codes.
VAL_CROP = 512

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_pyramid(paths: list[Path], scales: tuple[float, ...]) -> list[torch.Tensor]:
    """Every image at every scale, as uint8 tensors (3, H, W)."""
    out = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        for s in scales:
            size = (round(img.width * s), round(img.height * s))
            im = img if s == 1 else img.resize(size, Image.BICUBIC)
            out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return out


def random_batch(images: list[torch.Tensor], batch: int, crop: int, rng: random.Random):
    crops = []
    for _ in range(batch):
        img = images[rng.randrange(len(images))]
        _, h, w = img.shape
        top, left = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        c = img[:, top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            c = c.flip(2)
        crops.append(c)
    return torch.stack(crops).float().div_(255.0)


def center_crops(paths: list[Path], size: int) -> torch.Tensor:
    """Square centre crops of the photos, ``size`` or less: the smallest photo's shorter
    side, rounded down to the model's alignment."""
    photos = [Image.open(path).convert("RGB") for path in paths]
    size = min(size, *(min(img.size) for img in photos))
    size -= size % ImportanceCodec.ALIGN
    if size == 0:
        raise SystemExit(f"error: held-out photos under {ImportanceCodec.ALIGN} pixels a side")
    crops = []
    for img in photos:
        left, top = (img.width - size) // 2, (img.height - size) // 2
        img = img.crop((left, top, left + size, top + size))
        crops.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    return torch.stack(crops).float().div_(255.0)


def rd_loss(out: dict, x: torch.Tensor, lambdas: torch.Tensor, decoder_loss: str | None = None):
    """The loss, the bpp and the MSE of each crop.

    The loss is bpp + lambda * 255^2 * MSE, or for a decoder-only run (the rate fixed)
    ``decoder_loss``: ``"rate"``, lambda * 255^2 * MSE / bpp, the relative change of rate
    a change of the distortion is worth where the crop is coded (lambda is the slope of
    the rate-distortion curve there), which a BD-rate averages over the curve; or ``"psnr"``,
    minus the PSNR, which weighs a decibel alike at every quality (too little at the top,
    where the curve is flat and a decibel costs the most rate).
    """
    pixels = x.shape[2] * x.shape[3]
    bpp = (out["y_bits"] + out["z_bits"] + out["map_bits"]) / pixels
    mse = (out["x_hat"].clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    mse_train = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
    if decoder_loss == "psnr":
        return (10 * torch.log10(mse_train)).mean(), bpp, mse
    distortion = lambdas * 255.0**2 * mse_train
    if decoder_loss == "rate":
        return (distortion / bpp.detach().clamp_min(0.02)).mean(), bpp, mse
    return (bpp + distortion).mean(), bpp, mse


@torch.no_grad()
def retarget_lambdas(model: ImportanceCodec, lambdas: tuple[float, ...]) -> ImportanceCodec:
    """A copy of ``model`` trained for ``lambdas``, to fine-tune from ``--init``.

    The per-quality parameters (gains, importance offset, map distribution) of each new
    level are interpolated linearly in log-lambda between the old levels (extrapolated
    beyond them), so fine-tuning starts near the right trade-off.
    """
    old = torch.log(torch.tensor(model.config.lambdas, dtype=torch.float64))
    new = torch.log(torch.tensor(lambdas, dtype=torch.float64))
    right = torch.searchsorted(old, new).clamp(1, len(old) - 1)
    w = ((new - old[right - 1]) / (old[right] - old[right - 1])).float()

    def interp(param: torch.Tensor) -> torch.Tensor:
        lo, hi = param.data[right - 1], param.data[right]
        return lo + w.view(-1, *([1] * (param.dim() - 1))) * (hi - lo)

    config = ModelConfig.from_dict({**model.config.to_dict(), "lambdas": lambdas})
    out = ImportanceCodec(config)
    state = model.state_dict()
    for name in ("log_gain", "importance_offset", "map_logits"):
        state[name] = interp(getattr(model, name))
    out.load_state_dict(state)
    return out


def _stages(g_s: torch.nn.Sequential) -> list[list[torch.nn.Module]]:
    """The synthesis transform's modules, split before each upsampling layer."""
    stages: list[list[torch.nn.Module]] = []
    for module in g_s:
        if isinstance(module, torch.nn.ConvTranspose2d) or not stages:
            stages.append([])
        stages[-1].append(module)
    return stages


@torch.no_grad()
def grow_synthesis(model: ImportanceCodec, blocks: tuple[int, int, int]) -> ImportanceCodec:
    """A copy of ``model`` whose synthesis transform has ``blocks`` residual blocks per
    stage (at least those it has).  The added blocks start as the identity, so the copy
    decodes exactly as ``model`` does until training moves them."""
    if any(a > b for a, b in zip(model.config.synthesis_blocks, blocks, strict=True)):
        raise SystemExit(f"error: --synthesis-blocks {blocks} would drop trained blocks")
    config = ModelConfig.from_dict({**model.config.to_dict(), "synthesis_blocks": blocks})
    out = ImportanceCodec(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("g_s.")}
    out.load_state_dict(state, strict=False)
    for old, new in zip(_stages(model.g_s), _stages(out.g_s), strict=True):
        for blocks_only in (False, True):  # layers to layers, blocks to the first blocks
            sources = (m for m in old if isinstance(m, ResidualBlock) == blocks_only)
            targets = (m for m in new if isinstance(m, ResidualBlock) == blocks_only)
            for src, dst in zip(sources, targets, strict=False):  # new blocks may be more
                dst.load_state_dict(src.state_dict())
    return out


def freeze_decoder(model: ImportanceCodec) -> None:
    """Stop training every parameter the decoder uses: only the analysis transform and
    the importance offsets (which only move the encoder's map) stay trainable.

    The encoder is amortised: it guesses each picture's latent, and a model trained as
    briefly as ours guesses far from the best (:mod:`codec.refine` finds latents about 20%
    cheaper).  Training it alone, against a fixed decoder, aims at that gap; one CPU trial
    (8,000 steps from v2, lr 3e-4) did not close any of it (validation BD-rate +2%).
    """
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("g_a.") or name == "importance_offset")


def freeze_encoder(model: ImportanceCodec) -> None:
    """Stop training everything but the synthesis transform: the files the model writes
    stay byte for byte the same, and only their decoded pixels improve (a decoder upgrade,
    e.g. after :func:`grow_synthesis`)."""
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("g_s."))


@torch.no_grad()
def validate(model: ImportanceCodec, x: torch.Tensor) -> list[tuple[int, float, float]]:
    """Estimated bpp and PSNR of ``x`` at every quality; the model's mode is kept."""
    training = model.training
    model.eval()
    rows = []
    for q in range(model.config.qualities):
        quality = torch.full((x.shape[0],), q, dtype=torch.long, device=x.device)
        out = model(x, quality, "hard")
        pixels = x.shape[2] * x.shape[3]
        bpp = ((out["y_bits"] + out["z_bits"] + out["map_bits"]) / pixels).mean().item()
        mse = (out["x_hat"].clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(1 / mse)).mean().item()
        rows.append((q, bpp, psnr))
    model.train(training)
    return rows


def three_counts(value: str) -> tuple[int, int, int]:
    """``--synthesis-blocks``: three non-negative counts, comma-separated."""
    try:
        counts = tuple(int(x) for x in value.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 3 or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"want three counts such as 2,2,1, not {value!r}")
    return counts[0], counts[1], counts[2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", type=Path, help="folder of training photos")
    ap.add_argument("--out", type=Path, required=True, help="run folder")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="crop side (at least 256: see above)")
    add_schedule_arguments(ap, lr=1e-3, lr_min=5e-5, soft_until=0.5)
    ap.add_argument("--no-importance", action="store_true")
    ap.add_argument("--n", type=int, default=64, help="transform channels")
    ap.add_argument("--m", type=int, default=128, help="latent channels")
    ap.add_argument("--nz", type=int, default=64, help="hyper-latent channels")
    ap.add_argument("--levels", type=int, default=16, help="importance-map levels")
    ap.add_argument("--holdout", type=int, default=4, help="photos kept out for validation")
    add_run_arguments(ap)
    ap.add_argument("--init", type=Path, help="start from these exported weights")
    ap.add_argument("--model-id", help="the exported model's id (default: from its size)")
    ap.add_argument(
        "--train-only",
        choices=("all", "encoder", "decoder"),
        default="all",
        help="'encoder': train the analysis transform and the importance offsets only, "
        "everything the decoder uses frozen; 'decoder': the synthesis transform only, so "
        "the files stay the same (default: all)",
    )
    ap.add_argument(
        "--decoder-loss",
        choices=("rate", "psnr"),
        default="rate",
        help="loss of --train-only decoder: 'rate', the rate the distortion is worth "
        "(lambda * MSE / bpp); 'psnr', minus the PSNR (see rd_loss)",
    )
    ap.add_argument(
        "--synthesis-blocks",
        type=three_counts,
        help="residual blocks after each of the synthesis transform's three upsampling "
        "stages, e.g. 2,2,1 (with --init, the added ones start as the identity)",
    )
    ap.add_argument(
        "--lambdas",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        help="comma-separated rate-distortion trade-offs, one per quality (increasing)",
    )
    args = ap.parse_args(argv)
    decoder_only = args.train_only == "decoder"
    if decoder_only and not args.init:
        ap.error("--train-only decoder needs --init (the model whose files it decodes)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    paths = list_images(args.data)
    if len(paths) <= args.holdout:
        raise SystemExit(f"error: need more than {args.holdout} images in {args.data}")
    train_paths, val_paths = paths[: -args.holdout or None], paths[len(paths) - args.holdout :]
    images = load_pyramid(train_paths, (1.0, 0.75, 0.5))
    images = [im for im in images if min(im.shape[1:]) >= args.crop]
    val_x = center_crops(val_paths, VAL_CROP).to(args.device) if args.holdout else None

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "checkpoint.pt"
    ckpt = read_checkpoint(ckpt_path)
    if ckpt is not None:
        model = ImportanceCodec(ModelConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    elif args.init:
        model = load_model(args.init, trainable=True)
        if args.lambdas:
            model = retarget_lambdas(model, args.lambdas)
        if args.synthesis_blocks:
            model = grow_synthesis(model, args.synthesis_blocks)
    else:
        config = ModelConfig(
            n=args.n,
            nh=args.n,
            m=args.m,
            nz=args.nz,
            levels=args.levels,
            importance=not args.no_importance,
            synthesis_blocks=args.synthesis_blocks or (0, 0, 0),
            **({"lambdas": args.lambdas} if args.lambdas else {}),
        )
        model = ImportanceCodec(config)
    if args.train_only == "encoder":
        freeze_decoder(model)
    elif decoder_only:
        freeze_encoder(model)
    device = torch.device(args.device)
    # a decoder-only run decodes the very latents of the files: eval mode, no noise on z
    model.to(device).train(not decoder_only)
    state = TrainState(model, args.lr, rng, ckpt_path, ckpt)
    lambdas_all = torch.tensor(model.config.lambdas, device=device)
    q_count = model.config.qualities

    columns = ["step", "elapsed_s", "lr", "mode", "temperature", "loss", "bpp", "psnr"]
    writer, log = csv_log(args.out / "train_log.csv", columns)
    val_columns = ["step", "quality", "bpp_estimate", "psnr"]
    val_writer, val_log = csv_log(args.out / "val_log.csv", val_columns)

    start = time.time()
    acc = []
    while state.step < args.steps:
        mode, temperature, lr = schedule(state.step, args)
        x = random_batch(images, args.batch, args.crop, rng).to(device)
        quality = torch.randint(0, q_count, (args.batch,)).to(device)
        if decoder_only:  # no quantization proxy either
            mode, temperature = "hard", 0.0
        out = model(x, quality, mode, temperature)
        decoder_loss = args.decoder_loss if decoder_only else None
        loss, bpp, mse = rd_loss(out, x, lambdas_all[quality], decoder_loss)
        state.update(loss, lr)
        step = state.step
        acc.append((loss.item(), bpp.mean().item(), (10 * torch.log10(1 / mse)).mean().item()))
        if step % args.log_every == 0:
            loss_m, bpp_m, psnr_m = np.mean(acc, axis=0)
            acc.clear()
            writer.writerow(
                [
                    step,
                    f"{time.time() - start:.1f}",
                    f"{lr:.3g}",
                    mode,
                    f"{temperature:.4f}",
                    f"{loss_m:.4f}",
                    f"{bpp_m:.4f}",
                    f"{psnr_m:.3f}",
                ]
            )
            log.flush()
            print(
                f"step {step} loss {loss_m:.4f} bpp {bpp_m:.3f} psnr {psnr_m:.2f} "
                f"{mode} T={temperature:.3f}",
                flush=True,
            )
        if val_x is not None and (step % args.val_every == 0 or step == args.steps):
            for q, vbpp, vpsnr in validate(model, val_x):
                val_writer.writerow([step, q + 1, f"{vbpp:.4f}", f"{vpsnr:.3f}"])
            val_log.flush()
        if step % args.ckpt_every == 0 or step == args.steps:
            state.save()
    log.close()
    val_log.close()
    model.eval()
    # a decoder-only run keeps the coding tables of --init, so it writes the same files
    tables = load_weights(args.init).tables if decoder_only else None
    export_weights(model.cpu(), args.out / "model.safetensors", args.model_id, tables)
    print(f"exported {args.out / 'model.safetensors'}")


if __name__ == "__main__":
    main()
