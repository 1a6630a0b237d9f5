"""Benchmark the restoration networks on the standard test sets.

    python -m postfilter.restore_benchmark --data ../shared/data/restoration \
        -o results/restoration.json [--weights-dir postfilter/weights]

- Denoising, CBSD68 and McMaster: white Gaussian noise of sigma 15, 25 and 50 (0..255 scale)
  drawn from a fixed seed and added to the float picture without clipping or rounding (as the
  DnCNN and FFDNet evaluations do); the network is told the sigma, and also runs blind (the
  sigma estimated from the noisy picture).  PSNR-RGB of the 8-bit output.
- Super-resolution, Set5 and Set14 at x2 and x4: the picture cropped to a multiple of the
  scale and downscaled with Pillow's bicubic (:func:`restore.bicubic_downscale`).  PSNR on Y
  (BT.601) and on RGB, both with ``scale`` pixels shaved at the borders, against a Pillow
  bicubic upscale of the same input.
- Deblurring, CBSD68: Gaussian blur of sigma 1, 2 and 3 pixels (:func:`restore.gaussian_blur`)
  plus noise of sigma 0 and 2.55 (float, unclipped); PSNR of the blurred input, of a Wiener
  filter with the same kernel (:func:`wiener_deblur`) and of the network.
- Speed: seconds per output megapixel of each network on ``--threads`` threads (768x512
  output, median of ``--repeats``), and the time to denoise a 768x512 picture.

A task whose weights file is missing is skipped with a message.  The published numbers the
issue compares against are printed next to ours and stored under ``references``.
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

from evaluation.files import write_text_atomic
from evaluation.metrics import psnr

from . import restore
from .api import rgb_tensor, rgb_uint8
from .data import photo_paths
from .restore_api import RestoreRunner
from .weights import RESTORE_WEIGHTS, WEIGHTS_DIR

DENOISE_SETS, DENOISE_SIGMAS = ("CBSD68", "McMaster"), (15.0, 25.0, 50.0)
SR_SETS, SR_SCALES = ("Set5", "Set14"), (2, 4)
DEBLUR_SET, DEBLUR_BLURS, DEBLUR_NOISE = "CBSD68", (1.0, 2.0, 3.0), (0.0, 2.55)
#: Wiener filter: noise-to-signal ratio max(sigma, NOISE_FLOOR)^2 / SIGNAL_STD^2 at every
#: frequency.  SIGNAL_STD is a typical standard deviation of 8-bit photos; NOISE_FLOOR (one
#: grey level) keeps the noise-free case stable.  Fixed a priori, not tuned on the test set.
WIENER_SIGNAL_STD, WIENER_NOISE_FLOOR = 50.0, 1.0
SPEED_SIZE = (512, 768)  # output height, width of the speed runs
REFERENCES = {  # published PSNRs (dB; RGB for denoising, Y for super-resolution)
    "denoise CBSD68 sigma 25": {"CBM3D": 30.71, "CDnCNN": 31.23, "FFDNet": 31.21},
    "denoise CBSD68 sigma 50": {"CBM3D": 27.38, "CDnCNN": 27.92, "FFDNet": 27.96},
    "sr Set5 x4": {"bicubic (MATLAB)": 28.43, "ESPCN": 30.76},
    "sr Set14 x4": {"bicubic (MATLAB)": 26.00},
}
TARGETS = {  # issue 5: key into our results -> minimum
    "denoise CBSD68 sigma 25": 30.9,
    "denoise CBSD68 sigma 50": 27.6,
    "sr Set5 x4": 31.0,
    "sr Set14 x4": 27.7,
}
DENOISE_768X512_MAX_S = 1.0


def _psnr_float(ref: np.ndarray, x: torch.Tensor) -> float:
    """PSNR of a float (1,3,H,W) picture, unclipped, against HxWx3 uint8 ``ref``."""
    mse = float(torch.mean((x[0].double() - rgb_tensor(ref)[0].double()) ** 2))
    return 10 * np.log10(1 / mse)


def _shave(rgb: np.ndarray, border: int) -> np.ndarray:
    return rgb[border:-border, border:-border] if border else rgb


def _images(folder: Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    paths = photo_paths(folder)[:limit]
    return [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]


def _progress(items: list, desc: str):
    return tqdm(items, desc=desc, unit="image", leave=False, disable=None)


def wiener_deblur(y: torch.Tensor, blur: float, sigma: float) -> torch.Tensor:
    """Wiener deconvolution of ``y`` (1,3,H,W in [0, 1]) blurred by ``gaussian_blur(., blur)``
    with noise of std ``sigma`` (0..255 scale).

    The picture is mirrored into a periodic one (period 2H-2, 2W-2), on which circular
    convolution equals the blur with reflected borders, so the FFT sees no border jumps.
    """
    h, w = y.shape[-2:]
    ext = torch.cat([y, y.flip(-2)[..., 1:-1, :]], dim=-2).double()
    ext = torch.cat([ext, ext.flip(-1)[..., 1:-1]], dim=-1)
    k = restore.gaussian_kernel(blur).double()
    r = k.numel() // 2

    def transfer(n: int) -> torch.Tensor:  # the kernel centred on index 0, circularly
        row = torch.zeros(n, dtype=torch.float64)
        row[: r + 1], row[n - r :] = k[r:], k[:r]
        return torch.fft.fft(row).real  # symmetric kernel: real transfer function

    kk = transfer(ext.shape[-2])[:, None] * transfer(ext.shape[-1])[None, :]
    nsr = (max(sigma, WIENER_NOISE_FLOOR) / WIENER_SIGNAL_STD) ** 2
    x = torch.fft.ifft2(torch.fft.fft2(ext) * kk / (kk**2 + nsr)).real
    return x[..., :h, :w].float()


def denoise_results(runner: RestoreRunner, data: Path, limit: int | None, seed: int) -> dict:
    """Per-image rows of every denoising setting, by setting."""
    out = {}
    for name in DENOISE_SETS:
        images = _images(data / name, limit)
        for sigma in DENOISE_SIGMAS:
            gen = torch.Generator().manual_seed(seed)
            rows = []
            for img_name, rgb in _progress(images, f"denoise {name} sigma {sigma:g}"):
                x = restore.add_noise(rgb_tensor(rgb), torch.tensor([sigma]), gen)
                row = {"image": img_name, "psnr_in": _psnr_float(rgb, x)}
                row["psnr"] = psnr(rgb, rgb_uint8(runner.restore(x, sigma)))
                row["sigma_estimated"] = runner.estimate_sigma(x)
                blind = runner.restore(x, row["sigma_estimated"])
                row["psnr_blind"] = psnr(rgb, rgb_uint8(blind))
                rows.append(row)
            out[f"denoise {name} sigma {sigma:g}"] = rows
    return out


def sr_results(runner: RestoreRunner, data: Path, limit: int | None) -> dict:
    """Per-image rows of the runner's scale on every set, by set."""
    out, s = {}, runner.scale
    for name in SR_SETS:
        rows = []
        for img_name, rgb in _progress(_images(data / name, limit), f"sr {name} x{s}"):
            low = restore.bicubic_downscale(rgb, s)
            hr = rgb[: low.shape[0] * s, : low.shape[1] * s]
            bicubic = np.asarray(
                Image.fromarray(low).resize((hr.shape[1], hr.shape[0]), Image.Resampling.BICUBIC)
            )
            ours = runner(low)
            rows.append(
                {
                    "image": img_name,
                    "psnr_y": restore.psnr_y(hr, ours, s),
                    "psnr_y_bicubic": restore.psnr_y(hr, bicubic, s),
                    "psnr_rgb": psnr(_shave(hr, s), _shave(ours, s)),
                    "psnr_rgb_bicubic": psnr(_shave(hr, s), _shave(bicubic, s)),
                }
            )
        out[f"sr {name} x{s}"] = rows
    return out


