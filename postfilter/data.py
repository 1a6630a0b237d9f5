"""Training pairs: random crops of the training photos and their HEIC (x265) decodes, and of
frames of training clips and their libx265 decodes (:func:`build`); or crops of the photos
and their decodes by our own codec (:func:`build_lcodec`).

Each crop of a randomly rescaled photo is coded as its own HEIC picture at a random quality
0..50 (QP 22..47, see :mod:`postfilter.heic`), mostly 4:4:4 and some 4:2:0.  Every
``val_every``-th photo (sorted by name) is held out for validation, coded at fixed qualities.
Clips are coded in segments of ``SEGMENT`` frames (4:2:0, libx265 at a random QP 22..47, so
mostly P and B frames) and random crops of their frames join the training pairs, labelled
with the segment's QP; with ``clip_holdout`` n, every n-th clip (sorted by name) validates
instead, ``CROPS_PER_SEGMENT`` crops of one segment per QP of ``VAL_CLIP_QPS``.
Our codec's pairs: each crop is coded and decoded by the shipped codec at a random quality
level 1..8; the held-out photos' crops at every quality.  Kodak pictures are refused.
The pairs are cached as ``train.npz`` and ``val.npz`` (uint8 ``orig`` and ``dec`` arrays
N x crop x crop x 3, float32 ``qp``: the HEVC QP, or our codec's quality level) in the
cache folder, with the settings that made them (``settings.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import codec
from codec.video_io import RAW_SUFFIX, VIDEO_SUFFIXES, to_rgb, to_yuv420

from . import heic

VAL_QUALITIES = (0, 10, 20, 30, 40, 50)
VAL_CROPS = 2  # crops per held-out photo, each coded at every validation quality
#: Film grain and sensor noise (std in 8-bit levels) added to a share of the photo crops
#: (``grain_share``): the training photos were downscaled, which removed theirs, and a filter
#: that never saw grain survive the coding removes it as if it were an artefact.
GRAIN_SIGMA = (1.0, 5.0)
VAL_GRAIN_SIGMA = 3.0
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VAL_CLIP_QPS = (22, 27, 32, 37, 42, 47)
SEGMENT = 8  # frames per coded clip segment
CROPS_PER_SEGMENT = 4
MAX_CLIP_FRAMES = 300  # the segments start among a clip's first frames
Pair = tuple[np.ndarray, np.ndarray, float]  # original crop, its decode, QP or quality level


def photo_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}")
    return paths


def training_photos(folder: Path, val_every: int) -> list[Path]:
    """The photos of ``folder`` (sorted by name), at least ``val_every`` so that one
    validates; Kodak's (``kodim*``) are refused, Kodak being the test set."""
    paths = photo_paths(folder)
    if len(paths) < val_every:
        raise FileNotFoundError(f"need at least {val_every} photos in {folder}, one to validate")
    if any(p.name.lower().startswith("kodim") for p in paths):
        raise ValueError(f"{folder} holds Kodak pictures, the test set: never train on them")
    return paths


def held_out_photos(folder: Path, val_every: int = 10) -> list[Path]:
    """The photos of ``folder`` that validate (every ``val_every``-th, sorted by name)."""
    paths = training_photos(folder, val_every)
    return [p for i, p in enumerate(paths) if _held_out(i, val_every)]


def _held_out(index: int, val_every: int) -> bool:
    """Whether the ``index``-th photo (sorted by name) validates."""
    return index % val_every == val_every - 1


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _random_crop(img: Image.Image, crop: int, rng: np.random.Generator) -> Image.Image:
    """A ``crop``-pixel square of ``img`` rescaled by a random factor in [0.5, 1]."""
    scale = max(rng.uniform(0.5, 1.0), (crop + 2) / min(img.size))
    if scale < 1:
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.Resampling.LANCZOS)
    x = int(rng.integers(0, img.width - crop + 1))
    y = int(rng.integers(0, img.height - crop + 1))
    return img.crop((x, y, x + crop, y + crop))


