"""``run_forecast``: counts → rolling-origin forecasts → recalibration → ensemble → scores.

The same loop makes the evaluation and the latest forecast: forecast dates run every
period from a warm-up before the first scored date (so recalibration has past errors to
learn from) to the date after the last reported period. Scores use only the declared
seasons (or, without seasons, the last 26 dates whose targets are all observed); the
model with the lowest relative WIS over them makes the latest forecast.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from medpredict.forecasting.spec import ForecastSpec
>>> from medpredict.forecasting.data import counts_from_table
>>> rng = np.random.default_rng(0)
>>> dates = pd.date_range("2023-01-07", periods=80, freq="7D")
>>> table = pd.DataFrame({"location": np.repeat(["A", "B"], 80),
...     "date": np.tile(dates.strftime("%Y-%m-%d"), 2),
...     "value": rng.poisson(np.tile(40 + 30 * np.sin(np.arange(80) / 6), 2))})
>>> spec = ForecastSpec.model_validate({"name": "toy", "data": {"path": "toy.csv"},
...     "models": ["flusight_baseline", "theta", "ensemble"],
...     "quantiles": [0.025, 0.25, 0.5, 0.75, 0.975]})
>>> result = run_forecast(spec, counts_from_table(table, spec.data), quiet=True)
>>> sorted(result.scores["model"].unique()), result.latest["reference_date"].nunique()
(['ensemble', 'flusight_baseline', 'theta'], 1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError, SpecError
from medpredict.forecasting.calibration import conformal_intervals
from medpredict.forecasting.data import Counts
from medpredict.forecasting.models import quantile_average
from medpredict.forecasting.registry import ENSEMBLE, FORECASTERS
from medpredict.forecasting.rolling import ForecastSet, rolling_forecasts
from medpredict.forecasting.scoring import breakdown, score_table
from medpredict.forecasting.spec import ForecastSpec

DEFAULT_SCORED_DATES = 26

REVISION_NOTE = (
    "The counts are the latest revised values, not what was known on each forecast date: "
    "real-time forecasts saw preliminary counts, so these scores are somewhat optimistic "
    "for every model, the baseline included."
)


@dataclass
class ForecastResult:
    """What a forecast run produced (see :func:`run_forecast`)."""

    spec: ForecastSpec
    counts: Counts
    forecasts: ForecastSet
    blocks: dict[str, np.ndarray]
    scored_locations: list[int]
    scores: pd.DataFrame
    selected: str
    by_horizon: pd.DataFrame
    by_location: pd.DataFrame
    latest: pd.DataFrame
    not_forecast: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def latest_date(self) -> pd.Timestamp:
        return self.forecasts.dates[-1]


def forecast_dates(
    spec: ForecastSpec, series: pd.DataFrame
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Every forecast date to run, and a mask of the scored ones per season and ``all``."""
    period = pd.Timedelta(days=spec.period_days)
    latest = series.index[-1] + spec.lag * period
    earliest = series.index[0] + (spec.min_history + spec.lag - 1) * period
    if spec.evaluation.seasons:
        spans = [(s.name, pd.Timestamp(s.start), pd.Timestamp(s.end))
                 for s in spec.evaluation.seasons]
    else:
        last = series.index[-1] - max(spec.horizons) * period
        spans = [("recent", last - (DEFAULT_SCORED_DATES - 1) * period, last)]
    first_scored = min(start for _, start, _ in spans)
    warm_up = (spec.recalibration.window + max(spec.horizons) + spec.lag) * period
    first = max(first_scored - warm_up, earliest)
    offset = (latest - first) % period
    dates = pd.date_range(first + offset, latest, freq=period)
    if len(dates) == 0:
        raise DataError(
            f"no forecast dates: the data end on {series.index[-1].date()} and need "
            f"{spec.min_history} periods of history first"
        )
    blocks = {name: np.asarray((dates >= start) & (dates <= end)) for name, start, end in spans}
    empty = [name for name, mask in blocks.items() if not mask.any()]
    if empty:
        raise SpecError(
            f"evaluation seasons {', '.join(empty)} have no forecast dates between "
            f"{dates[0].date()} and {dates[-1].date()}"
        )
    blocks["all"] = np.logical_or.reduce(list(blocks.values()))
    return dates, blocks


