"""Encode/decode time and peak memory of one picture, ours beside CompressAI's hyperprior.

    python -m benchmarks.speed ../shared/data/kodak/kodim01.png -o results/speed.json

Each measurement runs in its own child process so peak RSS is that of one codec
alone.  Times are the median of ``--repeat`` runs after one warm-up, with
``--threads`` torch threads.  CompressAI's ``bmshj2018_hyperprior`` (quality 3)
uses random weights: its speed does not depend on them.

``commands`` is what a user waits for: the wall time of whole ``lcodec info``, ``encode``
and ``decode`` commands (Python's start, imports and loading the model included; median
of ``--repeat``, no warm-up) and the largest peak RSS among them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.report import write_report

from .isolated import measure


def _time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _ours(path: str, quality: int, repeat: int, weights: str | None) -> dict:
    import codec

    model = codec.load_model(weights)
    data = model.encode(path, quality=quality)
    return {
        "encode_s": _time(lambda: model.encode(path, quality=quality), repeat),
        "decode_s": _time(lambda: model.decode(data), repeat),
        "bytes": len(data),
    }


def _compressai(path: str, quality: int, repeat: int, weights: str | None) -> dict:
    import numpy as np
    import torch
    from compressai.zoo import bmshj2018_hyperprior
    from PIL import Image

    net = bmshj2018_hyperprior(quality=3, pretrained=False).eval()
    net.update(force=True)
    img = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        enc = net.compress(x)

        def decode():
            net.decompress(enc["strings"], enc["shape"])

        return {
            "encode_s": _time(lambda: net.compress(x), repeat),
            "decode_s": _time(decode, repeat),
            "bytes": sum(len(s[0]) for s in enc["strings"]),
        }


def _commands(path: Path, quality: int, repeat: int, threads: int) -> dict:
    """Median wall time of each ``lcodec`` command on ``path``, run as a user runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        lcf, png = Path(tmp) / "a.lcf", Path(tmp) / "a.png"
        threads_arg = ["--threads", str(threads)]  # info loads no torch to set them in
        runs = {
            "encode": [*threads_arg, "encode", str(path), "-o", str(lcf), "-q", str(quality)],
            "info": ["info", str(lcf)],
            "decode": [*threads_arg, "decode", str(lcf), "-o", str(png)],
        }
        out = {}
        for name, args in runs.items():
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                cmd = [sys.executable, "-m", "cli.main", *args]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t)
            out[f"{name}_s"] = statistics.median(times)
    # the largest child so far: run before any other child process of this one
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("image", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=Path("results/speed.json"))
    ap.add_argument("-q", "--quality", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--weights", help="our weights file (default: shipped)")
    args = ap.parse_args()
    commands = _commands(args.image, args.quality, args.repeat, args.threads)
    rows = {}
    for name, job in (("lcodec", _ours), ("compressai-bmshj2018-hyperprior", _compressai)):
        rows[name] = measure(
            job, (str(args.image), args.quality, args.repeat, args.weights), args.threads
        )
    print(f"{'codec':34s} {'encode s':>9s} {'decode s':>9s} {'peak RSS MB':>12s}")
    for name, r in rows.items():
        print(f"{name:34s} {r['encode_s']:9.3f} {r['decode_s']:9.3f} {r['peak_rss_mb']:12.0f}")
    print(
        f"whole commands: lcodec info {commands['info_s']:.2f} s, encode {commands['encode_s']:.2f}"
        f" s, decode {commands['decode_s']:.2f} s, peak RSS {commands['peak_rss_mb']:.0f} MB"
    )
    report = {
        "image": args.image.name,
        "threads": args.threads,
        "repeat": args.repeat,
        "quality": args.quality,
        "results": rows,
        "commands": commands,
    }
    write_report(args.output, report)


if __name__ == "__main__":
    main()
