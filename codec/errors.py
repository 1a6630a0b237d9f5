"""Errors of :mod:`codec` that callers catch without loading the models (PyTorch)."""

from __future__ import annotations


class WeightsError(Exception):
    """Weights file missing, unreadable or not one of ours."""
