"""Conformal lower prediction bounds on each patient's time to the event.

A lower prediction bound (LPB) ``L(x)`` answers "with 90% confidence this patient's
event comes after ``L(x)``": over patients like the calibration ones, the share whose
event time ``T`` is at least ``L(x)`` is about ``level``. The bounds follow
conformalized survival analysis (Candès, Lei & Ren 2023, JRSS-B), with
inverse-probability-of-censoring weights because the censoring time of a patient who
had the event is not observed:

1. For a level ``b``, the candidate bound ``q_b(x)`` is the model's ``b``-quantile of
   ``T`` given ``x``: the earliest time of the curve's grid where ``S(t | x) <= 1 - b``,
   or the last grid time when the curve stays above ``1 - b``.
2. On calibration rows whose curves did not come from a model trained on them (the
   out-of-fold curves of a study), the miscoverage of ``q_b`` is estimated as
   ``sum_i event_i * 1(time_i < q_b(x_i)) / G(time_i-)``, where ``G`` is the
   Kaplan–Meier survival function of the censoring time on those rows.
3. The chosen ``b`` is the largest on :data:`QUANTILE_GRID` whose estimate, with the
   finite-sample correction ``(sum + 1) / (n + 1)``, is at most ``1 - level``. When
   none is, the bound is 0 for everyone: the model can assure nothing at that level.

The guarantee is asymptotic, not exact in finite samples: it holds as the calibration
rows grow when censoring is independent of the features and of the event time (so
that ``G`` estimated without features is right for every patient). Competing events
are treated as censoring, so ``T`` is the time to the event in the absence of the
competing event. Bounds are step values of the grid: a bound equal to the grid's last
time means "at least that long" (the curve never fell to ``1 - b`` within it).

:func:`lower_bound_coverage` estimates the coverage of given bounds on other rows
(hold-outs) with the same weights, with a bootstrap 95% interval.

Examples
--------
>>> import numpy as np
>>> from medpredict.survival.scoring import SurvivalPredictions
>>> rng = np.random.default_rng(0); n = 2000
>>> rate = np.exp(rng.normal(size=n))
>>> event_time = rng.exponential(1 / rate); censor_time = rng.exponential(2.0, size=n)
>>> time = np.minimum(event_time, censor_time); event = event_time <= censor_time
>>> times = np.linspace(0.01, 5, 500)
>>> curves = np.exp(-rate[:, None] * times[None, :])  # the true survival curves
>>> bound = calibrate_lower_bound(SurvivalPredictions(times, curves), time, event, 0.9)
>>> bound.quantile, bound.rows
(0.095, 2000)
>>> covered = event_time >= lower_bounds(curves, times, bound.quantile)
>>> bool(0.87 < covered.mean() < 0.93)
True
>>> estimate = lower_bound_coverage(lower_bounds(curves, times, bound.quantile), time, event,
...                                 n_boot=100)
>>> bool(estimate.low < 0.9 < estimate.high)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.survival import event_weights
from medpredict.survival.scoring import SurvivalPredictions

QUANTILE_GRID = np.round(np.arange(1, 101) * 0.005, 3)
"""Model quantiles ``b`` the calibration chooses from: 0.005, 0.010, ..., 0.5."""


@dataclass(frozen=True)
class LowerBound:
    """A calibrated lower prediction bound: which model quantile gives it, and on what.

    Attributes
    ----------
    level : the confidence aimed at (e.g. 0.9: 90% of patients have the event after
        their bound).
    quantile : the chosen model quantile ``b``; each patient's bound is the earliest
        time where the predicted survival falls to ``1 - b``. 0 means no quantile on the
        grid was safe: every bound is 0.
    rows : calibration rows.
    events : events among them.

    Examples
    --------
    >>> bound = LowerBound(level=0.9, quantile=0.085, rows=300, events=120)
    >>> LowerBound.from_dict(bound.to_dict()) == bound
    True
    """

    level: float
    quantile: float
    rows: int
    events: int

    def to_dict(self) -> dict[str, float]:
        """The JSON form stored in a model directory's metadata and ``metrics.json``."""
        return {k: (int(v) if k in ("rows", "events") else float(v))
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LowerBound:
        """Read :meth:`to_dict`'s form back (whole numbers may come back as floats)."""
        return cls(level=float(data["level"]), quantile=float(data["quantile"]),
                   rows=int(data["rows"]), events=int(data["events"]))


def _running_minimum(curves: np.ndarray) -> np.ndarray:
    """Each curve made non-increasing: its first crossing of a level stays where it was."""
    return np.minimum.accumulate(curves, axis=1)


def _bounds_of(running: np.ndarray, times: np.ndarray, quantile: float) -> np.ndarray:
    """Each row's bound from non-increasing curves without NaN (the last time if the
    curve never falls to ``1 - quantile``)."""
    index = np.sum(running > 1.0 - quantile, axis=1)
    return times[np.minimum(index, times.size - 1)]


def lower_bounds(curves: np.ndarray, times: np.ndarray, quantile: float) -> np.ndarray:
    """Each row's lower bound: the earliest of ``times`` where its curve is ``<= 1 - quantile``.

    Parameters
    ----------
    curves : predicted survival, rows x ``times`` (step functions, non-increasing).
    times : the grid, increasing.
    quantile : the model quantile ``b`` (:attr:`LowerBound.quantile`); 0 or less gives 0.

    Returns
    -------
    One bound per row: the last of ``times`` where the curve never falls to
    ``1 - quantile`` ("at least" that long), NaN where the curve holds a NaN.

    Examples
    --------
    >>> curves = np.array([[0.95, 0.85, 0.6], [0.99, 0.97, 0.95], [0.8, 0.7, 0.5]])
    >>> lower_bounds(curves, np.array([1.0, 2.0, 3.0]), 0.1).tolist()
    [2.0, 3.0, 1.0]
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    times = np.asarray(times, dtype=float)
    missing = np.isnan(curves).any(axis=1)
    if quantile <= 0:
        return np.where(missing, np.nan, 0.0)
    bounds = _bounds_of(_running_minimum(np.nan_to_num(curves, nan=1.0)), times, quantile)
    return np.where(missing, np.nan, bounds)


def calibrate_lower_bound(
    predictions: SurvivalPredictions,
    time: np.ndarray,
    event: np.ndarray,
    level: float = 0.9,
    grid: Sequence[float] | np.ndarray = QUANTILE_GRID,
) -> LowerBound:
    """The largest model quantile whose bound misses at most ``1 - level`` of patients.

    Parameters
    ----------
    predictions : curves of the calibration rows from models not trained on them.
    time, event : their follow-up times and whether follow-up ended in the event
        (competing events count as censored).
    level : the confidence aimed at, in (0, 1).
    grid : candidate quantiles ``b``, each in (0, 1).

    Returns
    -------
    The :class:`LowerBound`; its ``quantile`` is 0 when no quantile of ``grid`` is safe.
    See the module docstring for the estimate and its assumptions.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    curves = np.asarray(predictions.curves, dtype=float)
    if curves.shape[0] != time.size or time.size != event.size:
        raise ValueError(f"{curves.shape[0]} curves for {time.size} times and "
                         f"{event.size} event flags")
    if np.isnan(curves).any():
        raise ValueError("calibration curves hold NaN: every row needs a prediction")
    weight = event_weights(time, event)
    running = _running_minimum(curves)
    grid_times = np.asarray(predictions.times, dtype=float)
    n = time.size
    chosen = 0.0
    for b in sorted(float(v) for v in grid):
        bounds = _bounds_of(running, grid_times, b)
        missed = (float(np.sum(weight * (time < bounds))) + 1.0) / (n + 1)
        if missed > 1.0 - level:
            break  # the bounds, so the estimate, only grow with b
        chosen = b
    return LowerBound(level=float(level), quantile=chosen, rows=int(n),
                      events=int(event.sum()))


def cross_fitted_lower_bounds(
    predictions: SurvivalPredictions,
    time: np.ndarray,
    event: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    level: float = 0.9,
) -> np.ndarray:
    """Bounds of each fold's rows calibrated on the other folds' rows.

    With out-of-fold curves, the bound of a row then depends on neither its own outcome
    nor a model trained on it, so :func:`lower_bound_coverage` of these bounds is an
    honest cross-validated estimate of the coverage of the calibrated bound.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    out = np.full(time.size, np.nan)
    for _, test in folds:
        others = np.setdiff1d(np.arange(time.size), test)
        calibration = SurvivalPredictions(predictions.times, predictions.curves[others])
        bound = calibrate_lower_bound(calibration, time[others], event[others], level)
        out[test] = lower_bounds(predictions.curves[test], predictions.times, bound.quantile)
    return out


def lower_bound_coverage(
    bounds: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Estimated share of patients whose event comes at or after their bound, with a 95% CI.

    ``1 - mean_i(event_i * 1(time_i < bound_i) / G(time_i-))`` with ``G`` the censoring
    distribution of these rows (estimated once, as for the other IPCW metrics), and a
    percentile bootstrap interval stratified by event (or clustered by ``groups``).
    Rows without a bound (NaN) are left out. An event after the longest follow-up of
    these rows cannot be seen, so bounds beyond it cannot be checked here.
    """
    bounds = np.asarray(bounds, dtype=float)
    known = ~np.isnan(bounds)
    time = np.asarray(time, dtype=float)[known]
    event = np.asarray(event).astype(bool)[known]
    if not known.any():
        return Estimate(float("nan"), float("nan"), float("nan"))
    missed = event_weights(time, event) * (time < bounds[known])

    def coverage(_: np.ndarray, terms: np.ndarray) -> dict[str, float]:
        return {"coverage": 1.0 - float(np.mean(terms))}

    taken = None if groups is None else np.asarray(groups)[known]
    return bootstrap(coverage, event.astype(int), missed, n_boot=n_boot, seed=seed,
                     groups=taken)["coverage"]


def bound_times(model: Any, horizons: Sequence[float]) -> np.ndarray:
    """The grid served bounds are read on: the model's own times and the horizons.

    The same grid as :func:`medpredict.predict.survival_columns`, so a hold-out's
    coverage is that of the bounds ``medpredict predict`` and the service give.
    """
    final = model[-1] if hasattr(model, "steps") else model
    return np.unique(np.concatenate([np.asarray(final.unique_times_, dtype=float),
                                     np.asarray(horizons, dtype=float)]))
