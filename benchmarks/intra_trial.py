"""What trying an I-frame only where it may win costs and saves (:attr:`VideoCodec.intra_trial`).

    python -m benchmarks.intra_trial ../shared/data/video/test/*.y4m -o results/intra_trial.json

Codes each sequence (first ``--frames`` frames, the RD suite's intra period) at each quality
twice with the shipped models: trying an I-frame for every planned P-frame, and with the
shipped rule.  Reports the frame types, bytes, PSNR-RGB and encode frames per second of
both; the rule is free where bytes and types are the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from evaluation.report import write_report

EVERY = (0.0, 0.0)  # the trial thresholds that try every planned P-frame


def main(argv: list[str] | None = None) -> None:
    from codec.video import VideoCodec
    from evaluation.video import Ours, load_sequence, measure

    p = argparse.ArgumentParser(prog="python -m benchmarks.intra_trial", description=__doc__)
    p.add_argument("sequences", type=Path, nargs="+", help=".y4m sequences")
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--gop", type=int, default=32)
    p.add_argument("-q", "--qualities", default="1,4,8", help="comma list")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ours = Ours("ours")
    rules = {"every": EVERY, "shipped": VideoCodec.intra_trial}
    rows = []
    print(
        f"{'sequence':28s} {'q':>2s} {'rule':8s} {'bytes':>8s} {'PSNR':>7s} {'enc fps':>8s}  types"
    )
    for path in args.sequences:
        seq = load_sequence(path, args.frames)
        for q in (int(v) for v in args.qualities.split(",")):
            for name, trial in rules.items():
                ours.codec.intra_trial = trial
                coded = ours.code(seq, q, args.gop)
                row = {
                    "sequence": seq.name,
                    "quality": q,
                    "rule": name,
                    "bytes": coded.bytes,
                    "psnr": measure(seq, coded.frames)["psnr"],
                    "encode_fps": len(seq.rgb) / coded.encode_s,
                    "types": coded.types,
                }
                rows.append(row)
                print(
                    f"{seq.name[:28]:28s} {q:2d} {name:8s} {row['bytes']:8d} {row['psnr']:7.3f}"
                    f" {row['encode_fps']:8.2f}  {row['types']}",
                    flush=True,
                )
    report = {
        "frames": args.frames,
        "gop": args.gop,
        "threads": args.threads,
        "rules": {name: list(trial) for name, trial in rules.items()},
        "results": rows,
    }
    write_report(args.output, report)


if __name__ == "__main__":
    main()
