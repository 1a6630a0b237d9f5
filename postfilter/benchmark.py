"""Benchmark the post-filter on Kodak HEIC (x265, 4:4:4) decodes, and on a test video.

    python -m postfilter.benchmark --kodak ../shared/data/kodak -o results/postfilter.json \
        [--video ../shared/data/video/test/BasketballPass_416x240_101f.y4m]

Every Kodak image is coded at every ``--qualities`` with the RD suite's HEIC anchor settings
(files cached in ``--cache``) and filtered told the QP and blind.  Per quality: mean bpp, QP,
PSNR-RGB before and after, mean and worst per-image change; BD-rate and BD-PSNR of HEIC +
filter against HEIC alone; the filter's wall time per image on ``--threads`` threads.
``--video`` codes a y4m sequence with libx265 at ``--video-qp`` (in the source's YUV range,
flagged so) and reports the Y-PSNR before and after the video filter (``--video-weights``,
default: the shipped one, as ``lcodec enhance`` picks for videos), of the frames as ``lcodec
enhance clip.mp4 -o out.y4m`` writes them (the decoded planes plus the filter's change,
:func:`codec.video_io.add_rgb_change`), and frames per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from codec.video_io import add_rgb_change, is_full_range, planes, to_rgb
from evaluation.bd import bd_psnr, bd_rate
from evaluation.files import write_text_atomic
from evaluation.metrics import bpp, plane_psnr, psnr

from . import heic, x265
from .api import DEFAULT_ENSEMBLE, DEFAULT_TILE, ENSEMBLES, PostFilter, filter_dtype, filter_for

QUALITIES = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)  # QP 44.6 .. 22.1


def _timed(fn, *args) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def kodak_paths(kodak: Path) -> list[Path]:
    """The PNG pictures of the Kodak folder, sorted."""
    paths = sorted(p for p in kodak.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise FileNotFoundError(f"no PNG images in {kodak}")
    return paths


def measure(pf: PostFilter, ref: Image.Image, dec: np.ndarray, told: float, ensemble: int) -> dict:
    """PSNR of ``dec`` before and after the filter (self-ensemble of ``ensemble`` flips),
    told ``told`` and blind, the value blind mode estimated (None without an estimator), and
    the filter's times."""
    after, t_told = _timed(pf, dec, told, DEFAULT_TILE, ensemble)
    (blind, estimated), t_blind = _timed(pf.restore, dec, None, DEFAULT_TILE, ensemble)
    base = psnr(ref, dec)
    return {
        "estimated": estimated,
        "psnr": base,
        "psnr_told": psnr(ref, after),
        "psnr_blind": psnr(ref, blind),
        "gain_told": psnr(ref, after) - base,
        "gain_blind": psnr(ref, blind) - base,
        "time_told_s": t_told,
        "time_blind_s": t_blind,
    }


def kodak_rows(pf: PostFilter, kodak: Path, qualities, cache: Path, ensemble: int) -> list[dict]:
    """One row per image and quality: bpp, QP, PSNR before/after (told, blind), times."""
    rows = []
    for path in tqdm(kodak_paths(kodak), desc="kodak", unit="image"):
        ref = Image.open(path).convert("RGB")
        for q in qualities:
            data = heic.encode_cached(ref, q, cache, path.stem)
            dec = np.asarray(heic.decode(data))
            qp = heic.quality_to_qp(q)
            row = {"image": path.name, "quality": q, "qp": qp, "bpp": bpp(len(data), *ref.size)}
            rows.append(row | measure(pf, ref, dec, qp, ensemble))
    return rows


def summarize(rows: list[dict], qualities) -> dict:
    """Per-quality averages and worst changes, BD-rate/PSNR of the filter vs HEIC alone."""
    per_q = per_quality(rows, qualities)
    at37 = min(per_q, key=lambda s: abs(s["qp"] - 37))
    return {
        "per_quality": per_q,
        "bd_vs_heic": filter_bd(per_q),
        "closest_to_qp37": at37,
        "time_per_image_s": filter_times(rows),
    }


