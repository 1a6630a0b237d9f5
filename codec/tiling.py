"""Cutting pictures and latents into pieces the networks code alike, shared by the image
coder, the P-frame coder and encoder-side refinement."""

from __future__ import annotations

import numpy as np

LATENT_STRIDE = 16  # pixels per latent position (z: 4 times more)
MARGIN = 4  # latent rows/columns of context on each side (covers the receptive field)


def pad_edges(rgb: np.ndarray, align: int) -> np.ndarray:
    """``rgb`` (H, W, C) padded at the bottom and right, by repeating its edge, to
    multiples of ``align``."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, -h % align), (0, -w % align), (0, 0)), mode="edge")


def bands(length: int, size: int) -> list[tuple[int, int, int, int]]:
    """Split ``length`` latent rows (or columns) into pieces of ``size``: for each, its
    (first, end) and the (first, end) of the piece with :data:`MARGIN` of context."""
    return [
        (r0, min(length, r0 + size), max(0, r0 - MARGIN), min(length, r0 + size + MARGIN))
        for r0 in range(0, length, size)
    ]
