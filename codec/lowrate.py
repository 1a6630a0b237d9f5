"""Low-rate mode: code the picture downscaled by 2 or 4, super-resolve the decode.

At very low rates the codec spends its few bits better on a smaller picture; the decoder
restores the size with a super-resolution network of :mod:`postfilter.restore` (``sr2`` or
``sr4``).  The file records the factor (header flags) and names the network (section
``UPSC``: its model id and weights digest), so a file never decodes through another network.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

from bitstream import BitstreamError

from .determinism import one_thread

TAG_UPSCALER = b"UPSC"
FACTORS = (1, 2, 4)  # full size first: ``--target-bpp`` tries them in this order


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """HxWx3 uint8 -> ceil(H/factor) x ceil(W/factor), edge-padded then bicubic (Pillow),
    the degradation the super-resolution networks were trained on."""
    from postfilter.restore import bicubic_downscale

    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % factor), (0, -w % factor), (0, 0)), mode="edge")
    return bicubic_downscale(padded, factor)


class Upscaler:
    """A super-resolution network for one factor, and how files name it."""

    def __init__(self, factor: int, weights: Path | str | None = None) -> None:
        from postfilter.restore_api import load_runner
        from postfilter.weights import RESTORE_WEIGHTS

        path = Path(weights) if weights is not None else RESTORE_WEIGHTS[f"sr{factor}"]
        self.runner = load_runner(str(path))
        if self.runner.scale != factor:
            raise ValueError(f"{path} upscales by {self.runner.scale}, not {factor}")
        self.factor = factor
        self.model_id: str = self.runner.model_id
        self.digest = hashlib.sha256(path.read_bytes()).digest()[:8]

    def section(self) -> bytes:
        """The ``UPSC`` payload: id length (u8), model id (ASCII), weights digest (8 bytes)."""
        model_id = self.model_id.encode("ascii")
        return struct.pack("<B", len(model_id)) + model_id + self.digest

    def check(self, payload: bytes) -> None:
        """Raise :class:`BitstreamError` unless ``payload`` names this network."""
        if payload != self.section():
            raise BitstreamError(
                f"file needs another super-resolution network than {self.model_id} "
                f"({self.digest.hex()})"
            )

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The ``factor`` times larger HxWx3 uint8 picture."""
        with one_thread():
            return self.runner(rgb)
