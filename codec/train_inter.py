"""Train the P-frame model: ``python -m codec.train_inter --clips DIR --photos DIR --out RUN``.

Each step codes a batch of short sequences (``--frames`` consecutive frames: crops of
real clips and synthetic camera motion over photos, :mod:`codec.video_data`).  The first
frame is the I-frame: coded by the frozen image model (``--intra``, default the shipped
one, at the same quality as the P-frames) or, with ``--intra noise``, the original plus a
little noise (faster).  The other frames are P-frames, each predicted from the previous
*reconstruction* (rounded to 8 bits, straight-through), so the model learns to keep errors
from building up over a GOP.  Loss: the mean over P-frames of
``bpp + lambda * 255^2 * MSE``, with ``bpp`` the cross-entropy of exactly what the coder
writes (motion and residual latents and hyper-latents) and ``lambda`` the quality's.

Stages, as DVC (Lu et al. 2019) warms up its parts: for the first ``--flow-steps`` steps only
the flow estimator trains, on the warping error at every pyramid level plus the error
against the true flow of synthetic motion (rate-distortion gradients through a random flow
are useless); for the next ``--motion-steps`` the motion coder and motion compensation
train with it on the prediction alone, ``motion bpp + lambda * 255^2 * MSE(prediction)``
(straight into the full loss, a random motion coder collapsed to coding no motion at all
and left the work to the residual coder); then everything trains on the rate-distortion
loss.  Quantization (:func:`quantizer`): soft-to-hard over the motion stage, the temperature
annealed from ``--t-start`` to ``--t-end`` while the motion coder learns (the residual coder
starts trained), then hard values with a straight-through gradient.  The learning rate
follows a cosine over all steps.

The last ``--holdout-clips`` clips and ``--holdout-photos`` photos (by name) are kept out;
fixed sequences drawn from them are coded every ``--val-every`` steps into
``RUN/val_log.csv``: the flow's warping alone (quality ``-``) and hard-quantized coding at
the lowest, middle and highest quality.  Both logs give ``static_psnr``, the PSNR of the
reference itself, the baseline the prediction must beat.

Resumable (``RUN/checkpoint.pt``), logged to ``RUN/train_log.csv``, exported to
``RUN/model.safetensors`` (:mod:`codec.inter_weights`).  Never train on ``video/test``.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .flow import FlowNet, warp
from .inter_model import FLOW_SCALE, InterCodec, InterConfig
from .inter_weights import export_inter_weights, load_inter_model
from .model import DEFAULT_LAMBDAS, ImportanceCodec
from .quantization import straight_through_round
from .train import list_images, load_pyramid
from .training import (
    TrainState,
    add_run_arguments,
    add_schedule_arguments,
    annealed_temperature,
    csv_log,
    learning_rate,
    read_checkpoint,
)
from .video_data import Sequences, load_clips, random_sequences
from .zoo import DEFAULT_WEIGHTS, load_model

LOG_COLUMNS = [
    "step",
    "elapsed_s",
    "stage",
    "lr",
    "mode",
    "temperature",
    "loss",
    "bpp",
    "motion_bpp",
    "psnr",
    "prediction_psnr",
    "static_psnr",
]
VAL_COLUMNS = ["step", "quality", *LOG_COLUMNS[6:]]
#: Weight of the end-point error (pixels) against the warping MSE in the flow warm-up.
EPE_WEIGHT = 0.1


def to_8bit(x: Tensor) -> Tensor:
    """``x`` clamped to [0, 1] and rounded to 8 bits as the decoder does (straight through)."""
    return straight_through_round(x.clamp(0, 1) * 255.0) / 255.0


def psnr(mse: Tensor) -> float:
    return (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item()


def flow_loss(model: InterCodec, batch: Sequences) -> tuple[Tensor, dict[str, float]]:
    """Warm-up loss of the flow estimator on consecutive frames, at every pyramid level: the
    warping error, plus ``EPE_WEIGHT`` times the end-point error where the true flow is
    known (synthetic motion; SpyNet itself is trained on true flows)."""
    cur, ref = batch.frames[:, 1:].flatten(0, 1), batch.frames[:, :-1].flatten(0, 1)
    known = batch.known.repeat_interleave(batch.flows.shape[1])
    true = batch.flows.flatten(0, 1)[known]
    # A BlockSearch has nothing to train: its loss is zero, its warping still validated.
    flows = model.flow.pyramid_flows(cur, ref) if isinstance(model.flow, FlowNet) else []
    loss = cur.new_zeros(())
    for level, flow in zip(range(len(flows), 0, -1), flows, strict=True):
        c, r = F.avg_pool2d(cur, 2**level), F.avg_pool2d(ref, 2**level)
        loss = loss + (warp(r, flow) - c).pow(2).mean()
        if len(true):
            error = flow[known] - F.avg_pool2d(true, 2**level) / 2**level
            loss = loss + EPE_WEIGHT * error.norm(dim=1).mean()
    mse = (warp(ref, model.flow(cur, ref)) - cur).pow(2).flatten(1).mean(1)
    static = (ref - cur).pow(2).flatten(1).mean(1)
    nothing_coded = {"bpp": 0.0, "motion_bpp": 0.0, "psnr": float("nan")}
    stats = {"prediction_psnr": psnr(mse), "static_psnr": psnr(static)}
    return loss, {"loss": loss.item(), **nothing_coded, **stats}


def motion_loss(
    model: InterCodec,
    seq: Tensor,
    quality: Tensor,
    lambdas: Tensor,
    mode: str,
    temperature: float,
) -> tuple[Tensor, dict[str, float]]:
    """Warm-up loss of the motion coder and motion compensation: the mean over consecutive
    pairs of ``motion bpp + lambda * 255^2 * MSE`` of the prediction from the previous
    original frame (no residual coded; ``psnr`` is the prediction's).  With conditional
    coding the prediction is context for the coder, not a picture, so the loss takes the
    plain warp by the decoded flow instead and only the motion coder trains."""
    pairs = seq.shape[1] - 1
    cur, ref = seq[:, 1:].flatten(0, 1), seq[:, :-1].flatten(0, 1)
    quality, lambdas = quality.repeat_interleave(pairs), lambdas.repeat_interleave(pairs)
    flow_hat, bits = model.motion(model.motion_input(cur, ref), quality, mode, temperature)
    if model.fusion is None:
        prediction = model.predict(ref, flow_hat / FLOW_SCALE)
    else:
        prediction = warp(ref, flow_hat / FLOW_SCALE)
    bpp = bits / (cur.shape[2] * cur.shape[3])
    mse = (prediction - cur).pow(2).flatten(1).mean(1)
    loss = (bpp + lambdas * 255.0**2 * mse).mean()
    pred_psnr = psnr((prediction.clamp(0, 1) - cur).pow(2).flatten(1).mean(1))
    static = psnr((ref - cur).pow(2).flatten(1).mean(1))
    stats = {"bpp": bpp.mean().item(), "motion_bpp": bpp.mean().item(), "psnr": pred_psnr}
    return loss, {"loss": loss.item(), **stats, "prediction_psnr": pred_psnr, "static_psnr": static}


def intra_frame(x: Tensor, quality: Tensor, intra: ImportanceCodec | None) -> Tensor:
    """The I-frame reconstruction the first P-frame is predicted from."""
    with torch.no_grad():
        if intra is None:
            return to_8bit(x + torch.randn_like(x) * (2.0 / 255.0))
        return to_8bit(intra(x, quality, "hard")["x_hat"])


def rd_loss(
    model: InterCodec,
    seq: Tensor,
    quality: Tensor,
    lambdas: Tensor,
    intra: ImportanceCodec | None,
    mode: str,
    temperature: float,
) -> tuple[Tensor, dict[str, float]]:
    """Mean over the P-frames of ``bpp + lambda * 255^2 * MSE``, unrolled from the I-frame.

    The statistics also give the PSNR of the prediction and, as the baseline it should
    beat, of the reference itself (no motion compensation)."""
    reference = intra_frame(seq[:, 0], quality, intra)
    pixels = seq.shape[3] * seq.shape[4]
    loss, stats = seq.new_zeros(()), []
    for t in range(1, seq.shape[1]):
        x = seq[:, t]
        out = model(x, reference, quality, mode, temperature)
        motion = out["motion_bits"] / pixels
        bpp = motion + out["residual_bits"] / pixels
        mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
        loss = loss + (bpp + lambdas * 255.0**2 * mse).mean()
        pred_mse = (out["prediction"].clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        static_mse = (reference - x).pow(2).flatten(1).mean(1)
        reference = to_8bit(out["x_hat"])
        coded_mse = (reference - x).pow(2).flatten(1).mean(1)
        stats.append(
            [bpp.mean().item(), motion.mean().item()]
            + [psnr(coded_mse), psnr(pred_mse), psnr(static_mse)]
        )
    loss = loss / (seq.shape[1] - 1)
    keys = LOG_COLUMNS[7:]
    return loss, {"loss": loss.item(), **dict(zip(keys, np.mean(stats, axis=0), strict=True))}


@torch.no_grad()
def validate(
    model: InterCodec, batch: Sequences, intra: ImportanceCodec | None, lambdas: Tensor
) -> list[list]:
    """Rows of the validation log: the flow estimator's warping alone (quality ``-``), then
    hard-quantized coding at the lowest, middle and highest quality."""
    model.eval()
    rows = [["-", *flow_loss(model, batch)[1].values()]]
    seq = batch.frames
    count = model.config.qualities
    for q in sorted({0, count // 2, count - 1}):
        quality = torch.full((seq.shape[0],), q, dtype=torch.long, device=seq.device)
        stats = rd_loss(model, seq, quality, lambdas[quality], intra, "hard", 0.0)[1]
        rows.append([q + 1, *(stats[k] for k in LOG_COLUMNS[6:])])
    model.train()
    return rows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clips", type=Path, help="folder of training video clips")
    ap.add_argument("--photos", type=Path, help="folder of photos for synthetic motion")
    ap.add_argument("--out", type=Path, required=True, help="run folder")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--flow-steps", type=int, default=5000, help="flow-only warm-up steps")
    ap.add_argument(
        "--motion-steps", type=int, default=2000, help="then motion coding warm-up steps"
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument(
        "--crop",
        type=int,
        default=192,
        help="multiple of 64; 192 or more, so that the hyperpriors learn the inside of a "
        "picture (v1, on 128, spent 3x the bits on full-size P-frames)",
    )
    ap.add_argument("--frames", type=int, default=4, help="frames per sequence (1 I, rest P)")
    ap.add_argument("--synthetic", type=float, default=0.3, help="share of synthetic motion")
    ap.add_argument("--clip-scale", type=float, default=0.5, help="downscale of the clips")
    ap.add_argument("--clip-frames", type=int, default=300, help="frames kept per clip")
    ap.add_argument(
        "--intra",
        default=str(DEFAULT_WEIGHTS),
        help="image-model weights coding the I-frames, or 'noise' (original plus noise)",
    )
    add_schedule_arguments(ap, lr=1e-4, lr_min=1e-5, soft_until=None)  # see quantizer()
    ap.add_argument("--mc", type=int, default=32, help="motion-compensation channels (0: none)")
    ap.add_argument(
        "--conditional",
        type=int,
        default=0,
        help="code the frame given its prediction (DCVC-style) with this many channels in "
        "the decoder's refinement; a residual-coding --init converts exactly "
        "(InterCodec.with_conditional_coding). 0: residual coding",
    )
    ap.add_argument(
        "--flow",
        choices=("learned", "search", "both"),
        help="the encoder's motion estimation: 'learned' (FlowNet), 'search' (BlockSearch, "
        "no parameters) or 'both' (the motion coder analyses both flows); a --init of "
        "another kind converts (InterCodec.with_flow; default: the --init's, else learned)",
    )
    ap.add_argument(
        "--search-penalty", type=float, default=0.002, help="BlockSearch's motion penalty"
    )
    ap.add_argument("--holdout-clips", type=int, default=1, help="clips kept for validation")
    ap.add_argument("--holdout-photos", type=int, default=4, help="photos kept for validation")
    ap.add_argument("--val-batch", type=int, default=4, help="validation sequences")
    add_run_arguments(ap)
    ap.add_argument("--init", type=Path, help="start from these exported P-frame weights")
    ap.add_argument(
        "--residual-from-intra",
        action="store_true",
        help="a new model's residual coder starts as the I-frame model's autoencoder",
    )
    return ap


Source = tuple[list[Tensor], list[Tensor]]  # clips, photos


def load_data(args: argparse.Namespace) -> tuple[Source, Source]:
    """Training and held-out (clips, photos): clips cached in the run folder, photos large
    enough for synthetic motion.  The last clips and photos (sorted by name) are held out."""
    clips, val_clips, photos, val_photos = [], [], [], []
    if args.clips:
        cache = args.out / "clip_cache"
        clips = load_clips(args.clips, cache, args.crop, args.clip_scale, args.clip_frames)
        clips, val_clips = _split(clips, args.holdout_clips)
    if args.photos:
        paths, val_paths = _split(list_images(args.photos), args.holdout_photos)
        photos, val_photos = (
            [p for p in load_pyramid(ps, (1.0, 0.5)) if min(p.shape[1:]) >= 2 * args.crop]
            for ps in (paths, val_paths)
        )
    if not clips and not photos:
        raise SystemExit("error: no training data: give --clips and/or --photos")
    print(
        f"training on {len(clips)} clips ({sum(c.shape[0] for c in clips)} frames) and"
        f" {len(photos)} photos; {len(val_clips)} clips, {len(val_photos)} photos held out"
    )
    return (clips, photos), (val_clips, val_photos)


def _split(items: list, holdout: int) -> tuple[list, list]:
    return items[: len(items) - holdout], items[len(items) - holdout :]


def build_model(
    args: argparse.Namespace, ckpt: dict | None, intra: ImportanceCodec | None
) -> InterCodec:
    """From the checkpoint, else ``--init``, else new (lambdas: the I-frame model's);
    ``--conditional`` converts a residual-coding start to conditional coding."""
    if ckpt is not None:
        model = InterCodec(InterConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    elif args.init:
        model = load_inter_model(args.init, trainable=True)
    elif args.residual_from_intra:
        if intra is None:
            raise SystemExit("error: --residual-from-intra needs an I-frame model (--intra)")
        c = intra.config
        model = InterCodec(InterConfig(mc=args.mc, n=c.n, m=c.m, nz=c.nz, lambdas=c.lambdas))
        model.residual.load_state_dict(intra_autoencoder_state(intra))
    else:
        lambdas = intra.config.lambdas if intra is not None else DEFAULT_LAMBDAS
        model = InterCodec(InterConfig(mc=args.mc, lambdas=lambdas))
    if ckpt is None and args.conditional and not model.config.conditional:
        model = model.with_conditional_coding(args.conditional)
    if ckpt is None and args.flow:
        model = model.with_flow(args.flow, args.search_penalty)
    if intra is not None and intra.config.lambdas != model.config.lambdas:
        print("warning: the I-frame model was trained for other lambdas than this P-frame model")
    return model


def intra_autoencoder_state(intra: ImportanceCodec) -> dict[str, Tensor]:
    """The image model's transforms, hyperprior and gains as a residual coder's state.

    A residual is coded like an image, so a trained image autoencoder is a far better start
    than random weights (on a CPU budget, the difference between a useful P-frame coder and
    none).  The importance map is dropped: the analysis output's last channel (the map's
    logit) and the map's own parameters."""
    if intra.config.nh != intra.config.n:
        raise SystemExit("error: the I-frame model's hyper transforms differ in width")
    state = intra.state_dict()
    del state["importance_offset"], state["map_logits"]
    last = f"g_a.{len(intra.g_a) - 1}"
    for key in (f"{last}.weight", f"{last}.bias"):
        state[key] = state[key][:-1]
    return state


def quantizer(step: int, stage: str, args: argparse.Namespace) -> tuple[str, float]:
    """(quantization mode, temperature) at ``step`` of ``stage``: ``--quant noise`` always
    noise; else soft-to-hard over the motion stage and straight-through after it.  (The
    image trainer anneals over a share of all steps; here the temperature would be near
    zero, and the soft quantizer's gradient with it, by the time the motion coder trains.)"""
    if args.quant == "noise":
        return "noise", 0.0
    if stage == "motion":
        return "soft", annealed_temperature((step - args.flow_steps) / args.motion_steps, args)
    return "ste", 0.0


def stage_of(step: int, args: argparse.Namespace) -> str:
    """The training stage at ``step``: ``flow``, ``motion`` or ``rd``."""
    if step < args.flow_steps:
        return "flow"
    return "motion" if step < args.flow_steps + args.motion_steps else "rd"


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.crop % InterCodec.ALIGN:
        raise SystemExit(f"error: --crop must be a multiple of {InterCodec.ALIGN}")
    if args.frames < 2:
        raise SystemExit("error: --frames must be at least 2 (an I-frame and a P-frame)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)

    (clips, photos), held_out = load_data(args)
    val_batch = None
    if any(held_out):  # fixed sequences, the same after a resume
        val_rng = random.Random(args.seed + 1)
        val_batch = random_sequences(
            *held_out, args.val_batch, args.frames, args.crop, val_rng, args.synthetic
        ).to(device)
    intra = None
    if args.intra != "noise":
        intra = load_model(args.intra).to(device).eval()
        intra.requires_grad_(False)

    ckpt_path = args.out / "checkpoint.pt"
    ckpt = read_checkpoint(ckpt_path)
    model = build_model(args, ckpt, intra).to(device).train()
    if args.flow_steps and not isinstance(model.flow, FlowNet):
        raise SystemExit("error: --flow-steps trains a learned flow estimator; give 0")
    state = TrainState(model, args.lr, rng, ckpt_path, ckpt)
    lambdas_all = torch.tensor(model.config.lambdas, device=device)
    writer, log = csv_log(args.out / "train_log.csv", LOG_COLUMNS)
    val_writer, val_log = csv_log(args.out / "val_log.csv", VAL_COLUMNS)

    start, acc = time.time(), []
    while state.step < args.steps:
        lr = learning_rate(state.step, args)
        batch = random_sequences(
            clips, photos, args.batch, args.frames, args.crop, rng, args.synthetic
        ).to(device)
        stage = stage_of(state.step, args)
        mode, temperature = quantizer(state.step, stage, args)
        quality = torch.randint(0, model.config.qualities, (args.batch,)).to(device)
        if stage == "flow":
            loss, stats = flow_loss(model, batch)
        elif stage == "motion":
            loss, stats = motion_loss(
                model, batch.frames, quality, lambdas_all[quality], mode, temperature
            )
        else:
            loss, stats = rd_loss(
                model, batch.frames, quality, lambdas_all[quality], intra, mode, temperature
            )
        state.update(loss, lr)
        step = state.step
        acc.append([stats[k] for k in LOG_COLUMNS[6:]])
        if step % args.log_every == 0 or step == args.steps:
            means = np.mean(acc, axis=0)
            acc.clear()
            head = [step, f"{time.time() - start:.1f}", stage, f"{lr:.3g}", mode]
            writer.writerow(head + [f"{temperature:.4f}", *(f"{v:.4f}" for v in means)])
            log.flush()
            print(
                f"step {step} {stage} loss {means[0]:.4f} bpp {means[1]:.3f}"
                f" (motion {means[2]:.3f}) psnr {means[3]:.2f} pred {means[4]:.2f}"
                f" static {means[5]:.2f}",
                flush=True,
            )
        if val_batch is not None and (step % args.val_every == 0 or step == args.steps):
            for row in validate(model, val_batch, intra, lambdas_all):
                val_writer.writerow([step, row[0], *(f"{v:.4f}" for v in row[1:])])
            val_log.flush()
        if step % args.ckpt_every == 0 or step == args.steps:
            state.save()
    log.close()
    val_log.close()
    export_inter_weights(model.eval().cpu(), args.out / "model.safetensors")
    print(f"exported {args.out / 'model.safetensors'}")


if __name__ == "__main__":
    main()