def per_quality(rows: list[dict], qualities) -> list[dict]:
    """Per quality: the mean of every number of the rows, and the worst gains and images."""
    per_q = []
    for q in qualities:
        r = [row for row in rows if row["quality"] == q]
        numbers = [k for k, v in r[0].items() if k not in ("image", "quality") and v is not None]
        mean = {k: float(np.mean([x[k] for x in r])) for k in numbers}
        mean["quality"] = q
        if "estimated" in numbers:  # blind mode's error in QP (or quality) units
            mean["estimate_mae"] = float(np.mean([abs(x["estimated"] - x["qp"]) for x in r]))
        worst_told = min(r, key=lambda x: x["gain_told"])
        worst_blind = min(r, key=lambda x: x["gain_blind"])
        mean |= {
            "worst_gain_told": worst_told["gain_told"],
            "worst_image_told": worst_told["image"],
            "worst_gain_blind": worst_blind["gain_blind"],
            "worst_image_blind": worst_blind["image"],
        }
        per_q.append(mean)
    return per_q


def filter_bd(per_q: list[dict]) -> dict[str, dict[str, float]]:
    """BD-rate and BD-PSNR of the filtered curves (told, blind) against the unfiltered one:
    same bpp, the filter's PSNR."""
    rate = [s["bpp"] for s in per_q]
    base = [s["psnr"] for s in per_q]
    bd = {}
    for mode in ("told", "blind"):
        after = [s[f"psnr_{mode}"] for s in per_q]
        bd[mode] = {
            "bd_rate_pct": bd_rate(rate, base, rate, after),
            "bd_psnr_db": bd_psnr(rate, base, rate, after),
        }
    return bd


def filter_times(rows: list[dict]) -> dict[str, float]:
    """The filter's seconds per image, told (mean, median) and blind (mean)."""
    times = [row["time_told_s"] for row in rows]
    return {
        "told_mean": float(np.mean(times)),
        "told_median": float(np.median(times)),
        "blind_mean": float(np.mean([r["time_blind_s"] for r in rows])),
    }


def _y(frame) -> np.ndarray:
    return planes(frame)[0].astype(np.float64)


