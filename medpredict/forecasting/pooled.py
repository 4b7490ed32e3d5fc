"""One LightGBM quantile model pooled across locations, on lags and season features.

Every (location, origin, step) with an observed target is a training row: the recent
trajectory on the ``log1p`` scale relative to the current level, the location's size,
the average change across locations, where the target period falls in the year and the
week (for daily counts), and the step ahead. The target is the change
in ``log1p`` count from the origin, so large and small locations share one model. A few
quantile levels are fitted directly (``fit_levels``); the others are interpolated on the
normal-score scale, which keeps the 23 FluSight levels cheap.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> dates = pd.date_range("2022-01-01", periods=120, freq="7D")
>>> wave = 50 + 40 * np.sin(np.arange(120) / 8)
>>> history = pd.DataFrame({c: rng.poisson(wave * k) for c, k in (("A", 1), ("B", 3))},
...                        index=dates).astype(float)
>>> model = PooledLightGBM(n_estimators=20).fit(history)
>>> model.predict(history, [1, 2], np.array([0.1, 0.5, 0.9])).shape
(2, 2, 3)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from medpredict.forecasting.base import Forecaster, finish_quantiles

LAGS = (1, 2, 3, 4)


class PooledLightGBM(Forecaster):
    """Quantile gradient boosting pooled over locations (synthetic data in the example)."""

    refit_every = 4

    def __init__(
        self,
        fit_levels: tuple[float, ...] = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975),
        n_estimators: int = 150,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 40,
        max_step: int = 4,
        cycle: int = 52,
        seed: int = 0,
    ) -> None:
        self.fit_levels = tuple(fit_levels)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_step = max_step
        self.cycle = cycle
        self.seed = seed

    def fit(self, history: pd.DataFrame) -> PooledLightGBM:
        from lightgbm import LGBMRegressor

        logs = np.log1p(history.to_numpy(dtype=float))
        features, targets = [], []
        for step in range(1, self.max_step + 1):
            origins = np.arange(max(LAGS), len(logs) - step)
            x = self._features(logs, history.index, origins, step)
            y = (logs[origins + step] - logs[origins]).ravel()
            keep = np.isfinite(y) & np.isfinite(x[:, 0])
            features.append(x[keep])
            targets.append(y[keep])
        x, y = np.concatenate(features), np.concatenate(targets)
        self.models_ = [
            LGBMRegressor(
                objective="quantile", alpha=level, n_estimators=self.n_estimators,
                learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                random_state=self.seed, n_jobs=1, verbose=-1,
            ).fit(x, y)
            for level in self.fit_levels
        ]
        self.n_rows_ = len(y)
        return self

    def predict(self, history: pd.DataFrame, steps: list[int], levels: np.ndarray) -> np.ndarray:
        logs = np.log1p(history.to_numpy(dtype=float))
        origin = np.array([len(logs) - 1])
        out = np.full((logs.shape[1], len(steps), len(levels)), np.nan)
        usable = np.isfinite(logs[-1]) & (np.isfinite(logs).sum(axis=0) >= self.min_history)
        for j, step in enumerate(steps):
            x = self._features(logs, history.index, origin, step)
            fitted = np.column_stack([m.predict(x) for m in self.models_])
            change = _interpolate(np.sort(fitted, axis=1), self.fit_levels, levels)
            out[:, j] = np.expm1(logs[-1][:, None] + change)
        out[~usable] = np.nan
        return finish_quantiles(out)

    def _features(
        self, logs: np.ndarray, dates: pd.DatetimeIndex, origins: np.ndarray, step: int
    ) -> np.ndarray:
        """Rows (origin × location) of features for predicting ``step`` periods ahead."""
        n_loc = logs.shape[1]
        level = logs[origins]
        columns = [level]
        columns += [level - logs[origins - lag] for lag in LAGS]
        with warnings.catch_warnings():  # all-missing windows give NaN features, as meant
            warnings.simplefilter("ignore", RuntimeWarning)
            recent = np.stack([logs[origins - k] for k in range(4)])
            columns.append(np.nanmean(recent, 0) - level)
            for lag in (1, 2):
                change = level - logs[origins - lag]
                everywhere = np.nanmean(change, axis=1)
                columns.append(np.repeat(everywhere[:, None], n_loc, axis=1))
            window = [logs[max(0, o - self.cycle): o + 1] for o in origins]
            columns.append(np.stack([np.nanmax(w, axis=0) for w in window]) - level)
            columns.append(np.stack([np.nanmean(logs[: o + 1], axis=0) for o in origins]))
        period = np.asarray(dates[0].to_numpy() + (dates[1] - dates[0]) * (origins + step))
        target = pd.DatetimeIndex(period)
        angle = 2 * np.pi * target.day_of_year.to_numpy() / 365.25
        for calendar in (np.sin(angle), np.cos(angle), target.day_of_week.to_numpy()):
            columns.append(np.repeat(calendar[:, None], n_loc, axis=1))
        columns.append(np.full_like(level, step))
        return np.stack([c.ravel() for c in columns], axis=1)


def _interpolate(
    fitted: np.ndarray, fit_levels: tuple[float, ...], levels: np.ndarray
) -> np.ndarray:
    """Quantiles at ``levels`` from those at ``fit_levels``, linear in normal scores."""
    z_fit, z = norm.ppf(fit_levels), norm.ppf(levels)
    out = np.empty((fitted.shape[0], len(levels)))
    for i, zi in enumerate(z):
        k = int(np.clip(np.searchsorted(z_fit, zi) - 1, 0, len(z_fit) - 2))
        w = (zi - z_fit[k]) / (z_fit[k + 1] - z_fit[k])
        out[:, i] = fitted[:, k] + w * (fitted[:, k + 1] - fitted[:, k])
    return out
