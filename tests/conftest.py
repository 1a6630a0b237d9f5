"""Shared fixtures: a tiny model exported like the real one, and small test pictures.

The tiny model has random weights: it exercises the format, the coder and the
CLI exactly as the shipped model does, in a fraction of the time.  Tests of the
shipped model itself are in test_shipped_model.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from codec import Codec, ImportanceCodec, ModelConfig
from codec.zoo import export_weights

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like (smooth plus a little noise) uint8 RGB array."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(3 * xx + c) + np.cos(4 * yy - c) for c in range(3)], axis=-1)
    img = 128 + 60 * base + rng.normal(0, 8, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8)


def write_photos(folder: Path, count: int, h: int, w: int, name: str = "p{i}.png") -> Path:
    """``count`` smooth test photos (seeds 0..count-1) saved as ``folder``/``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(smooth_image(h, w, seed=i)).save(folder / name.format(i=i, n=i + 1))
    return folder


def decode_with_threads(model: Codec, data: bytes, threads: int) -> np.ndarray:
    """Decoded pixels with ``threads`` torch threads (restored afterwards)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        return model.decode_array(data)[1]
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = ImportanceCodec(ModelConfig(n=16, m=32, nz=16, nh=16, levels=8))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    export_weights(net, path, model_id="tiny-test")
    return path


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights) -> Codec:
    return Codec(tiny_weights)


@pytest.fixture
def photo() -> Image.Image:
    return Image.fromarray(smooth_image(70, 90))
