"""Does the low-rate mode (code at 1/2 or 1/4 size, super-resolve) beat direct coding?

Reads an RD run that includes ``ours``, ``ours-down2`` and ``ours-down4`` (e.g.
``python -m evaluation.kodak``'s ``results/kodak/rd.json``), and reports, for each
downscaled mode against direct coding: PSNR at fixed rates (PCHIP in log-rate, only where
a curve covers the rate), BD-PSNR and BD-rate over the overlap of the curves, and where the
mode wins (better where both cover the rate, or the only option below the lowest rate
direct coding reaches).  Writes JSON and a plot of the low-rate region::

    python -m benchmarks.lowrate results/kodak/rd.json -o results/lowrate.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
from scipy.interpolate import PchipInterpolator

from evaluation.bd import bd_psnr, bd_rate

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATES = (0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3)
MODES = ("ours-down2", "ours-down4")


def curve(rd: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(rd["codecs"][name]["points"], key=lambda p: p["bpp"])
    return np.array([p["bpp"] for p in points]), np.array([p["psnr"] for p in points])


def psnr_at(bpp: np.ndarray, psnr: np.ndarray, rate: float) -> float | None:
    """PSNR of the curve at ``rate`` bpp, or None outside the rates it covers."""
    if not bpp[0] <= rate <= bpp[-1]:
        return None
    return float(PchipInterpolator(np.log(bpp), psnr)(math.log(rate)))


def compare(rd: dict) -> dict:
    direct = curve(rd, "ours")
    result = {"rates_bpp": list(RATES), "direct_min_bpp": float(direct[0][0]), "modes": {}}
    result["direct"] = {f"{r:g}": psnr_at(*direct, r) for r in RATES}
    for mode in MODES:
        if mode not in rd["codecs"]:
            continue
        bpp, psnr = curve(rd, mode)
        at = {f"{r:g}": psnr_at(bpp, psnr, r) for r in RATES}
        wins = [
            r
            for r in RATES
            if at[f"{r:g}"] is not None and (result["direct"][f"{r:g}"] or -math.inf) < at[f"{r:g}"]
        ]
        result["modes"][mode] = {
            "psnr_at": at,
            "bd_psnr_vs_direct_db": bd_psnr(*direct, bpp, psnr),
            "bd_rate_vs_direct_pct": bd_rate(*direct, bpp, psnr),
            "wins_at_bpp": wins,
            "points": [{"bpp": float(b), "psnr": float(p)} for b, p in zip(bpp, psnr, strict=True)],
        }
    result["direct_points"] = [
        {"bpp": float(b), "psnr": float(p)} for b, p in zip(*direct, strict=True)
    ]
    return result


def plot(result: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = result["direct_points"]
    ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], "o-", label="ours (direct)")
    for mode, m in result["modes"].items():
        ax.plot([p["bpp"] for p in m["points"]], [p["psnr"] for p in m["points"]], "s-", label=mode)
    ax.set_xlim(0, 0.4)
    ax.set_xlabel("bpp")
    ax.set_ylabel("PSNR-RGB (dB)")
    ax.set_title("Kodak: low-rate mode vs direct coding")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lowrate", description=__doc__)
    p.add_argument("rd_json", type=Path, help="an RD run with ours, ours-down2, ours-down4")
    p.add_argument("-o", "--output", type=Path, default=Path("results/lowrate.json"))
    args = p.parse_args(argv)
    rd = json.loads(args.rd_json.read_text())
    if "ours" not in rd["codecs"]:
        raise SystemExit(f"error: {args.rd_json} has no 'ours' curve")
    result = compare(rd)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.output.with_suffix(".png"))
    cells = ["bpp", "direct", *result["modes"]]
    print(" | ".join(f"{c:>10}" for c in cells))
    for r in RATES:
        row = [
            result["direct"][f"{r:g}"],
            *(m["psnr_at"][f"{r:g}"] for m in result["modes"].values()),
        ]
        print(" | ".join([f"{r:>10g}", *(f"{v:>10.2f}" if v else f"{'-':>10}" for v in row)]))
    for mode, m in result["modes"].items():
        bdp, bdr = m["bd_psnr_vs_direct_db"], m["bd_rate_vs_direct_pct"]
        print(
            f"{mode}: BD-PSNR {bdp if bdp is None else f'{bdp:+.2f} dB'}, BD-rate "
            f"{bdr if bdr is None else f'{bdr:+.1f}%'} vs direct; wins at {m['wins_at_bpp']} bpp"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
