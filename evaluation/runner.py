"""The RD run: every codec at every quality on every image, averaged into curves.

Per image and quality it records the file size (bpp), PSNR and MS-SSIM on 8-bit RGB, and the
encode and decode times.  Curves average over images: bpp, PSNR and MS-SSIM are each the
mean of the per-image values (as CompressAI reports Kodak), MS-SSIM in dB is that of the mean.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import metrics
from .cache import ResultCache, cache_key, report_results
from .codecs import PAYLOAD_SUFFIX, ImageCodec, make_codecs, parse_codec_names
from .curves import DEFAULT_REFERENCE, PUBLISHED_KODAK, Curve, load_curves
from .errors import EvaluationError
from .report import bd_rows, run_totals, write_csv, write_json

RD_FORMAT = "lcodec-rd-1"  # of the results file
IMAGE_SUFFIXES = {".png", ".bmp", ".ppm", ".pnm", ".tif", ".tiff", ".jpg", ".jpeg", ".webp"}

Qualities = Sequence[int] | Mapping[str, Sequence[int]] | None


@dataclass
class SourceImage:
    name: str
    image: Image.Image
    digest: str  # SHA-256 of the file

    @property
    def info(self) -> dict:
        w, h = self.image.size
        return {"name": self.name, "width": w, "height": h, "sha256": self.digest}


def find_images(image_dir: Path | str) -> list[Path]:
    """Image files directly in ``image_dir``, sorted by name."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise EvaluationError(f"not a directory: {image_dir}")
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EvaluationError(f"no images in {image_dir}")
    return paths


def load_image(path: Path) -> SourceImage:
    try:
        raw = path.read_bytes()
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise EvaluationError(f"cannot read image {path}: {e}") from None
    rgb.info.clear()
    return SourceImage(path.name, rgb, hashlib.sha256(raw).hexdigest())


def codec_qualities(codec: ImageCodec, qualities: Qualities) -> list[int]:
    """The qualities to run ``codec`` at: given for all codecs, given for it, or its defaults."""
    if qualities is None:
        chosen = codec.qualities
    elif isinstance(qualities, Mapping):
        chosen = qualities.get(codec.name, codec.qualities)
    else:
        chosen = qualities
    chosen = sorted({int(q) for q in chosen})
    if not chosen:
        raise EvaluationError(f"no qualities for codec '{codec.name}'")
    low, high = codec.quality_range
    if not low <= chosen[0] <= chosen[-1] <= high:
        raise EvaluationError(f"codec '{codec.name}' takes qualities {low}..{high}, not {chosen}")
    return chosen


def parse_qualities(
    specs: Sequence[str] | None, codec_names: Callable[[str], list[str]] = parse_codec_names
) -> Qualities:
    """Qualities from CLI strings: ``5,10,20`` (every codec) or ``jpeg=5,10`` (one codec);
    ``codec_names`` expands and checks the codec part (default: the image codecs)."""
    if not specs:
        return None
    common: list[int] = []
    per_codec: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, values = spec.rpartition("=")
        try:
            qs = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise EvaluationError(f"bad quality list '{spec}' (want e.g. 5,10,20)") from None
        if not qs:
            raise EvaluationError(f"bad quality list '{spec}' (want e.g. 5,10,20)")
        if sep:
            for codec in codec_names(name):
                per_codec.setdefault(codec, []).extend(qs)
        else:
            common.extend(qs)
    if common and per_codec:
        raise EvaluationError("give qualities either for all codecs or per codec, not both")
    return per_codec or common


def _evaluate(codec: ImageCodec, quality: int, src: SourceImage) -> dict:
    """Code one image at one quality and measure it."""
    try:
        t0 = time.perf_counter()
        data = codec.encode(src.image, quality)
        t1 = time.perf_counter()
        decoded = codec.decode(data)
        t2 = time.perf_counter()
        payload = codec.payload_size(data)
    except EvaluationError:
        raise
    except Exception as e:  # a codec failure names the case; finished results stay cached
        raise EvaluationError(f"{codec.name} quality {quality} on {src.name}: {e}") from None
    if decoded.size != src.image.size:
        raise EvaluationError(
            f"{codec.name} quality {quality} on {src.name}: decoded size {decoded.size}"
            f" differs from {src.image.size}"
        )
    w, h = src.image.size
    msssim = metrics.ms_ssim(src.image, decoded)
    result = {
        "bytes": len(data),
        "bpp": metrics.bpp(len(data), w, h),
        "psnr": metrics.psnr(src.image, decoded),
        "ms_ssim": msssim,
        "ms_ssim_db": metrics.ms_ssim_db(msssim),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
    }
    if payload is not None:
        result["payload_bytes"] = payload
        result["payload_bpp"] = metrics.bpp(payload, w, h)
    return result


def _shown_path(path: Path) -> str:
    """``path`` as given, or package-relative if it is the shipped reference."""
    if path == PUBLISHED_KODAK:
        return str(path.relative_to(Path(__file__).parent.parent))
    return str(path)


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else math.fsum(values) / len(values)


def summarize(records: list[dict], name: str, bpp_key: str = "bpp") -> tuple[Curve, list[dict]]:
    """The averaged curve of one codec's records (one point per quality) and its point rows."""
    points = []
    curve = Curve(name)
    for q in sorted({r["quality"] for r in records}):
        rs = [r for r in records if r["quality"] == q]
        msssim = _mean([r["ms_ssim"] for r in rs])
        point = {
            "codec": name,
            "quality": q,
            "bpp": _mean([r[bpp_key] for r in rs]),
            "psnr": _mean([r["psnr"] for r in rs]),
            "ms_ssim": msssim,
            "ms_ssim_db": metrics.ms_ssim_db(msssim),
            "encode_s": _mean([r["encode_s"] for r in rs]),
            "decode_s": _mean([r["decode_s"] for r in rs]),
            "images": len(rs),
        }
        points.append(point)
        curve.add(point["bpp"], point["psnr"], msssim)
    return curve.sorted(), points


