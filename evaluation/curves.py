"""Rate-distortion curves: the points of one codec, and published curves read from CSV.

A reference CSV has a header ``codec,bpp,psnr,ms_ssim`` (extra columns ignored) and one row
per point; ``data/kodak_published_rd.csv`` holds published Kodak results (CompressAI's
``results/image/kodak``: classic codecs and learned models).  The CSV an RD run writes has
the same leading columns, so a run can serve as the reference of another.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EvaluationError
from .metrics import ms_ssim_db

PUBLISHED_KODAK = Path(__file__).parent / "data" / "kodak_published_rd.csv"
DEFAULT_REFERENCE = "bpg444"
PLOTTED_REFERENCES = (
    "bpg444",
    "vtm",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "cheng2020-anchor",
    "jpeg",
    "webp",
)


@dataclass
class Curve:
    """Points (sorted by rate) of one codec; ``ms_ssim`` entries may be None (unknown)."""

    name: str
    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float | None] = field(default_factory=list)

    def add(self, bpp: float, psnr: float, ms_ssim: float | None) -> None:
        self.bpp.append(bpp)
        self.psnr.append(psnr)
        self.ms_ssim.append(ms_ssim)

    def sorted(self) -> Curve:
        order = sorted(range(len(self.bpp)), key=self.bpp.__getitem__)
        return Curve(
            self.name,
            [self.bpp[i] for i in order],
            [self.psnr[i] for i in order],
            [self.ms_ssim[i] for i in order],
        )

    @property
    def ms_ssim_db(self) -> list[float | None]:
        return [ms_ssim_db(v) for v in self.ms_ssim]

    @property
    def has_ms_ssim(self) -> bool:
        return bool(self.ms_ssim) and all(v is not None for v in self.ms_ssim)


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def load_curves(path: Path | str) -> dict[str, Curve]:
    """The curves of a reference CSV, by codec name (raises EvaluationError if unreadable)."""
    path = Path(path)
    curves: dict[str, Curve] = {}
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"codec", "bpp", "psnr"} - set(reader.fieldnames or ())
            if missing:
                raise EvaluationError(f"reference {path} lacks columns: {', '.join(missing)}")
            for row in reader:
                bpp, psnr = _number(row["bpp"]), _number(row["psnr"])
                if bpp is None or psnr is None:
                    continue
                curve = curves.setdefault(row["codec"], Curve(row["codec"]))
                curve.add(bpp, psnr, _number(row.get("ms_ssim")))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EvaluationError(f"cannot read reference {path}: {e}") from None
    if not curves:
        raise EvaluationError(f"reference {path} holds no curves")
    return {name: c.sorted() for name, c in curves.items()}
