"""Per-location forecasters of counts: the FluSight baseline, seasonal naive, ETS, Theta, ARIMA.

Every forecaster follows one contract. ``fit(history)`` learns from a (period ×
location) table of counts that ends at the last observed period, NaN where a period is
missing; ``predict(history, steps, levels)`` returns quantiles of shape (locations,
steps, levels), ``steps`` counted from the last row of ``history``. Forecasts are never
negative and are increasing across levels. A location with too little history gets NaN.

The statistical models work on ``log1p`` counts, so intervals widen with the level of
activity and back-transformed quantiles stay quantiles. The ensemble is not here: it
averages the other models' quantiles (:func:`quantile_average`); pooled LightGBM is in
:mod:`medpredict.forecasting.pooled` and the names specs use in
:mod:`medpredict.forecasting.registry`.

Examples
--------
>>> import numpy as np, pandas as pd
>>> history = pd.DataFrame({"A": np.arange(1.0, 31.0)},
...                        index=pd.date_range("2024-01-06", periods=30, freq="7D"))
>>> levels = np.array([0.025, 0.5, 0.975])
>>> q = FluSightBaseline().fit(history).predict(history, [1, 2], levels)
>>> q.shape, q[0, 0, 1]
((1, 2, 3), np.float64(30.0))
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from medpredict.forecasting.base import Forecaster, finish_quantiles, observed
from medpredict.optional import require


class FluSightBaseline(Forecaster):
    """FluSight's baseline: a flat median at the last count, quantiles from past changes.

    The one-period changes of the whole history, symmetrised (each change and its
    negative), drive a random walk simulated ``n_paths`` times; quantiles below the
    median are rounded down and those above rounded up, then truncated at zero, as in
    the hub's own baseline (cdcepi/Flusight-baseline).
    """

    def __init__(self, n_paths: int = 10_000, seed: int = 0) -> None:
        self.n_paths = n_paths
        self.seed = seed

    def predict(self, history: pd.DataFrame, steps: list[int], levels: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        out = np.full((history.shape[1], len(steps), len(levels)), np.nan)
        for i, location in enumerate(history.columns):
            y = observed(history[location])
            if len(y) < self.min_history or np.isnan(history[location].iloc[-1]):
                continue
            changes = np.diff(y)
            changes = np.concatenate([changes, -changes])
            draws = changes[rng.integers(0, len(changes), (self.n_paths, max(steps)))]
            paths = np.maximum(y[-1] + np.cumsum(draws, axis=1), 0.0)
            q = np.quantile(paths[:, np.asarray(steps) - 1], levels, axis=0).T
            out[i] = np.where(levels < 0.5, np.floor(q), np.where(levels > 0.5, np.ceil(q), q))
            out[i][:, np.isclose(levels, 0.5)] = y[-1]
        return finish_quantiles(out)


class SeasonalNaive(Forecaster):
    """The count one seasonal cycle earlier, with quantiles from past seasonal errors."""

    def __init__(self, cycle: int = 52) -> None:
        self.cycle = cycle

    def predict(self, history: pd.DataFrame, steps: list[int], levels: np.ndarray) -> np.ndarray:
        out = np.full((history.shape[1], len(steps), len(levels)), np.nan)
        logs = np.log1p(history.to_numpy(dtype=float))
        n = len(logs)
        for i in range(logs.shape[1]):
            y = logs[:, i]
            errors = y[self.cycle:] - y[: n - self.cycle]
            errors = errors[~np.isnan(errors)]
            if len(errors) < self.min_history:
                continue
            spread = np.quantile(errors - np.median(errors), levels)
            for j, s in enumerate(steps):
                past = n - 1 + s - self.cycle
                if 0 <= past < n and not np.isnan(y[past]):
                    out[i, j] = np.expm1(y[past] + spread)
        return finish_quantiles(out)


# Two-sided alpha of a ±1 standard deviation interval.
_ONE_SD = 2 * norm.sf(1.0)


class _LogGaussian(Forecaster):
    """A per-location model on log1p counts whose forecasts are Gaussian on that scale."""

    def predict(self, history: pd.DataFrame, steps: list[int], levels: np.ndarray) -> np.ndarray:
        out = np.full((history.shape[1], len(steps), len(levels)), np.nan)
        z = norm.ppf(levels)
        horizon = max(steps)
        for i, location in enumerate(history.columns):
            column = history[location]
            if column.notna().sum() < self.min_history or np.isnan(column.iloc[-1]):
                continue
            y = np.log1p(column.interpolate(limit_area="inside").dropna().to_numpy(dtype=float))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    mean, se = self._forecast(y, horizon)
                except (np.linalg.LinAlgError, ValueError):
                    continue
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(se))):
                continue
            index = np.asarray(steps) - 1
            log_q = mean[index, None] + se[index, None] * z[None, :]
            out[i] = np.expm1(np.clip(log_q, 0.0, y.max() + 3.0))
        return finish_quantiles(out)

    def _forecast(self, y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class ETS(_LogGaussian):
    """Exponential smoothing with an additive damped trend (statsmodels ``ETSModel``)."""

    def __init__(self, damped: bool = True, window: int = 104) -> None:
        self.damped = damped
        self.window = window

    def _forecast(self, y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        ETSModel = require("statsmodels.tsa.exponential_smoothing.ets", "forecasting").ETSModel

        recent = pd.Series(y[-self.window:])
        model = ETSModel(recent, error="add", trend="add", damped_trend=self.damped)
        result = model.fit(disp=False)
        frame = result.get_prediction(len(recent), len(recent) + horizon - 1).summary_frame(
            alpha=_ONE_SD)
        return frame["mean"].to_numpy(), (frame["pi_upper"] - frame["pi_lower"]).to_numpy() / 2


class Theta(_LogGaussian):
    """The Theta method (statsmodels ``ThetaModel``): drift plus exponential smoothing."""

    def __init__(self, window: int = 104) -> None:
        self.window = window

    def _forecast(self, y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        ThetaModel = require("statsmodels.tsa.forecasting.theta", "forecasting").ThetaModel

        result = ThetaModel(y[-self.window:], period=1, deseasonalize=False).fit()
        mean = np.asarray(result.forecast(horizon))
        bounds = np.asarray(result.prediction_intervals(horizon, alpha=_ONE_SD))
        return mean, (bounds[:, 1] - bounds[:, 0]) / 2


class Arima(_LogGaussian):
    """ARIMA(p, 1, q) on log1p counts (statsmodels ``ARIMA``), default (2, 1, 0)."""

    def __init__(self, order: tuple[int, int, int] = (2, 1, 0), window: int = 104) -> None:
        self.order = tuple(order)
        self.window = window

    def _forecast(self, y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        ARIMA = require("statsmodels.tsa.arima.model", "forecasting").ARIMA

        result = ARIMA(y[-self.window:], order=self.order).fit()
        forecast = result.get_forecast(horizon)
        return np.asarray(forecast.predicted_mean), np.asarray(forecast.se_mean)


def quantile_average(forecasts: list[np.ndarray], how: str = "median") -> np.ndarray:
    """Combine members' quantiles level by level (``median`` or ``mean``), NaN-aware.

    A location a member could not forecast is combined from the others.
    """
    stacked = np.stack(forecasts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        combined = np.nanmedian(stacked, axis=0) if how == "median" else np.nanmean(
            stacked, axis=0)
    return finish_quantiles(combined)

