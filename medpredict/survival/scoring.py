"""Survival predictions scored with bootstrap confidence intervals.

Every metric of a survival study comes from :class:`SurvivalScorer`: Harrell's and
Uno's C (Uno's truncated at the last horizon), the integrated Brier score over the
10th to 80th percentile of the evaluated follow-up times, and at each horizon the
time-dependent AUC, the Brier score, the calibration slope and the mean predicted
against the Kaplan–Meier observed risk. The censoring distribution of the IPCW
metrics is estimated once on the evaluated rows. Resamples are stratified by event or
clustered by patient (:func:`medpredict.evaluation.bootstrap.bootstrap`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0); risk = rng.normal(size=300)
>>> time = rng.exponential(np.exp(-risk)); event = rng.random(300) < 0.7
>>> times = evaluation_times(time, event, [0.5])
>>> curves = np.exp(-np.exp(risk)[:, None] * times[None, :])
>>> scored = score_predictions(SurvivalPredictions(times, curves), time, event, [0.5],
...                            n_boot=50)
>>> scored["harrell_c"].value > 0.6, sorted(scored)[:3]
(True, ['auc@0.5', 'brier@0.5', 'calibration_slope@0.5'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.survival import (
    KaplanMeier,
    brier_terms,
    calibration_slope,
    concordances,
    cumulative_dynamic_auc,
)

IBS_RANGE = (0.1, 0.8)
"""Percentiles of the evaluated follow-up times the integrated Brier score spans."""

HIGHER_IS_BETTER = {"harrell_c": True, "uno_c": True, "integrated_brier": False}


def brier_times(time: np.ndarray, n: int = 30) -> np.ndarray:
    """The times the integrated Brier score of these rows averages over."""
    return np.unique(np.quantile(np.asarray(time, dtype=float), np.linspace(*IBS_RANGE, n)))


def evaluation_times(
    time: np.ndarray, event: np.ndarray, horizons: Sequence[float], n: int = 100
) -> np.ndarray:
    """Where curves are predicted: event-time quantiles, the horizons, the Brier times."""
    time = np.asarray(time, dtype=float)
    events = time[np.asarray(event).astype(bool)]
    grid = np.quantile(events if events.size else time, np.linspace(0.0, 1.0, n))
    return np.unique(np.concatenate([grid, np.asarray(horizons, dtype=float), brier_times(time)]))


def risk_scores(curves: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Minus the restricted mean survival time up to the last of ``times``.

    One scale for every model and fold, so out-of-fold scores are comparable; for a
    proportional-hazards model it orders patients as its linear predictor does.
    """
    grid = np.concatenate([[0.0], np.asarray(times, dtype=float)])
    values = np.hstack([np.ones((curves.shape[0], 1)), curves])
    # left-continuous area of a step function: each value holds until the next time
    return -np.sum(values[:, :-1] * np.diff(grid)[None, :], axis=1)


@dataclass(frozen=True)
class SurvivalPredictions:
    """Predicted survival curves (rows x ``times``) of a set of patients."""

    times: np.ndarray
    curves: np.ndarray

    def at(self, horizon: float) -> np.ndarray:
        """Survival probability of each patient at ``horizon`` (a step function)."""
        index = np.searchsorted(self.times, horizon, side="right") - 1
        return np.ones(self.curves.shape[0]) if index < 0 else self.curves[:, index]

    def risk_at(self, horizon: float) -> np.ndarray:
        """Predicted risk of the event by ``horizon``."""
        return 1.0 - self.at(horizon)

    @property
    def risk(self) -> np.ndarray:
        """Risk score: minus the restricted mean survival time up to the last time."""
        return risk_scores(self.curves, self.times)


