"""Errors of :mod:`codec` that callers catch without loading the models (PyTorch), and
checks that raise them."""

from __future__ import annotations

from numbers import Integral


class WeightsError(Exception):
    """Weights file missing, unreadable or not one of ours."""


def check_quality(quality: int, qualities: int) -> int:
    """``quality`` as an int; ValueError unless it is a whole number in 1..``qualities``."""
    if not isinstance(quality, Integral) or not 1 <= quality <= qualities:
        raise ValueError(f"quality must be an integer in 1..{qualities}")
    return int(quality)
