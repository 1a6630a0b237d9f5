"""Frames per second of our video codec (shipped models, I- and P-frames) per quality.

    python -m benchmarks.video_speed ../shared/data/video/test/BasketballPass_416x240_101f.y4m \
        -o results/video_speed.json

Codes the first ``--frames`` frames of a sequence at every quality with the intra period of
the RD suite, as ``lcodec rd --video`` does (:class:`evaluation.video.Ours`), and reports
encode and decode frames per second; the target is 2 each at 416x240 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from evaluation.report import write_report


def main(argv: list[str] | None = None) -> None:
    from evaluation.errors import EvaluationError
    from evaluation.video import Ours, load_sequence

    p = argparse.ArgumentParser(prog="python -m benchmarks.video_speed", description=__doc__)
    p.add_argument("sequence", type=Path, help=".y4m sequence")
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--gop", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-model", type=Path, help="P-frame weights (default: the shipped ones)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        seq, ours = load_sequence(args.sequence, args.frames), Ours("ours", None, args.inter_model)
    except EvaluationError as e:  # unreadable sequence or weights: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    n = len(seq.rgb)
    rows = []
    print(f"{'quality':>7s} {'bytes':>8s} {'encode fps':>11s} {'decode fps':>11s}")
    for q in ours.qualities:
        coded = ours.code(seq, q, args.gop)
        rows.append(
            {
                "quality": q,
                "bytes": coded.bytes,
                "encode_fps": n / coded.encode_s,
                "decode_fps": n / coded.decode_s,
            }
        )
        r = rows[-1]
        print(f"{q:7d} {r['bytes']:8d} {r['encode_fps']:11.2f} {r['decode_fps']:11.2f}", flush=True)
    report = {
        "sequence": args.sequence.name,
        "frames": n,
        "gop": args.gop,
        "threads": args.threads,
        "models": ours.settings(args.gop),
        "results": rows,
    }
    write_report(args.output, report)


if __name__ == "__main__":
    main()