class SurvivalScorer:
    """Every survival metric of one set of predictions, on all rows or a resample.

    The per-row terms (risk score, Brier terms, survival at each horizon) are computed
    once; ``scorer(rows)`` scores the rows at those positions (repeats allowed) and
    ``scorer(None)`` all rows. Brier scores are means of the stored terms (checked
    against :func:`~medpredict.evaluation.survival.brier_scores` in the tests).
    """

    def __init__(
        self,
        predictions: SurvivalPredictions,
        time: np.ndarray,
        event: np.ndarray,
        horizons: Sequence[float],
    ) -> None:
        self.time = np.asarray(time, dtype=float)
        self.event = np.asarray(event).astype(bool)
        self.horizons = [float(h) for h in horizons]
        self.censoring = KaplanMeier.fit(self.time, self.event, reverse=True)
        self.ibs_times = brier_times(self.time)
        self.tau = float(max(self.horizons))
        self.risk = predictions.risk
        ibs_curves = np.column_stack([predictions.at(t) for t in self.ibs_times])
        self.survival = np.column_stack([predictions.at(h) for h in self.horizons])
        self.ibs_terms = brier_terms(self.time, self.event, ibs_curves, self.ibs_times,
                                      self.censoring)
        self.horizon_terms = brier_terms(self.time, self.event, self.survival,
                                          np.asarray(self.horizons), self.censoring)

    def overall(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """The metrics a study selects by: Harrell's C, Uno's C, integrated Brier score."""
        take = slice(None) if rows is None else rows
        harrell, uno = concordances(self.time[take], self.event[take], self.risk[take],
                                    self.censoring, self.tau)
        scores = self.ibs_terms[take].mean(axis=0)
        span = self.ibs_times[-1] - self.ibs_times[0]
        ibs = float(np.trapezoid(scores, self.ibs_times) / span) if span > 0 else float(scores[0])
        return {"harrell_c": harrell, "uno_c": uno, "integrated_brier": ibs}

    def __call__(self, rows: np.ndarray | None = None) -> dict[str, float]:
        take = slice(None) if rows is None else rows
        time, event = self.time[take], self.event[take]
        out = self.overall(rows)
        briers = self.horizon_terms[take].mean(axis=0)
        for k, h in enumerate(self.horizons):
            survival = self.survival[take, k]
            label = f"{h:g}"
            out[f"auc@{label}"] = cumulative_dynamic_auc(time, event, 1 - survival, h,
                                                         self.censoring)
            out[f"brier@{label}"] = float(briers[k])
            out[f"calibration_slope@{label}"] = calibration_slope(time, event, survival, h)
            out[f"predicted_risk@{label}"] = float(np.mean(1 - survival))
            out[f"observed_risk@{label}"] = float(1 - KaplanMeier.fit(time, event)(h))
        return out


def score_predictions(
    predictions: SurvivalPredictions,
    time: np.ndarray,
    event: np.ndarray,
    horizons: Sequence[float],
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Every survival metric with its percentile bootstrap 95% interval."""
    scorer = SurvivalScorer(predictions, time, event, horizons)
    rows = np.arange(np.size(time))
    return bootstrap(lambda _, taken: scorer(taken), np.asarray(event).astype(int), rows,
                     n_boot=n_boot, seed=seed, groups=groups)


def score_candidates(
    predictions: dict[str, SurvivalPredictions],
    time: np.ndarray,
    event: np.ndarray,
    horizons: Sequence[float],
    metric: str,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[str, dict[str, dict[str, Estimate]], dict[str, dict[str, Estimate]]]:
    """Every candidate's metrics, the best by ``metric``, and paired differences from it.

    One bootstrap serves all candidates: on each resample every candidate is scored,
    so a difference (candidate minus best) is taken on the same patients.

    Returns
    -------
    best, metrics by candidate, differences by candidate (the best has none).
    """
    scorers = {n: SurvivalScorer(p, time, event, horizons) for n, p in predictions.items()}
    point = {n: scorer.overall()[metric] for n, scorer in scorers.items()}
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    best = max(point, key=lambda n: (sign * np.nan_to_num(point[n], nan=-np.inf * sign)))

    def joint(_: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        scores = {n: scorer(rows) for n, scorer in scorers.items()}
        out = {f"{n}\t{k}": v for n, values in scores.items() for k, v in values.items()}
        for n, values in scores.items():
            if n != best:
                out.update({f"{n}\tdelta\t{k}": values[k] - scores[best][k]
                            for k in HIGHER_IS_BETTER})
        return out

    rows = np.arange(np.size(time))
    estimates = bootstrap(joint, np.asarray(event).astype(int), rows, n_boot=n_boot, seed=seed,
                          groups=groups)
    metrics: dict[str, dict[str, Estimate]] = {n: {} for n in scorers}
    deltas: dict[str, dict[str, Estimate]] = {n: {} for n in scorers if n != best}
    for key, value in estimates.items():
        parts = key.split("\t")
        if len(parts) == 3:
            deltas[parts[0]][parts[2]] = value
        else:
            metrics[parts[0]][parts[1]] = value
    return best, metrics, deltas
