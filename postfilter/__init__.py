"""Decoder-side enhancement networks: artefact removal for HEVC/HEIC decodes.

``enhance(image, qp=None)`` restores a decoded picture with the shipped post-filter
(``weights/hevc-artifacts-v1.safetensors``); without ``qp`` it estimates the coding
strength from the picture (blind mode).  ``lcodec enhance`` (``cli/enhance.py``) runs it on
pictures, HEIC files and videos.
"""

from .api import PostFilter, enhance, load_filter
from .weights import DEFAULT_WEIGHTS, PostFilterError

__all__ = ["DEFAULT_WEIGHTS", "PostFilter", "PostFilterError", "enhance", "load_filter"]