def deblur_results(runner: RestoreRunner, data: Path, limit: int | None, seed: int) -> dict:
    """Per-image rows of every deblurring setting, by setting."""
    out = {}
    images = _images(data / DEBLUR_SET, limit)
    for blur in DEBLUR_BLURS:
        for sigma in DEBLUR_NOISE:
            gen = torch.Generator().manual_seed(seed)
            rows = []
            for img_name, rgb in _progress(images, f"deblur {blur:g}/{sigma:g}"):
                y = restore.gaussian_blur(rgb_tensor(rgb), blur)
                y = restore.add_noise(y, torch.tensor([sigma]), gen)
                rows.append(
                    {
                        "image": img_name,
                        "psnr_in": _psnr_float(rgb, y),
                        "psnr_wiener": psnr(rgb, rgb_uint8(wiener_deblur(y, blur, sigma))),
                        "psnr": psnr(rgb, rgb_uint8(runner.restore(y, sigma, blur))),
                    }
                )
            out[f"deblur {DEBLUR_SET} blur {blur:g} noise {sigma:g}"] = rows
    return out


def _summary(rows: list[dict]) -> dict:
    """The number of pictures and the mean of every per-image value."""
    keys = [k for k in rows[0] if k != "image"]
    return {"n": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def _median_time(repeats: int, fn, *args) -> float:
    """Median seconds of ``fn(*args)`` over ``repeats`` runs, after one warm-up run."""
    fn(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed_results(runners: dict[str, RestoreRunner], repeats: int) -> dict:
    """Seconds per output megapixel of each network, and the 768x512 denoising times."""
    h, w = SPEED_SIZE
    rng = np.random.default_rng(0)
    out = {}
    for task, runner in runners.items():
        s = runner.scale
        rgb = rng.integers(0, 256, (h // s, w // s, 3), dtype=np.uint8)
        sigma, blur = {"denoise": (25.0, None), "deblur": (2.55, 2.0)}.get(task, (None, None))
        t = _median_time(repeats, runner, rgb, sigma, blur)
        out[f"{task}_s_per_mp"] = t / (h * w / 1e6)
        if task == "denoise":
            out["denoise_768x512_s"] = t
            out["denoise_768x512_blind_s"] = _median_time(repeats, runner, rgb)
    return out


def _targets(results: dict, speed: dict) -> list[dict]:
    """Each of the issue's targets that was measured, with ours and whether it is met."""
    rows = []
    for key, minimum in TARGETS.items():
        if key in results:
            sr = key.startswith("sr")
            ours = results[key]["psnr_y" if sr else "psnr"]
            what = f"{key} PSNR-{'Y' if sr else 'RGB'} dB"
            rows.append({"what": what, "target": minimum, "ours": ours, "met": ours >= minimum})
    if "denoise_768x512_s" in speed:
        t = speed["denoise_768x512_s"]
        what, target = "denoise 768x512 seconds (at most)", DENOISE_768X512_MAX_S
        rows.append({"what": what, "target": target, "ours": t, "met": t < target})
    return rows


def format_tables(result: dict) -> str:
    """The results as plain-text tables (PSNR in dB), published numbers alongside."""
    lines = []

    def ref(key: str) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in REFERENCES.get(key, {}).items())

    for key, r in result["results"].items():
        if key.startswith("denoise"):
            blind = f"  blind {r['psnr_blind']:.2f} (sigma est. {r['sigma_estimated']:.1f})"
            lines.append(
                f"{key:26s} input {r['psnr_in']:5.2f}  ours {r['psnr']:5.2f}{blind}  {ref(key)}"
            )
        elif key.startswith("sr"):
            lines.append(
                f"{key:26s} Y: bicubic {r['psnr_y_bicubic']:5.2f} ours {r['psnr_y']:5.2f}  "
                f"RGB: bicubic {r['psnr_rgb_bicubic']:5.2f} ours {r['psnr_rgb']:5.2f}  {ref(key)}"
            )
        elif key.startswith("deblur"):
            lines.append(
                f"{key:32s} input {r['psnr_in']:5.2f}  Wiener {r['psnr_wiener']:5.2f}  "
                f"ours {r['psnr']:5.2f}  ({r['psnr'] - r['psnr_wiener']:+.2f} over Wiener)"
            )
    threads = result["settings"]["threads"]
    for key, value in result["speed"].items():
        lines.append(f"speed, {threads} threads: {key} {value:.3f}")
    for t in result["targets"]:
        mark = "met" if t["met"] else "NOT met"
        lines.append(f"target {t['what']}: {t['target']:g}, ours {t['ours']:.3f} ({mark})")
    for task, why in result["skipped"].items():
        lines.append(f"skipped {task}: {why}")
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m postfilter.restore_benchmark", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="folder of CBSD68, McMaster, Set5..")
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="<task>-v1.safetensors")
    p.add_argument("--tasks", nargs="+", choices=restore.TASKS, default=list(restore.TASKS))
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--repeats", type=int, default=5, help="speed runs per network")
    p.add_argument("--limit", type=int, help="use only the first N pictures of each set")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: no data folder {args.data}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    runners, weights, skipped = {}, {}, {}
    for task in args.tasks:
        path = args.weights_dir / RESTORE_WEIGHTS[task].name
        if path.is_file():
            runners[task] = RestoreRunner(path)
            weights[task] = {"file": str(path), "model_id": runners[task].model_id}
        else:
            skipped[task] = f"no weights file {path}"
            print(f"skipping {task}: no weights file {path}", file=sys.stderr)
    per_image = {}
    for task, runner in runners.items():
        if task == "denoise":
            per_image |= denoise_results(runner, args.data, args.limit, args.seed)
        elif task == "deblur":
            per_image |= deblur_results(runner, args.data, args.limit, args.seed)
        else:
            per_image |= sr_results(runner, args.data, args.limit)
    results = {key: _summary(rows) for key, rows in per_image.items()}
    speed = speed_results(runners, args.repeats)
    result = {
        "settings": {
            "threads": args.threads,
            "seed": args.seed,
            "limit": args.limit,
            "weights": weights,
            "wiener_nsr": f"max(sigma, {WIENER_NOISE_FLOOR:g})^2 / {WIENER_SIGNAL_STD:g}^2",
        },
        "results": results,
        "speed": speed,
        "targets": _targets(results, speed),
        "references": REFERENCES,
        "skipped": skipped,
        "per_image": per_image,
    }
    write_text_atomic(args.output, json.dumps(result, indent=1) + "\n")
    print(format_tables(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
