"""lcodec: a learned image codec.

Quick use::

    import codec
    data = codec.encode("photo.png", quality=4)   # bytes of an lcodec file
    image = codec.decode(data)                    # PIL.Image (RGB, or L for grayscale)

To code many pictures, load the model once: ``model = codec.load_model()`` and
call ``model.encode`` / ``model.decode``.  ``encode`` takes a path, a PIL image
or a ``uint8`` array (H, W[, 3|4]), read as viewers show it (:mod:`codec.image`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import WeightsError
from .image import ImageError

if TYPE_CHECKING:
    from .coder import Codec
    from .model import ImportanceCodec, ModelConfig

__all__ = [
    "Codec",
    "ImageError",
    "ImportanceCodec",
    "ModelConfig",
    "WeightsError",
    "decode",
    "encode",
    "load_model",
]


def __getattr__(name: str):
    """The model classes, imported on first use: they load PyTorch, which takes seconds
    that ``lcodec info`` should not pay."""
    if name == "Codec":
        from .coder import Codec

        return Codec
    if name in ("ImportanceCodec", "ModelConfig"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(weights: str | Path | None = None, progress: bool = False) -> Codec:
    """Load a model (default: the shipped one) to code many pictures."""
    from .coder import Codec

    return Codec(weights, progress=progress)


@lru_cache(maxsize=1)
def _default() -> Codec:
    from .coder import Codec

    return Codec()


def encode(
    image: Image.Image | np.ndarray | str | Path,
    quality: int | None = None,
    target_bpp: float | None = None,
    downscale: int | None = None,
    refine: int = 0,
) -> bytes:
    """Encode with the shipped model; see :meth:`Codec.encode`."""
    return _default().encode(
        image, quality=quality, target_bpp=target_bpp, downscale=downscale, refine=refine
    )


def decode(data: bytes) -> Image.Image:
    """Decode with the shipped model; see :meth:`Codec.decode`."""
    return _default().decode(data)
