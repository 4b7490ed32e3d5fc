"""Survival curves of any log-hazard model: Breslow's baseline hazard.

A model whose ``predict`` returns a log hazard ratio (DeepSurv, gradient-boosted Cox)
fits the baseline once on its training rows with :meth:`BreslowCurves._fit_baseline`
and then gives ``S(t | x) = exp(-H0(t) exp(f(x)))``.

Examples
--------
>>> import numpy as np
>>> class Constant(BreslowCurves):
...     def predict(self, X):
...         return np.zeros(len(X))
>>> model = Constant()
>>> model._fit_baseline(np.zeros(4), np.array([1.0, 2.0, 2.0, 3.0]),
...                     np.array([True, True, False, True]))
>>> model.unique_times_.tolist(), model.predict_survival_function(np.zeros((1, 1))).round(3)
([1.0, 2.0, 3.0], array([[0.779, 0.558, 0.205]]))
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BreslowCurves:
    """Mixin: ``unique_times_`` and ``predict_survival_function`` from ``predict``."""

    def _fit_baseline(self, log_hazard: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        """Breslow's cumulative baseline hazard at the training event times."""
        offset = float(np.max(log_hazard))
        risk = np.exp(log_hazard - offset)
        order = np.argsort(time, kind="stable")
        at_risk = np.cumsum(risk[order][::-1])[::-1]
        times = np.unique(time[event])
        first = np.searchsorted(time[order], times, side="left")
        deaths = np.bincount(np.searchsorted(times, time[event]), minlength=times.size)
        self.unique_times_ = times
        self.baseline_cumulative_hazard_ = np.cumsum(deaths / at_risk[first])
        self.baseline_offset_ = offset

    def predict_survival_function(self, X: Any, return_array: bool = True) -> np.ndarray:
        """Survival probability of each row at ``unique_times_`` (arrays only)."""
        if not return_array:
            raise ValueError(f"{type(self).__name__} gives survival curves as arrays only")
        relative = np.exp(self.predict(X) - self.baseline_offset_)
        return np.exp(-relative[:, None] * self.baseline_cumulative_hazard_[None, :])
