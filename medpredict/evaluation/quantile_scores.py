"""Scores of quantile forecasts: the weighted interval score (WIS) and interval coverage.

The WIS of Bracher et al. (2021, PLoS Comput Biol 17:e1008618) for a median and K
central intervals equals twice the mean pinball loss over the 2K + 1 quantile levels,
which is how it is computed here; with FluSight's 23 levels it is the hub's score.

Examples
--------
>>> import numpy as np
>>> levels = np.array([0.25, 0.5, 0.75])
>>> weighted_interval_score(np.array([10.0]), np.array([[8.0, 10.0, 12.0]]), levels).round(3)
array([0.667])
>>> interval_coverage(np.array([10.0, 20.0]), np.array([[8, 10, 12], [8, 10, 12.0]]),
...                   levels, 0.5)
array([ True, False])
"""

from __future__ import annotations

import numpy as np

FLUSIGHT_LEVELS = (
    0.01, 0.025, *(round(0.05 * k, 2) for k in range(1, 20)), 0.975, 0.99,
)


def check_levels(levels: np.ndarray) -> None:
    """Refuse quantile levels that are not increasing, symmetric and centred on 0.5."""
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or levels.size == 0 or np.any(np.diff(levels) <= 0):
        raise ValueError("quantile levels must be a non-empty increasing list")
    if levels[0] <= 0 or levels[-1] >= 1:
        raise ValueError("quantile levels must lie strictly between 0 and 1")
    if not np.allclose(levels + levels[::-1], 1.0) or not np.any(np.isclose(levels, 0.5)):
        raise ValueError("quantile levels must be symmetric around a median (0.5)")


def pinball_loss(y: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Pinball loss per observation and level: ``quantiles`` is (n, levels)."""
    y = np.asarray(y, dtype=float)[:, None]
    quantiles = np.asarray(quantiles, dtype=float)
    return ((y < quantiles) - np.asarray(levels)[None, :]) * (quantiles - y)


def weighted_interval_score(
    y: np.ndarray, quantiles: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """WIS of each forecast (rows of ``quantiles``) against the observed ``y``."""
    return 2.0 * pinball_loss(y, quantiles, levels).mean(axis=1)


def interval_coverage(
    y: np.ndarray, quantiles: np.ndarray, levels: np.ndarray, width: float
) -> np.ndarray:
    """Whether each ``y`` lies in the central interval of nominal coverage ``width``."""
    levels = np.asarray(levels, dtype=float)
    low = np.flatnonzero(np.isclose(levels, (1 - width) / 2))
    high = np.flatnonzero(np.isclose(levels, (1 + width) / 2))
    if not low.size or not high.size:
        raise ValueError(f"no quantile levels bound a central {width:.0%} interval")
    y = np.asarray(y, dtype=float)
    return (quantiles[:, low[0]] <= y) & (y <= quantiles[:, high[0]])


def central_widths(levels: np.ndarray) -> list[float]:
    """Nominal coverages of the central intervals the levels define, narrowest first.

    Examples
    --------
    >>> central_widths(np.array([0.025, 0.25, 0.5, 0.75, 0.975]))
    [0.5, 0.95]
    """
    levels = np.asarray(levels, dtype=float)
    return sorted(round(1 - 2 * float(t), 6) for t in levels if t < 0.5)
