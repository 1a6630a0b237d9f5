"""Calibrate a filter's residual scales anew: told and blind on the held-out pairs of one or
more caches, and blind per estimated QP on whole pictures coded as HEIC:

    python -m postfilter.calibrate runs/pf6/hevc-artifacts-v6-est.safetensors \
        --cache runs/postfilter-data-v6 runs/postfilter-data-v5 runs/postfilter-data-v2 \
        -o postfilter/weights/hevc-artifacts-v6.safetensors
    python -m postfilter.calibrate postfilter/weights/hevc-artifacts-v6.safetensors \
        --held-out-of ../shared/data/train --pictures ../shared/data/restoration/CBSD68 \
        --heic-cache runs/blind-calibration -o postfilter/weights/hevc-artifacts-v6.safetensors

The trainers calibrate on their own cache's held-out crops only.  Caches built with other
seeds crop the same held-out photos elsewhere; pooling them gives the safety scales
(:func:`postfilter.train.calibrate_scale`: per told value, and blind) more pictures to
hold on, so a filter that loses on one unlucky set of crops is caught before it ships.

Blind mode goes wrong on whole pictures in a way crops do not show: a smooth or grainy
picture coded at a low QP can read as QP 30-33, and the correction for that QP then costs
it up to 1 dB.  ``--pictures`` (folders) and ``--held-out-of`` (the photos a training folder
holds out, never those the filter trained on) code whole pictures at the benchmark's HEIC
qualities and calibrate the blind scale per estimated QP (:func:`blind_scales`): where the
estimate cannot tell a low QP from a middling one, the correction is damped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from evaluation.metrics import psnr

from . import data, heic
from .api import pad_to, rgb_tensor, rgb_uint8
from .benchmark import QUALITIES
from .model import CONDITIONS, ArtifactNet, qp_conditions
from .train import SCALES, calibrate_scale
from .weights import export_weights, load_weights

#: Estimated values (QP) at which blind mode's scale is calibrated; interpolated between.
BLIND_POINTS = (22.0, 27.0, 32.0, 37.0, 42.0, 47.0)
SWEEPS = 3


def pooled_val(caches: list[Path]) -> dict[str, np.ndarray]:
    """The held-out pairs of ``caches``, one set; the told values rounded to 0.1, which
    merges the same quality's QPs as different builds logged them."""
    vals = [data.load(c, "val") for c in caches]
    val = {k: np.concatenate([v[k] for v in vals]) for k in ("orig", "dec", "qp")}
    val["qp"] = np.round(val["qp"], 1).astype(np.float32)
    return val


class BlindPicture:
    """A decoded picture coded at ``qp``, what blind mode reads off it and the correction it
    then predicts (one pass, no flips, float32, as the crops' calibration); :meth:`gain` is
    the PSNR change of adding ``scale`` times that correction, ``told_gain`` the change the
    filter makes told ``qp`` (with the file's told scale)."""

    def __init__(
        self, net: ArtifactNet, orig: np.ndarray, dec: np.ndarray, qp: float, scale: float
    ) -> None:
        h, w = dec.shape[:2]
        x = pad_to(rgb_tensor(dec), 2)
        with torch.no_grad():
            cond = net.blind_conditions(x)
            x = x.contiguous(memory_format=torch.channels_last)
            res = net.residual(x, cond)
            told = net.residual(x, qp_conditions(torch.tensor([qp])))
        self.estimate = float(CONDITIONS[net.config.condition].denormalize(cond[0, 0]))
        self.dec, self.orig = x[..., :h, :w], orig
        self.residual = res[..., :h, :w].half()  # a 1e-4 error, far below a level's 1/255
        self.base = psnr(orig, dec)
        self.told_gain = psnr(orig, rgb_uint8((x + scale * told)[..., :h, :w])) - self.base
        self._gains: dict[float, float] = {}

    def gain(self, scale: float) -> float:
        scale = round(scale, 3)
        if scale not in self._gains:
            out = rgb_uint8(self.dec + scale * self.residual.float())
            self._gains[scale] = psnr(self.orig, out) - self.base
        return self._gains[scale]


