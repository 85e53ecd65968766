"""Small fits shared by the experiments: power laws on log-log axes."""

from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent p of ``y ∝ x^p``.

    Fitting logs weighs every point by its relative error, which is what a power law needs: an
    ordinary fit of ``y`` would be decided by the largest values alone.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"loglog_slope: expected two or more (x, y) pairs, got {x.size}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_slope: expected positive x and y (they are logged)")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)


def loglog_line(x, y):
    """``(slope, intercept)`` of the same fit, for drawing the fitted line."""
    slope, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(slope), float(intercept)