def run_forecast(
    spec: ForecastSpec, counts: Counts, quiet: bool = False, n_jobs: int = 2
) -> ForecastResult:
    """Rolling-origin evaluation and the latest forecast of every model in ``spec``."""
    started = time.perf_counter()
    _check_models(spec)
    series = counts.series
    dates, blocks = forecast_dates(spec, series)
    forecasts = rolling_forecasts(spec, series, dates, quiet=quiet, n_jobs=n_jobs)
    baseline = spec.evaluation.baseline
    if spec.recalibration.method == "conformal":
        for name in forecasts.values:
            if name != baseline:
                forecasts.values[name] = conformal_intervals(
                    forecasts.values[name], forecasts.truth, forecasts.levels,
                    forecasts.horizons, spec.lag, spec.recalibration.window)
    for model in spec.models:
        if model.name == ENSEMBLE:
            members = model.params.get("members") or [
                m for m in forecasts.values if m != baseline]
            missing = sorted(set(members) - set(forecasts.values))
            if missing:
                raise SpecError(f"ensemble members {', '.join(missing)} are not models here")
            if not members:
                raise SpecError("the ensemble has no members: add models besides the baseline")
            forecasts.values[ENSEMBLE] = quantile_average(
                [forecasts.values[m] for m in members], model.params.get("how", "mean"))
    if spec.hierarchy is not None and spec.hierarchy.method == "bottom_up":
        for name in forecasts.values:
            if name != baseline:
                forecasts.values[name] = bottom_up(
                    forecasts.values[name], forecasts.locations, spec.hierarchy.total)
    scored = [
        i for i, loc in enumerate(forecasts.locations)
        if spec.hierarchy is None or spec.evaluation.score_total or loc != spec.hierarchy.total
    ]
    scores = score_table(forecasts, baseline, blocks, scored, spec.evaluation.bootstrap,
                         spec.seed)
    overall = scores[scores["block"] == "all"]
    selected = min(overall.itertuples(), key=lambda r: r.relative_wis.value).model
    by_horizon, by_location = breakdown(forecasts, selected, baseline, blocks["all"], scored)
    history = series.loc[: dates[-1] - spec.lag * forecasts.period]
    observed = history.notna().sum()
    return ForecastResult(
        spec=spec,
        counts=counts,
        forecasts=forecasts,
        blocks=blocks,
        scored_locations=scored,
        scores=scores,
        selected=selected,
        by_horizon=by_horizon,
        by_location=by_location,
        latest=forecasts.long(selected, [len(dates) - 1]),
        not_forecast={loc: int(n) for loc, n in observed.items() if n < spec.min_history},
        seconds=time.perf_counter() - started,
        notes=[REVISION_NOTE],
    )


def bottom_up(values: np.ndarray, locations: list[str], total: str) -> np.ndarray:
    """The total's quantiles as sums of its members' (where every member has a forecast).

    Summing quantiles is exact when the members rise and fall together (comonotone),
    and errs towards wider intervals otherwise.
    """
    t = locations.index(total)
    members = [i for i in range(len(locations)) if i != t]
    summed = values[:, members].sum(axis=1)
    complete = ~np.isnan(values[:, members]).any(axis=(1, 3))
    values = values.copy()
    values[:, t] = np.where(complete[..., None], summed, values[:, t])
    return values


def _check_models(spec: ForecastSpec) -> None:
    names = [m.name for m in spec.models]
    unknown = [n for n in names if n not in FORECASTERS and n != ENSEMBLE]
    if unknown:
        raise SpecError(
            f"unknown forecasters {', '.join(unknown)}; expected from: "
            f"{', '.join([*FORECASTERS, ENSEMBLE])}"
        )
    if spec.evaluation.baseline not in names:
        raise SpecError(
            f"evaluation.baseline {spec.evaluation.baseline!r} is not among the models "
            f"({', '.join(names)})"
        )
    if len(set(names)) != len(names):
        raise SpecError(f"models are listed twice: {', '.join(names)}")