def blind_scales(
    pictures: list[BlindPicture], max_loss_db: float, points: tuple[float, ...] = BLIND_POINTS
) -> list[tuple[float, float]]:
    """Blind mode's scale at each of ``points`` (estimated values; the scale of a picture is
    interpolated at its estimate, as :class:`postfilter.PostFilter` does): the best mean
    gain with no picture losing more than ``max_loss_db`` beyond what the filter told its QP
    loses (some grainy pictures lose told, and blind mode cannot be safer than that).
    Coordinate ascent from all zeros, which is safe: each point in turn takes the best
    scale (0, or one of ``SCALES``) that keeps every picture it affects within the limit,
    the others held."""
    estimates = np.array([p.estimate for p in pictures])
    table = np.zeros(len(points))
    for _ in range(SWEEPS):
        for b in range(len(points)):
            lo = points[b - 1] if b > 0 else -np.inf
            hi = points[b + 1] if b + 1 < len(points) else np.inf
            near = (estimates > lo) & (estimates < hi)  # whose scale this point sets
            affected = [p for p, n in zip(pictures, near, strict=True) if n]
            if not affected:
                continue
            floor = np.array([min(p.told_gain, 0.0) - max_loss_db for p in affected])
            best = (-np.inf, table[b])
            for s in (0.0, *SCALES):
                table[b] = s
                scales = np.interp(estimates[near], points, table)
                gains = np.array([p.gain(float(k)) for p, k in zip(affected, scales, strict=True)])
                if np.all(gains >= floor) and gains.mean() > best[0]:
                    best = (float(gains.mean()), s)
            table[b] = best[1]
    return [(float(q), float(s)) for q, s in zip(points, table, strict=True)]


def coded_pictures(
    net: ArtifactNet, told_scale: tuple[list[float], list[float]], paths: list[Path], cache: Path
) -> list[BlindPicture]:
    """Each picture of ``paths`` coded as HEIC (4:4:4) at every benchmark quality (files
    kept in ``cache``), decoded, read blind and filtered told its QP at ``told_scale``
    (the weights file's (QPs, scales))."""
    out = []
    for path in tqdm(paths, desc="pictures", unit="picture"):
        with Image.open(path) as im:
            ref = im.convert("RGB")
        orig = np.asarray(ref)
        for q in QUALITIES:
            dec = np.asarray(heic.decode(heic.encode_cached(ref, q, cache, path.stem)))
            qp = heic.quality_to_qp(q)
            scale = float(np.interp(qp, *told_scale))
            out.append(BlindPicture(net, orig, dec, qp, scale))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m postfilter.calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("weights", type=Path, help="the filter to calibrate")
    p.add_argument("--cache", type=Path, nargs="+", default=[], help="pair caches")
    p.add_argument("--pictures", type=Path, nargs="+", default=[], help="folders of pictures")
    p.add_argument("--held-out-of", type=Path, help="a training folder: its held-out photos")
    p.add_argument("--heic-cache", type=Path, default=Path("runs/blind-calibration"))
    p.add_argument("-o", "--output", type=Path, required=True, help="calibrated weights")
    p.add_argument("--max-loss-db", type=float, default=0.03, help="as postfilter.train's")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not (args.cache or args.pictures or args.held_out_of):
        p.error("give --cache, --pictures or --held-out-of")
    torch.set_num_threads(args.threads)
    net, meta = load_weights(args.weights)
    told = list(zip(*meta["residual_scale"], strict=True))
    blind = list(zip(*meta["blind_scale"], strict=True))
    if args.cache:
        told, scale = calibrate_scale(net, pooled_val(args.cache), args.max_loss_db)
        blind = [(0.0, scale)]
        print("residual scale per QP:", ", ".join(f"{q:.1f}: {v:.1f}" for q, v in told))
    paths = [q for folder in args.pictures for q in data.photo_paths(folder)]
    if args.held_out_of:
        paths += data.held_out_photos(args.held_out_of)
    if paths:
        if net.config.condition != "qp" or net.estimator is None:
            p.error("--pictures and --held-out-of calibrate HEVC filters with an estimator")
        pictures = coded_pictures(net, list(zip(*told, strict=True)), paths, args.heic_cache)
        blind = blind_scales(pictures, args.max_loss_db)
    print("blind residual scale:", ", ".join(f"{q:.1f}: {v:.1f}" for q, v in blind))
    export_weights(net, args.output, meta["model_id"], told, blind)
    print(f"exported {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
