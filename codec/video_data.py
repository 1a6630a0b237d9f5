"""Training sequences for the P-frame model: consecutive frames of real clips, and synthetic
camera motion (pans, zooms, small rotations) over photos.

Clips are decoded once with PyAV (:class:`codec.video_io.ClipReader`), downscaled and
cached as ``.npy`` files, so later runs start in seconds.  A sequence is a float tensor
``(frames, 3, crop, crop)`` in [0, 1].
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .video_io import VIDEO_SUFFIXES, ClipReader


def load_clips(
    folder: Path, cache: Path, crop: int, scale: float = 0.5, max_frames: int = 300
) -> list[Tensor]:
    """The first ``max_frames`` frames of every clip in ``folder`` as uint8 ``(T, H, W, 3)``
    tensors, downscaled by ``scale`` (less when that would make a side shorter than
    ``crop``); cached in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    clips = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
        cached = cache / f"{path.stem}-s{scale}-c{crop}-f{max_frames}.npy"
        if not cached.is_file():
            frames = decode_clip(path, crop, scale, max_frames)
            np.save(cached.with_suffix(".tmp.npy"), frames)
            cached.with_suffix(".tmp.npy").replace(cached)
        clips.append(torch.from_numpy(np.load(cached)))
    return clips


def decode_clip(path: Path, crop: int, scale: float, max_frames: int) -> np.ndarray:
    """The first ``max_frames`` RGB frames of a clip, downscaled by ``scale`` (less where a
    side would fall under ``crop``), as uint8 ``(T, H, W, 3)``."""
    frames = []
    with ClipReader(path) as clip:
        s = max(scale, crop / min(clip.width, clip.height))
        size = (round(clip.height * s), round(clip.width * s))
        for rgb in clip:
            x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
            if s != 1:
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
            frames.append(x[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
            if len(frames) == max_frames:
                break
    return np.stack(frames)


def clip_sequence(clips: list[Tensor], frames: int, crop: int, rng: random.Random) -> Tensor:
    """``frames`` consecutive frames (every frame or every other one) of a random crop of a
    random clip, maybe mirrored and played backwards."""
    stride = rng.choice((1, 2))
    usable = [c for c in clips if c.shape[0] > (frames - 1) * stride]
    clip = usable[rng.randrange(len(usable))]
    t, h, w, _ = clip.shape
    start = rng.randrange(t - (frames - 1) * stride)
    top, left = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
    seq = clip[start : start + frames * stride : stride, top : top + crop, left : left + crop]
    seq = seq.permute(0, 3, 1, 2).float().div(255.0)
    if rng.random() < 0.5:
        seq = seq.flip(3)
    if rng.random() < 0.5:
        seq = seq.flip(0)
    return seq


def synthetic_sequence(
    photos: list[Tensor], frames: int, crop: int, rng: random.Random, max_shift: float = 6.0
) -> tuple[Tensor, Tensor]:
    """A camera moving over a photo: per frame a shift of up to ``max_shift`` pixels, a zoom
    of up to 3% and a rotation of up to 1 degree, each constant over the sequence.

    Returns the frames and the true backward flows ``(frames - 1, 2, crop, crop)`` from
    each frame to the one before it (see :mod:`codec.flow`).
    """
    photo = photos[rng.randrange(len(photos))]
    region = 2 * crop
    _, h, w = photo.shape
    top, left = rng.randrange(h - region + 1), rng.randrange(w - region + 1)
    src = photo[:, top : top + region, left : left + region].float().div(255.0).unsqueeze(0)
    vx, vy = (rng.uniform(-max_shift, max_shift) / crop for _ in range(2))
    zoom, spin = rng.uniform(-0.03, 0.03), math.radians(rng.uniform(-1.0, 1.0))
    thetas = []
    for t in range(frames):
        a, angle = 0.5 * math.exp(zoom * t), spin * t
        cos, sin = a * math.cos(angle), a * math.sin(angle)
        thetas.append([[cos, -sin, vx * t], [sin, cos, vy * t]])
    theta = torch.tensor(thetas, dtype=torch.float64)
    grid = F.affine_grid(theta, (frames, 3, crop, crop), align_corners=False)
    seq = F.grid_sample(src.expand(frames, -1, -1, -1), grid.float(), align_corners=False)
    # Frame t shows region point s = A_t u + b_t at its normalized position u; frame t - 1
    # shows it at u' = A_{t-1}^-1 (s - b_{t-1}); the flow is u' - u in pixels.
    matrix, offset = theta[:, :, :2], theta[:, :, 2]
    u = F.affine_grid(torch.eye(2, 3, dtype=torch.float64)[None], (1, 3, crop, crop), False)[0]
    flows = []
    for t in range(1, frames):
        s = u @ matrix[t].T + offset[t]
        u_prev = (s - offset[t - 1]) @ torch.linalg.inv(matrix[t - 1]).T
        flows.append(((u_prev - u) * (crop / 2)).permute(2, 0, 1))
    return seq.clamp(0, 1), torch.stack(flows).float()


class Sequences(NamedTuple):
    """A batch of sequences, with the true flows where they are known (synthetic motion)."""

    frames: Tensor  # (B, T, 3, H, W) in [0, 1]
    flows: Tensor  # (B, T - 1, 2, H, W); zeros where unknown
    known: Tensor  # (B,) bool: which items have true flows

    def to(self, device: torch.device) -> Sequences:
        return Sequences(*(x.to(device) for x in self))


def random_sequences(
    clips: list[Tensor],
    photos: list[Tensor],
    batch: int,
    frames: int,
    crop: int,
    rng: random.Random,
    synthetic: float = 0.5,
) -> Sequences:
    """``batch`` sequences of ``frames`` frames: each synthetic with probability ``synthetic``
    (always when there are no clips), else from a clip."""
    seqs, flows, known = [], [], []
    for _ in range(batch):
        is_synthetic = not clips or (photos and rng.random() < synthetic)
        if is_synthetic:
            seq, flow = synthetic_sequence(photos, frames, crop, rng)
        else:
            seq = clip_sequence(clips, frames, crop, rng)
            flow = seq.new_zeros(frames - 1, 2, crop, crop)
        seqs.append(seq)
        flows.append(flow)
        known.append(bool(is_synthetic))
    return Sequences(torch.stack(seqs), torch.stack(flows), torch.tensor(known))
