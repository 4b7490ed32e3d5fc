"""The forecaster contract shared by every model of counts per location.

``fit(history)`` learns from a (period × location) table of counts that ends at the last
observed period, NaN where a period is missing; ``predict(history, steps, levels)``
returns quantiles of shape (locations, steps, levels), ``steps`` counted from the last
row of ``history``. Forecasts are never negative and increase across levels; a location
with too little history gets NaN. ``refit_every`` says how many consecutive forecast
dates may share one fit (models refitted less often than weekly still see only data up
to the date they were fitted on).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class Forecaster:
    """Base class: subclasses implement ``predict`` and, where they learn, ``fit``."""

    min_history = 6
    refit_every = 1

    def fit(self, history: pd.DataFrame) -> Forecaster:
        """Learn from ``history``; the default forecaster learns nothing ahead of time."""
        return self

    def predict(self, history: pd.DataFrame, steps: list[int], levels: np.ndarray) -> np.ndarray:
        """Quantiles (locations × steps × levels) after the last row of ``history``."""
        raise NotImplementedError


def observed(column: pd.Series) -> np.ndarray:
    """The observed (non-missing) counts of one location, in time order."""
    return column.dropna().to_numpy(dtype=float)


def finish_quantiles(quantiles: np.ndarray) -> np.ndarray:
    """Non-negative and non-decreasing across levels (the last axis); NaN stays NaN."""
    return np.sort(np.maximum(quantiles, 0.0), axis=-1)
