"""Training pairs: random crops of the training photos and their HEIC (x265) decodes.

Each crop of a randomly rescaled photo is coded as its own HEIC picture at a random quality
0..50 (QP 22..47, see :mod:`postfilter.heic`), mostly 4:4:4 and some 4:2:0.  Every
``val_every``-th photo (sorted by name) is held out for validation, coded at fixed qualities.
The pairs are cached as ``train.npz`` and ``val.npz`` (uint8 ``orig`` and ``dec`` arrays
N x crop x crop x 3, float32 ``qp``) in the cache folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import heic

VAL_QUALITIES = (0, 10, 20, 30, 40, 50)
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def photo_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}")
    return paths


def _random_crop(img: Image.Image, crop: int, rng: np.random.Generator) -> Image.Image:
    """A ``crop``-pixel square of ``img`` rescaled by a random factor in [0.5, 1]."""
    scale = max(rng.uniform(0.5, 1.0), (crop + 2) / min(img.size))
    if scale < 1:
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.Resampling.LANCZOS)
    x = int(rng.integers(0, img.width - crop + 1))
    y = int(rng.integers(0, img.height - crop + 1))
    return img.crop((x, y, x + crop, y + crop))


def _pair(crop: Image.Image, quality: int, chroma: str) -> tuple[np.ndarray, np.ndarray, float]:
    dec = heic.decode(heic.encode(crop, quality, chroma))
    return np.asarray(crop), np.asarray(dec), heic.quality_to_qp(quality)


def _save(path: Path, pairs: list[tuple[np.ndarray, np.ndarray, float]]) -> None:
    orig, dec, qp = zip(*pairs, strict=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, orig=np.stack(orig), dec=np.stack(dec), qp=np.asarray(qp, np.float32))
    tmp.replace(path)


def build(
    photos: Path,
    cache: Path,
    crops_per_image: int = 16,
    crop: int = 256,
    val_every: int = 10,
    share_420: float = 0.2,
    seed: int = 0,
) -> None:
    """Write the training and validation pairs into ``cache`` unless they are there already."""
    cache = Path(cache)
    stamp = {
        "photos": str(photos),
        "crops": crops_per_image,
        "crop": crop,
        "val_every": val_every,
        "share_420": share_420,
        "seed": seed,
    }
    stamp_path = cache / "settings.json"
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = photo_paths(photos)
    if len(paths) < val_every:
        raise FileNotFoundError(f"need at least {val_every} photos in {photos}, one to validate")
    train, val = [], []
    for i, path in enumerate(tqdm(paths, desc="coding HEIC pairs")):
        with Image.open(path) as im:
            img = im.convert("RGB")
        if i % val_every == val_every - 1:
            for _ in range(2):
                c = _random_crop(img, crop, rng)
                val += [_pair(c, q, "444") for q in VAL_QUALITIES]
            continue
        for _ in range(crops_per_image):
            chroma = "420" if rng.random() < share_420 else "444"
            train.append(_pair(_random_crop(img, crop, rng), int(rng.integers(0, 51)), chroma))
    _save(cache / "train.npz", train)
    _save(cache / "val.npz", val)
    stamp_path.write_text(json.dumps(stamp))


def load(cache: Path, split: str) -> dict[str, np.ndarray]:
    """The ``train`` or ``val`` pairs of a cache folder written by :func:`build`."""
    with np.load(Path(cache) / f"{split}.npz") as f:
        return {k: f[k] for k in ("orig", "dec", "qp")}
