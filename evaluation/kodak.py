"""Regenerate the committed Kodak RD results in one command.

    python -m evaluation.kodak --data ../shared/data/kodak -o results/kodak [--codecs anchors]

writes ``rd.json`` (everything, per image too), ``rd.csv`` (averaged curves), ``rd.png`` and
``rd.svg`` (plots) and ``bd.txt`` (the BD-rate table) into the output folder.  Finished
results are cached in ``rd.cache.jsonl`` there, so an interrupted run resumes; a fresh
checkout, without the cache, reuses the results of the committed ``rd.json`` that still apply.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import EvaluationError
from .files import write_text_atomic
from .report import format_bd_table
from .runner import run_rd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.kodak", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data", default="../shared/data/kodak", help="Kodak folder (24 PNG)")
    p.add_argument("-o", "--output", default="results/kodak", help="output folder")
    p.add_argument("--codecs", default="all", help="comma list, 'anchors' or 'all' (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    out = Path(args.output)
    try:
        if not Path(args.data).is_dir():
            raise EvaluationError(f"Kodak not found at {args.data} (give --data)")
        result = run_rd(
            args.data,
            args.codecs,
            out_json=out / "rd.json",
            csv=out / "rd.csv",
            plot=out / "rd.png",
            progress=not args.quiet,
        )
        table = format_bd_table(result["bd"])
        write_text_atomic(out / "bd.txt", table + "\n")
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table)
    print(
        f"{result['evaluated']} coded, {result['reused']} from cache, {result['elapsed_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
