"""Bjontegaard deltas between two rate-distortion curves, with PCHIP interpolation.

PCHIP (monotone piecewise-cubic) replaces Bjontegaard's cubic polynomial fit, as the JVET
common-test-condition spreadsheets do: it never overshoots between points and works with
curves of any number (>= 2) of points.  Rates are compared in the log domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _pchip(x: Sequence[float], y: Sequence[float]) -> PchipInterpolator | None:
    """Interpolant of y(x) over the points sorted by x (duplicate x dropped); None if < 2."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    xa, first = np.unique(xa, return_index=True)  # sorted, unique
    if len(xa) < 2:
        return None
    return PchipInterpolator(xa, ya[first])


def _mean_gap(f_ref: PchipInterpolator | None, f_test: PchipInterpolator | None) -> float | None:
    """Mean of f_test - f_ref over the x range both cover; None if they do not overlap."""
    if f_ref is None or f_test is None:
        return None
    lo = max(f_ref.x[0], f_test.x[0])
    hi = min(f_ref.x[-1], f_test.x[-1])
    if not hi > lo:
        return None
    return float((f_test.integrate(lo, hi) - f_ref.integrate(lo, hi)) / (hi - lo))


def bd_rate(
    ref_rate: Sequence[float],
    ref_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Average rate difference of test vs reference at equal quality, in percent.

    Negative means the test codec needs fewer bits.  Quality is PSNR (or MS-SSIM in dB); the
    average is taken over the quality range both curves cover (None if they do not overlap).
    """
    f_ref = _pchip(ref_quality, np.log(np.asarray(ref_rate, dtype=np.float64)))
    f_test = _pchip(test_quality, np.log(np.asarray(test_rate, dtype=np.float64)))
    gap = _mean_gap(f_ref, f_test)
    return None if gap is None else 100.0 * (np.exp(gap) - 1.0)


def bd_psnr(
    ref_rate: Sequence[float],
    ref_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Average quality difference of test vs reference at equal rate (dB; positive = better).

    Averaged over the log-rate range both curves cover (None if they do not overlap).
    """
    f_ref = _pchip(np.log(np.asarray(ref_rate, dtype=np.float64)), ref_quality)
    f_test = _pchip(np.log(np.asarray(test_rate, dtype=np.float64)), test_quality)
    return _mean_gap(f_ref, f_test)
