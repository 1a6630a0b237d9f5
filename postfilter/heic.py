"""HEIC (x265) encode/decode with the RD suite's anchor settings, and its quality-to-QP map.

libheif sets x265's CRF to ``(100 - quality) / 2``; a single intra picture is then coded at
QP = CRF - 6 log2(1.4) (x265's I-frame offset, ``ipratio`` 1.4), e.g. quality 20 -> QP
37.09.  This was checked against x265's own per-frame CSV log (``x265:csv``), and is the
same for 4:4:4 and 4:2:0.  ``x265:pools=1`` keeps the encoder on one thread; it does not
change the bitstream.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image

from evaluation.codecs import Heic, clean_rgb

I_FRAME_QP_OFFSET = 6 * math.log2(1.4)


def quality_to_qp(quality: float) -> float:
    """x265 QP of an HEIC picture saved by pillow-heif with ``quality`` (0..100)."""
    return (100 - quality) / 2 - I_FRAME_QP_OFFSET


def qp_to_quality(qp: float) -> int:
    """The pillow-heif quality (0..100) whose QP is closest to ``qp``."""
    return min(range(101), key=lambda q: abs(quality_to_qp(q) - qp))


def settings() -> str:
    """Library versions and options of :func:`encode` (4:4:4 is the RD suite's HEIC anchor)."""
    return f"{Heic().settings} x265:pools=1"


def encode(
    img: Image.Image, quality: int, chroma: str = "444", x265: dict[str, str] | None = None
) -> bytes:
    """HEIC file bytes of ``img`` with the anchor's x265 options, plus raw ``x265`` ones."""
    import pillow_heif

    extra = {f"x265:{k}": v for k, v in (x265 or {}).items()}
    params = {**Heic.enc_params, "x265:pools": "1", **extra}
    buf = io.BytesIO()
    pillow_heif.from_pillow(clean_rgb(img)).save(
        buf, quality=quality, chroma=chroma, enc_params=params
    )
    return buf.getvalue()


def encode_cached(img: Image.Image, quality: int, cache: Path, name: str) -> bytes:
    """:func:`encode` of ``img`` (4:4:4) at ``quality``, kept as ``cache/<name>_q<quality>.heic``
    and read from there when it exists."""
    path = Path(cache) / f"{name}_q{quality}.heic"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode(img, quality, "444"))
        tmp.replace(path)
    return path.read_bytes()


def decode(data: bytes) -> Image.Image:
    """RGB picture of HEIC/HEIF file bytes (the anchor's decoder)."""
    return Heic().decode(data).convert("RGB")
