"""Decoder-side enhancement networks: artefact removal, denoising, super-resolution, deblurring.

``enhance(image, qp=None)`` restores an HEVC/HEIC decode with the shipped post-filter
(``DEFAULT_WEIGHTS``); without ``qp`` the filter's strength estimator reads the QP off the
picture (blind mode; ``heif_qp(data)`` reads it off an HEIC file instead); videos get the
filter of 4:2:0 video decodes (``VIDEO_WEIGHTS``, ``filter_for("qp", video=True)``).
``decode_enhanced(data)`` decodes an ``.lcf`` file and restores it with the filter of our
codec's decodes (``weights/lcodec-artifacts-v2``), told the file's quality level.
``denoise(image, sigma=None)``, ``super_resolve(image, scale)`` and
``deblur(image, blur_sigma, sigma=0.0)`` run the restoration networks
(``weights/<task>-v1.safetensors``, :mod:`postfilter.restore_api`).  ``lcodec enhance``
(``cli/enhance.py``) runs them on pictures, HEIC files and videos.
"""

from .api import PostFilter, decode_enhanced, enhance, filter_for, load_filter
from .hevc import heif_qp
from .restore_api import RestoreRunner, deblur, denoise, load_runner, super_resolve
from .weights import (
    DEFAULT_WEIGHTS,
    LCODEC_WEIGHTS,
    RESTORE_WEIGHTS,
    VIDEO_WEIGHTS,
    PostFilterError,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "LCODEC_WEIGHTS",
    "RESTORE_WEIGHTS",
    "VIDEO_WEIGHTS",
    "PostFilter",
    "PostFilterError",
    "RestoreRunner",
    "deblur",
    "decode_enhanced",
    "denoise",
    "enhance",
    "filter_for",
    "heif_qp",
    "load_filter",
    "load_runner",
    "super_resolve",
]