def video_benchmark(pf: PostFilter, y4m: Path, qp: int, cache: Path, ensemble: int) -> dict:
    """Y-PSNR of ``y4m`` coded by libx265 at ``qp`` (preset medium), before/after the filter
    (self-ensemble of ``ensemble`` flips)."""
    import av

    with av.open(str(y4m)) as inp:
        frames = [f.reformat(format="yuv420p") for f in inp.decode(video=0)]
    h, w = frames[0].height, frames[0].width
    coded = cache / f"{y4m.stem}_x265_qp{qp}.mp4"
    if not coded.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        x265.encode(frames, qp, coded)
    res = {"before": [], "told": [], "blind": []}
    elapsed = 0.0
    for src, dec in zip(frames, x265.decode(coded), strict=True):
        full, ref = is_full_range(dec), _y(src)
        rgb = to_rgb(dec, full)
        res["before"].append(plane_psnr(ref, _y(dec)))
        told, t = _timed(pf, rgb, qp, DEFAULT_TILE, ensemble)
        elapsed += t
        for mode, out in (("told", told), ("blind", pf(rgb, None, DEFAULT_TILE, ensemble))):
            written = add_rgb_change(dec, rgb, out, full)  # what `lcodec enhance` writes
            res[mode].append(plane_psnr(ref, _y(written)))
    mean = {k: float(np.mean(v)) for k, v in res.items()}
    return {
        "model_id": pf.model_id,
        "sequence": y4m.name,
        "size": [w, h],
        "frames": len(frames),
        "qp": qp,
        "encoder": "libx265 preset medium, fixed QP (P frames; I/B offset by x265)",
        "y_psnr": mean,
        "gain_told_db": mean["told"] - mean["before"],
        "gain_blind_db": mean["blind"] - mean["before"],
        "fps_told": len(frames) / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m postfilter.benchmark", description=__doc__)
    p.add_argument("--kodak", type=Path, required=True, help="Kodak folder (24 PNG)")
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--weights", type=Path, help="post-filter weights (default: shipped)")
    p.add_argument("--qualities", default=",".join(map(str, QUALITIES)), help="HEIC qualities")
    p.add_argument("--video", type=Path, help="also benchmark this .y4m sequence")
    p.add_argument("--video-qp", type=int, default=37)
    p.add_argument("--video-weights", type=Path, help="video filter (default: shipped)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument(
        "--ensemble",
        type=int,
        choices=ENSEMBLES,
        default=DEFAULT_ENSEMBLE,
        help="flips the correction is averaged over (default: %(default)s, as lcodec enhance)",
    )
    p.add_argument("--cache", type=Path, default=Path("runs/postfilter-bench"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.qualities.split(",")]
    pf = filter_for("qp", args.weights)
    if not args.kodak.is_dir():
        print(f"error: Kodak not found at {args.kodak}", file=sys.stderr)
        return 2
    rows = kodak_rows(pf, args.kodak, qualities, args.cache, args.ensemble)
    result = {
        "model_id": pf.model_id,
        "threads": args.threads,
        "ensemble": args.ensemble,
        "precision": str(filter_dtype()).removeprefix("torch."),
        "heic_settings": heic.settings(),
        **summarize(rows, qualities),
    }
    if args.video:
        pf_video = filter_for("qp", args.video_weights, video=True)
        result["video"] = video_benchmark(
            pf_video, args.video, args.video_qp, args.cache, args.ensemble
        )
    result["per_image"] = rows
    write_text_atomic(args.output, json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    lines = table_lines(result, result["bd_vs_heic"], with_qp=True)
    if "video" in result:
        v = result["video"]
        lines.append(
            f"{v['sequence']} QP{v['qp']} ({v['model_id']}): "
            f"Y-PSNR {v['y_psnr']['before']:.2f} dB, "
            f"{v['gain_told_db']:+.3f} told, {v['gain_blind_db']:+.3f} blind, "
            f"{v['fps_told']:.1f} fps"
        )
    return "\n".join(lines)


def table_lines(result: dict, bd: dict, with_qp: bool) -> list[str]:
    """The per-quality rows (with the QP column when ``with_qp``), the BD-rate/BD-PSNR lines
    of :func:`filter_bd` (n/a where the curves do not overlap) and the time line of a result."""
    lines = [
        "quality" + ("   QP" if with_qp else "") + "    bpp   PSNR  +told (worst)  +blind (worst)"
    ]
    for s in result["per_quality"]:
        lines.append(
            f"{s['quality']:7d}"
            + (f" {s['qp']:4.1f}" if with_qp else "")
            + f" {s['bpp']:6.3f} {s['psnr']:6.2f}"
            f" {s['gain_told']:+6.3f} ({s['worst_gain_told']:+.3f})"
            f" {s['gain_blind']:+6.3f} ({s['worst_gain_blind']:+.3f})"
        )

    def fmt(value: float | None, spec: str, unit: str) -> str:
        return "n/a" if value is None else format(value, spec) + unit

    lines += [
        f"BD-rate {mode}: {fmt(d['bd_rate_pct'], '+.2f', '%')}  "
        f"BD-PSNR {fmt(d['bd_psnr_db'], '+.3f', ' dB')}"
        for mode, d in bd.items()
    ]
    t = result["time_per_image_s"]
    lines.append(
        f"time per image ({result['threads']} threads): {t['told_mean']:.3f} s told, "
        f"{t['blind_mean']:.3f} s blind"
    )
    return lines


if __name__ == "__main__":
    sys.exit(main())
