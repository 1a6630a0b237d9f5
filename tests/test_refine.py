"""Encoder-side refinement: it lowers the rate-distortion cost of the file, tile by tile
too, and the file stays an ordinary one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import refine as refine_module
from codec.refine import rd_cost

from .conftest import decode_with_threads

PHOTO = Path(__file__).parent / "data" / "postfilter_wiki_003_crop.png"


@pytest.fixture(scope="module")
def model() -> codec.Codec:
    return codec.load_model()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))[:112, :144].copy()


def file_cost(model: codec.Codec, img: np.ndarray, data: bytes, quality: int) -> float:
    """The training loss of a file: its bits per pixel + lambda * 255^2 * MSE."""
    out = decode_with_threads(model, data, 2).astype(np.float64)
    mse = np.mean((out - img) ** 2) / 255**2
    return len(data) * 8 / img[..., 0].size + model.config.lambdas[quality - 1] * 255**2 * mse


def padded_input(model: codec.Codec, img: np.ndarray) -> torch.Tensor:
    a = model.net.ALIGN
    rgb = np.pad(img, ((0, -img.shape[0] % a), (0, -img.shape[1] % a), (0, 0)), mode="edge")
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("tile", [refine_module.TILE, 4])
def test_refined_latent_costs_less(model, photo, monkeypatch, tile):
    monkeypatch.setattr(refine_module, "TILE", tile)  # 4: 16 tiles, with margins
    x = padded_input(model, photo)
    weight = torch.zeros((1, 1, *x.shape[2:]))
    weight[:, :, : photo.shape[0], : photo.shape[1]] = 1
    with torch.no_grad():
        start = model.net.g_a(x)
        refined = refine_module.refine(model.net, start, x, photo.shape[:2], 4, steps=10)
        before = rd_cost(model.net, start, x, weight, 4).item()
        after = rd_cost(model.net, refined, x, weight, 4).item()
    assert refined.shape == start.shape
    assert after < 0.97 * before  # 6.5% lower in 10 steps (5.5% in tiles), 15-30% in 50


def test_refined_file_is_smaller_for_the_same_cost(model, photo):
    plain = model.encode(photo, quality=5)
    refined = model.encode(photo, quality=5, refine=10)
    assert refined != plain
    assert file_cost(model, photo, refined, 5) < file_cost(model, photo, plain, 5)
    one = decode_with_threads(model, refined, 1)
    assert np.array_equal(one, decode_with_threads(model, refined, 2))
    assert model.encode(photo, quality=5, refine=10) == refined  # repeatable


def test_refine_with_target_bpp_and_downscale(model, photo):
    budget = len(model.encode(photo, quality=4)) * 8 / photo[..., 0].size
    data = model.encode(photo, target_bpp=budget, refine=3)
    assert len(data) * 8 / photo[..., 0].size <= budget
    small = model.encode(photo, quality=4, downscale=2, refine=3)
    assert model.decode(small).size == (photo.shape[1], photo.shape[0])


@pytest.mark.parametrize("steps", [-1, 2.5, "10"])
def test_bad_refine_steps(tiny_codec, steps):
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="refine"):
        tiny_codec.encode(img, quality=1, refine=steps)
