"""Decoder-side enhancement networks: artefact removal, denoising, super-resolution, deblurring.

``enhance(image, qp=None)`` restores a decoded picture with the shipped post-filter
(``weights/hevc-artifacts-v1.safetensors``); without ``qp`` it estimates the coding
strength from the picture (blind mode).  ``denoise(image, sigma=None)``,
``super_resolve(image, scale)`` and ``deblur(image, blur_sigma, sigma=0.0)`` run the
restoration networks (``weights/<task>-v1.safetensors``, :mod:`postfilter.restore_api`).
``lcodec enhance`` (``cli/enhance.py``) runs them on pictures, HEIC files and videos.
"""

from .api import PostFilter, enhance, load_filter
from .restore_api import RestoreRunner, deblur, denoise, load_runner, super_resolve
from .weights import DEFAULT_WEIGHTS, RESTORE_WEIGHTS, PostFilterError

__all__ = [
    "DEFAULT_WEIGHTS",
    "RESTORE_WEIGHTS",
    "PostFilter",
    "PostFilterError",
    "RestoreRunner",
    "deblur",
    "denoise",
    "enhance",
    "load_filter",
    "load_runner",
    "super_resolve",
]