def add_grain(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """``img`` plus Gaussian noise of std ``sigma``, each channel's own, correlated between
    neighbouring pixels as a scan's grain is (a [1, 2, 1] blur, rescaled to std ``sigma``)."""
    noise = rng.standard_normal((img.height + 2, img.width + 2, 3))
    taps = np.array([1.0, 2.0, 1.0]) / np.sqrt(6.0)  # unit gain in power
    noise = sum(t * noise[i : i + img.height] for i, t in enumerate(taps))
    noise = sum(t * noise[:, i : i + img.width] for i, t in enumerate(taps))
    out = np.asarray(img, np.float64) + sigma * noise
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _pair(crop: Image.Image, quality: int, chroma: str) -> Pair:
    dec = heic.decode(heic.encode(crop, quality, chroma))
    return np.asarray(crop), np.asarray(dec), heic.quality_to_qp(quality)


def _photo_pairs(
    paths: list[Path],
    desc: str,
    val_every: int,
    crop: int,
    crops_per_image: int,
    rng: np.random.Generator,
    train_pair: Callable[[Image.Image], Pair],
    val_pairs: Callable[[Image.Image], list[Pair]],
) -> tuple[list[Pair], list[Pair]]:
    """(training, validation) pairs of the photos: ``crops_per_image`` calls of
    ``train_pair`` on each training photo (it crops and codes), and ``val_pairs`` of
    ``VAL_CROPS`` random crops of each held-out photo."""
    train, val = [], []
    for i, path in enumerate(tqdm(paths, desc=desc)):
        img = _open_rgb(path)
        if _held_out(i, val_every):
            for _ in range(VAL_CROPS):
                val += val_pairs(_random_crop(img, crop, rng))
        else:
            train += [train_pair(img) for _ in range(crops_per_image)]
    return train, val


def _clip_pairs(
    path: Path,
    count: int,
    crop: int,
    rng: np.random.Generator,
    workdir: Path,
    qps: tuple[int, ...] | None = None,
) -> list[Pair]:
    """``count`` random crops of frames of the clip ``path`` and of their libx265 decodes,
    the segments coded at random QPs 22..47, or ``count`` crops at each QP of ``qps``.

    The frames are first brought to limited-range BT.601 ``yuv420p`` (what the encoder
    codes, and how an HEVC decode is converted back to RGB), so that both sides of a pair
    are converted alike and differ by the coding only.
    """
    import av

    with av.open(str(path)) as inp:
        frames = [to_yuv420(to_rgb(f)) for f in islice(inp.decode(video=0), MAX_CLIP_FRAMES)]
    if len(frames) < SEGMENT or min(frames[0].height, frames[0].width) < crop:
        return []
    if qps is None:
        return _segment_pairs(frames, count, crop, rng, workdir)
    return [p for qp in qps for p in _segment_pairs(frames, count, crop, rng, workdir, qp)]


def _segment_pairs(
    frames: list,
    count: int,
    crop: int,
    rng: np.random.Generator,
    workdir: Path,
    qp: int | None = None,
) -> list[Pair]:
    """``count`` crops (``CROPS_PER_SEGMENT`` per segment) of the frames of random
    ``SEGMENT``-frame segments of ``frames`` coded by libx265 at ``qp``, or each segment at
    a random QP 22..47."""
    from . import x265

    h, w = frames[0].height, frames[0].width
    pairs = []
    coded = workdir / "segment.mp4"
    while len(pairs) < count:
        start = int(rng.integers(0, len(frames) - SEGMENT + 1))
        segment_qp = int(rng.integers(22, 48)) if qp is None else qp
        segment = frames[start : start + SEGMENT]
        x265.encode(segment, segment_qp, coded)
        decoded = x265.decode(coded)
        for i in rng.choice(np.arange(1, SEGMENT), CROPS_PER_SEGMENT, replace=False):
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            box = (slice(y, y + crop), slice(x, x + crop))
            orig = to_rgb(segment[i], full_range=False)[box]
            dec = to_rgb(decoded[i], full_range=False)[box]
            pairs.append((orig, dec, float(segment_qp)))
    coded.unlink(missing_ok=True)
    return pairs[:count]


def _save(path: Path, pairs: list[Pair]) -> None:
    orig, dec, qp = zip(*pairs, strict=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, orig=np.stack(orig), dec=np.stack(dec), qp=np.asarray(qp, np.float32))
    tmp.replace(path)


def _is_built(cache: Path, stamp: dict) -> bool:
    """Whether ``cache`` holds pairs made with the settings ``stamp``."""
    stamp_path = Path(cache) / "settings.json"
    return stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp


def _write(cache: Path, train: list, val: list, stamp: dict) -> None:
    """Save the pairs, then the settings that made them (last: a cut-off build is redone)."""
    _save(cache / "train.npz", train)
    _save(cache / "val.npz", val)
    (cache / "settings.json").write_text(json.dumps(stamp))


def build(
    photos: Path,
    cache: Path,
    crops_per_image: int = 16,
    crop: int = 256,
    val_every: int = 10,
    share_420: float = 0.2,
    seed: int = 0,
    clips: Path | None = None,
    crops_per_clip: int = 24,
    clip_holdout: int = 0,
    grain_share: float = 0.0,
) -> None:
    """Write the training and validation pairs into ``cache`` unless they are there already
    (the photos' HEIC pairs, ``share_420`` of them 4:2:0, and the held-out photos' pairs in
    4:2:0 too when that is most of them; plus ``crops_per_clip`` video pairs per clip in
    ``clips``, and with ``clip_holdout`` n, ``CROPS_PER_SEGMENT`` pairs per QP of every n-th
    clip for validation).  ``grain_share`` of the photo crops get grain (:func:`add_grain`,
    std uniform in ``GRAIN_SIGMA``), and with any, every held-out crop also validates with
    grain of std ``VAL_GRAIN_SIGMA``."""
    cache = Path(cache)
    stamp = {
        "photos": str(photos),
        "crops": crops_per_image,
        "crop": crop,
        "val_every": val_every,
        "share_420": share_420,
        "seed": seed,
        "clips": None if clips is None else str(clips),
        "crops_per_clip": crops_per_clip,
    }
    # absent unless set, so that caches made before they existed still match
    stamp |= {k: v for k, v in (("clip_holdout", clip_holdout), ("grain", grain_share)) if v}
    if _is_built(cache, stamp):
        return
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def train_pair(img: Image.Image) -> Pair:
        chroma = "420" if rng.random() < share_420 else "444"
        c = _random_crop(img, crop, rng)
        if grain_share and rng.random() < grain_share:
            c = add_grain(c, rng.uniform(*GRAIN_SIGMA), rng)
        return _pair(c, int(rng.integers(0, 51)), chroma)

    val_chroma = "420" if share_420 > 0.5 else "444"

    def val_pairs(c: Image.Image) -> list[Pair]:
        crops = [c, add_grain(c, VAL_GRAIN_SIGMA, rng)] if grain_share else [c]
        return [_pair(v, q, val_chroma) for v in crops for q in VAL_QUALITIES]

    paths = training_photos(photos, val_every)
    train, val = _photo_pairs(
        paths, "coding HEIC pairs", val_every, crop, crops_per_image, rng, train_pair, val_pairs
    )
    if clips is not None:
        suffixes = VIDEO_SUFFIXES - {RAW_SUFFIX}  # raw .yuv needs a size and rate given
        clip_paths = sorted(p for p in Path(clips).iterdir() if p.suffix.lower() in suffixes)
        for i, path in enumerate(tqdm(clip_paths, desc="coding x265 clip pairs")):
            if clip_holdout and _held_out(i, clip_holdout):
                val += _clip_pairs(path, CROPS_PER_SEGMENT, crop, rng, cache, VAL_CLIP_QPS)
            else:
                train += _clip_pairs(path, crops_per_clip, crop, rng, cache)
    _write(cache, train, val, stamp)


def build_lcodec(
    photos: Path,
    cache: Path,
    crops_per_image: int = 16,
    crop: int = 256,
    val_every: int = 10,
    seed: int = 0,
    codec_weights: Path | None = None,
) -> None:
    """Write our codec's training and validation pairs into ``cache`` unless they are there
    already: ``crops_per_image`` crops of each training photo coded and decoded by the codec
    (``codec_weights``, default: the shipped one) at a random quality level, and
    ``VAL_CROPS`` crops of each held-out photo at every quality level."""
    model = codec.load_model(codec_weights)
    cache = Path(cache)
    stamp = {
        "source": "lcodec",
        "photos": str(photos),
        "crops": crops_per_image,
        "crop": crop,
        "val_every": val_every,
        "seed": seed,
        "codec": f"{model.model_id} {model.digest.hex()}",
    }
    if _is_built(cache, stamp):
        return
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = training_photos(photos, val_every)

    def pair(c: Image.Image, quality: int) -> Pair:
        orig = np.asarray(c)
        return orig, model.decode_array(model.encode(orig, quality=quality))[1], float(quality)

    def train_pair(img: Image.Image) -> Pair:
        c = _random_crop(img, crop, rng)
        return pair(c, int(rng.integers(1, model.qualities + 1)))

    def val_pairs(c: Image.Image) -> list[Pair]:
        return [pair(c, q) for q in range(1, model.qualities + 1)]

    train, val = _photo_pairs(
        paths, "coding lcodec pairs", val_every, crop, crops_per_image, rng, train_pair, val_pairs
    )
    _write(cache, train, val, stamp)


def load(cache: Path, split: str) -> dict[str, np.ndarray]:
    """The ``train`` or ``val`` pairs of a cache folder written by :func:`build`."""
    with np.load(Path(cache) / f"{split}.npz") as f:
        return {k: f[k] for k in ("orig", "dec", "qp")}
