"""Rolling-origin forecasts: each forecast date sees only the data reported by then.

At forecast (reference) date ``r`` the latest period known is ``r - lag`` periods; every
model is fitted on the table cut there and forecasts the horizons ``r + h`` periods. A
model with ``refit_every = k`` is fitted once per block of ``k`` dates, on the data of
the block's first date, and predicts each date of the block from that date's data.
Blocks run in parallel processes. The same cut is what the latest forecast uses.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from medpredict.forecasting.spec import ForecastSpec
>>> spec = ForecastSpec.model_validate({"name": "toy", "data": {"path": "x.csv"},
...     "models": ["flusight_baseline"], "quantiles": [0.25, 0.5, 0.75]})
>>> series = pd.DataFrame({"A": np.arange(40.0)},
...                       index=pd.date_range("2024-01-06", periods=40, freq="7D"))
>>> dates = pd.date_range("2024-08-03", periods=3, freq="7D")
>>> made = rolling_forecasts(spec, series, dates, quiet=True)
>>> made.values["flusight_baseline"].shape, made.values["flusight_baseline"][0, 0, 0, 1]
((3, 1, 4, 3), np.float64(29.0))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from medpredict.forecasting.base import finish_quantiles
from medpredict.forecasting.registry import ENSEMBLE, make_forecaster
from medpredict.forecasting.spec import ForecastModel, ForecastSpec
from medpredict.progress import StudyProgress


@dataclass
class ForecastSet:
    """Quantile forecasts of every model: ``values[model]`` is (dates, locations, horizons,
    levels); ``truth`` is the observed count at each target (NaN until observed)."""

    dates: pd.DatetimeIndex
    locations: list[str]
    horizons: list[int]
    levels: np.ndarray
    values: dict[str, np.ndarray]
    truth: np.ndarray
    period: pd.Timedelta

    @property
    def models(self) -> list[str]:
        return list(self.values)

    def target_dates(self, date_index: int) -> list[pd.Timestamp]:
        """End dates of the target periods of one forecast date, one per horizon."""
        return [self.dates[date_index] + h * self.period for h in self.horizons]

    def long(self, model: str, date_indices: list[int] | None = None) -> pd.DataFrame:
        """One model's forecasts as a long table (FluSight's hub layout), NaN rows dropped."""
        values = self.values[model]
        chosen = np.arange(len(self.dates)) if date_indices is None else np.asarray(date_indices)
        d, loc, h, q = np.meshgrid(
            chosen, np.arange(len(self.locations)), np.arange(len(self.horizons)),
            np.arange(len(self.levels)), indexing="ij",
        )
        horizons = np.asarray(self.horizons)[h.ravel()]
        reference = self.dates[d.ravel()]
        table = pd.DataFrame({
            "reference_date": reference,
            "location": np.asarray(self.locations)[loc.ravel()],
            "horizon": horizons,
            "target_end_date": reference + pd.to_timedelta(horizons * self.period.days, "D"),
            "quantile": self.levels[q.ravel()],
            "value": values[chosen].ravel(),
        })
        return table.dropna(subset=["value"]).reset_index(drop=True)


def cut(series: pd.DataFrame, date: pd.Timestamp, lag: int, period: pd.Timedelta) -> pd.DataFrame:
    """The data known at forecast date ``date``: periods ending on or before ``date - lag``."""
    return series.loc[: date - lag * period]


def rolling_forecasts(
    spec: ForecastSpec,
    series: pd.DataFrame,
    dates: pd.DatetimeIndex,
    quiet: bool = False,
    n_jobs: int = 2,
) -> ForecastSet:
    """Forecasts of every fitted model in ``spec`` at every date in ``dates``.

    The ensemble, recalibration and the hierarchy are applied afterwards
    (:func:`medpredict.forecasting.runner.run_forecast`).
    """
    period = pd.Timedelta(days=spec.period_days)
    levels = np.asarray(spec.quantiles, dtype=float)
    fitted = [m for m in spec.models if m.name != ENSEMBLE]
    block = max(_model(spec, m).refit_every for m in fitted)
    blocks = [list(range(i, min(i + block, len(dates)))) for i in range(0, len(dates), block)]
    values = {m.name: np.full(
        (len(dates), series.shape[1], len(spec.horizons), len(levels)), np.nan) for m in fitted}
    with StudyProgress(quiet=quiet) as progress:
        task = progress.stage("rolling forecasts", total=len(dates), unit="forecast dates")
        jobs = (
            delayed(_forecast_block)(spec, series, [dates[i] for i in b], levels) for b in blocks
        )
        runner = Parallel(n_jobs=n_jobs, return_as="generator")
        for indices, made in zip(blocks, runner(jobs), strict=True):
            for name, block_values in made.items():
                values[name][indices] = block_values
            progress.advance(task, len(indices))
    return ForecastSet(
        dates=dates,
        locations=list(series.columns),
        horizons=list(spec.horizons),
        levels=levels,
        values=values,
        truth=observed_targets(series, dates, spec.horizons, period),
        period=period,
    )


def observed_targets(
    series: pd.DataFrame, dates: pd.DatetimeIndex, horizons: list[int], period: pd.Timedelta
) -> np.ndarray:
    """(dates, locations, horizons) of observed counts at each target period, else NaN."""
    truth = np.full((len(dates), series.shape[1], len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        targets = series.reindex(dates + h * period)
        truth[:, :, j] = targets.to_numpy(dtype=float)
    return truth


def _model(spec: ForecastSpec, model: ForecastModel):
    params = dict(model.params)
    if model.name in {"flusight_baseline", "lightgbm"}:
        params.setdefault("seed", spec.seed)
    if model.name in {"seasonal_naive", "lightgbm"}:
        params.setdefault("cycle", spec.cycle)
    if model.name == "lightgbm":
        params.setdefault("max_step", max(spec.steps()))
    forecaster = make_forecaster(model.name, **params)
    forecaster.min_history = spec.min_history
    return forecaster


def _forecast_block(
    spec: ForecastSpec, series: pd.DataFrame, dates: list[pd.Timestamp], levels: np.ndarray
) -> dict[str, np.ndarray]:
    period = pd.Timedelta(days=spec.period_days)
    steps = spec.steps()
    made = {}
    for model in spec.models:
        if model.name == ENSEMBLE:
            continue
        forecaster = _model(spec, model)
        out = np.full((len(dates), series.shape[1], len(steps), len(levels)), np.nan)
        for k, date in enumerate(dates):
            history = cut(series, date, spec.lag, period)
            if len(history) < spec.min_history:
                continue
            if k % forecaster.refit_every == 0:
                forecaster.fit(history)
            out[k] = forecaster.predict(history, steps, levels)
        made[model.name] = finish_quantiles(out)
    return made