Plan = list[tuple[ImageCodec, list[int]]]


def _collect(
    plan: Plan, images: list[SourceImage], store: ResultCache, progress: bool
) -> tuple[list[dict], int]:
    """Per-image results of every (codec, quality), from the cache where it has them; also
    how many were computed."""
    records: list[dict] = []
    evaluated = 0
    total = sum(len(qs) for _, qs in plan) * len(images)
    with tqdm(total=total, desc="rd", unit="img", disable=not progress, file=sys.stderr) as bar:
        for codec, qs in plan:
            settings = codec.settings
            for q in qs:
                bar.set_postfix_str(f"{codec.name} q={q}")
                for src in images:
                    key = cache_key(codec.name, settings, q, src.name, src.digest)
                    result = store.get(key) if settings is not None else None
                    if result is None:
                        result = _evaluate(codec, q, src)
                        evaluated += 1
                        if settings is not None:
                            store.put(key, result)
                    records.append({"codec": codec.name, "quality": q, "image": src.name, **result})
                    bar.update()
    return records, evaluated


def _curves(plan: Plan, records: list[dict]) -> tuple[dict[str, Curve], dict[str, dict]]:
    """Averaged curves by name, and their JSON description (payload variants included)."""
    curves: dict[str, Curve] = {}
    info: dict[str, dict] = {}
    for codec, qs in plan:
        own = [r for r in records if r["codec"] == codec.name]
        variants = [(codec.name, "bpp")]
        if all("payload_bpp" in r for r in own):
            variants.append((codec.name + PAYLOAD_SUFFIX, "payload_bpp"))
        for name, bpp_key in variants:
            curves[name], points = summarize(own, name, bpp_key)
            info[name] = {"settings": codec.settings, "qualities": qs, "points": points}
            if name != codec.name:
                info[name]["derived_from"] = codec.name
    return curves, info


def run_rd(
    image_dir: Path | str,
    codecs: str | Sequence[str],
    qualities: Qualities = None,
    out_json: Path | str | None = None,
    csv: Path | str | None = None,
    plot: Path | str | None = None,
    reference_csv: Path | str | None = None,
    ref_codec: str = DEFAULT_REFERENCE,
    cache: bool = True,
    progress: bool = True,
) -> dict:
    """Run the codecs over the images and return (and write) the results.

    ``codecs``: names or a comma list (``all``, ``anchors``).  ``qualities``: one list for
    every codec or a mapping codec -> list (default: each codec's own list).  ``out_json``,
    ``csv``, ``plot`` (PNG, plus an SVG beside it): outputs, each written atomically.
    ``reference_csv`` (default: the published Kodak curves) holds ``ref_codec``, the curve
    BD-rates are measured against.  ``cache``: reuse and extend ``<out_json stem>.cache.jsonl``.
    Raises EvaluationError for anything the user can fix.
    """
    started = time.perf_counter()
    names = parse_codec_names(codecs)
    paths = find_images(image_dir)
    reference_path = Path(reference_csv) if reference_csv is not None else PUBLISHED_KODAK
    reference = load_curves(reference_path)
    if ref_codec not in reference:
        raise EvaluationError(f"reference curve '{ref_codec}' not in {reference_path}")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise EvaluationError(f"plot file must end in .png: {plot}")
    for output in (out_json, csv, plot):
        if output is not None and Path(output).is_dir():
            raise EvaluationError(f"output is a directory: {output}")
    out_path = Path(out_json) if out_json is not None else None
    cache_path = None
    if cache and out_path is not None:
        cache_path = out_path.with_name(out_path.stem + ".cache.jsonl")
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EvaluationError(f"cannot create {cache_path.parent}: {e}") from None
    store = ResultCache(cache_path)
    if cache_path is not None:  # the results this run will overwrite, e.g. a committed file
        store.adopt(report_results(out_path, RD_FORMAT, "images", "image", lambda s: s["sha256"]))
    instances = make_codecs(names)
    if isinstance(qualities, Mapping) and set(qualities) - {c.name for c in instances}:
        unused = ", ".join(sorted(set(qualities) - {c.name for c in instances}))
        raise EvaluationError(f"qualities given for codecs not run: {unused}")
    plan = [(c, codec_qualities(c, qualities)) for c in instances]
    images = [load_image(p) for p in paths]

    records, evaluated = _collect(plan, images, store, progress)
    curves, codec_info = _curves(plan, records)
    result = {
        "format": RD_FORMAT,
        "image_dir": str(image_dir),
        "images": [s.info for s in images],
        "codecs": codec_info,
        "reference": {"csv": _shown_path(reference_path), "codec": ref_codec},
        "bd": bd_rows(curves, reference, ref_codec),
        **run_totals(records, evaluated, started),
    }
    if plot is not None:
        from .plot import plot_rd

        plot_rd(curves, reference, Path(plot), title=f"{Path(image_dir).name} ({len(images)})")
    if csv is not None:
        write_csv(Path(csv), [p for info in codec_info.values() for p in info["points"]])
    if out_path is not None:
        write_json(out_path, result)
    return result
