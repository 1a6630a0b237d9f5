"""Results out: BD-rate rows and their text table, the JSON and CSV files, the environment."""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .bd import bd_psnr, bd_rate
from .curves import Curve
from .files import write_atomic, write_text_atomic

SAME_RUN_ANCHOR = "heic"  # the in-process stand-in for BPG, measured with the same images
CSV_COLUMNS = (
    "codec",
    "bpp",
    "psnr",
    "ms_ssim",
    "ms_ssim_db",
    "quality",
    "encode_s",
    "decode_s",
    "images",
)
PACKAGES = ("pillow", "pillow-heif", "imagecodecs", "torch", "pytorch-msssim", "scipy", "numpy")


def compare(test: Curve, anchor: Curve) -> dict:
    """BD-rate on PSNR and on MS-SSIM (dB), and BD-PSNR, of ``test`` against ``anchor``."""
    row = {
        "bd_rate_psnr": bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr),
        "bd_psnr": bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr),
        "bd_rate_ms_ssim": None,
    }
    if test.has_ms_ssim and anchor.has_ms_ssim:
        row["bd_rate_ms_ssim"] = bd_rate(anchor.bpp, anchor.ms_ssim_db, test.bpp, test.ms_ssim_db)
    return row


def bd_rows(curves: dict[str, Curve], reference: dict[str, Curve], ref_codec: str) -> list[dict]:
    """Each run curve against: the reference curve, the published curve of the same name (if
    any) and the same-run HEIC (if run)."""
    rows = []
    for name, curve in curves.items():
        anchors = [(f"published {ref_codec}", reference[ref_codec])]
        if name in reference and name != ref_codec:
            anchors.append((f"published {name}", reference[name]))
        if SAME_RUN_ANCHOR in curves and name != SAME_RUN_ANCHOR:
            anchors.append((f"{SAME_RUN_ANCHOR} (this run)", curves[SAME_RUN_ANCHOR]))
        for label, anchor in anchors:
            rows.append({"codec": name, "anchor": label, **compare(curve, anchor)})
    return rows


def format_bd_table(rows: list[dict], extra: Sequence[tuple[str, str]] = ()) -> str:
    """Plain-text table of BD rows (negative BD-rate: fewer bits than the anchor); ``extra``
    adds BD-rate columns as (row key, heading)."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.2f}%"

    def db(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.3f} dB"

    header = ("codec", "anchor", "BD-rate PSNR", "BD-PSNR", "BD-rate MS-SSIM")
    header += tuple(heading for _, heading in extra)
    lines = [
        (
            r["codec"],
            r["anchor"],
            pct(r["bd_rate_psnr"]),
            db(r["bd_psnr"]),
            pct(r["bd_rate_ms_ssim"]),
            *(pct(r[key]) for key, _ in extra),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


#: CPU features that change the speed of our networks several times over (oneDNN runs
#: bfloat16 natively with AVX512-BF16 or AMX, and float32 twice as wide with AVX-512).
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu() -> dict:
    """The CPU's model name and which of :data:`CPU_FEATURES` it has (Linux; elsewhere
    what :mod:`platform` says and no features)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": name, "features": [f for f in CPU_FEATURES if f in flags]}


def environment() -> dict:
    """Machine and library versions, to tell later readers what the timings ran on."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": cpu(),
        "packages": versions,
    }


def run_totals(records: list[dict], evaluated: int, started: float) -> dict:
    """The closing fields of a results file: the ``records``, how many were ``evaluated``
    rather than reused from the cache, the seconds since ``started`` (``perf_counter``)
    and the :func:`environment`."""
    return {
        "records": records,
        "evaluated": evaluated,
        "reused": len(records) - evaluated,
        "elapsed_s": time.perf_counter() - started,
        "environment": environment(),
    }


def _rounded(value: object) -> object:
    """``value`` with floats rounded to 6 decimals, to keep the JSON readable."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_json(path: Path, result: dict) -> None:
    write_text_atomic(path, json.dumps(_rounded(result), indent=1, allow_nan=False) + "\n")


def write_report(path: Path, report: dict) -> None:
    """Write a benchmark's ``report`` as JSON, with the :func:`environment` its timings ran
    in under ``"machine"``."""
    write_text_atomic(path, json.dumps({**report, "machine": environment()}, indent=2) + "\n")


def write_csv(path: Path, points: list[dict], columns: Sequence[str] = CSV_COLUMNS) -> None:
    """One row per point, ``columns`` only (by default: per codec and quality, leading
    columns as in a reference CSV)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_rounded(p) for p in points)

    write_atomic(path, write)
