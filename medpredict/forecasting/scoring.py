"""Scores of rolling-origin forecasts: WIS, relative WIS and coverage with bootstrap CIs.

Relative WIS is the mean WIS of a model divided by the baseline's mean WIS over the same
forecasts (the forecasts both made, whose targets were observed), which is how the
FluSight hub's ensemble-to-baseline ratio is recomputed. Confidence intervals resample
forecast dates with replacement, so the weeks of one epidemic move together.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> per_date = rng.uniform(1, 2, (30, 2))   # (dates, [model, baseline]) sums of WIS
>>> ratio = ratio_with_ci(per_date[:, 0], per_date[:, 1], resamples=200, seed=0)
>>> bool(ratio.low < ratio.value < ratio.high)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.quantile_scores import (
    central_widths,
    interval_coverage,
    weighted_interval_score,
)
from medpredict.forecasting.rolling import ForecastSet

COVERAGES = (0.5, 0.95)


@dataclass(frozen=True)
class RowScores:
    """Per forecast (date × location × horizon) scores of one model; NaN where unscored."""

    wis: np.ndarray
    covered: dict[float, np.ndarray]


def row_scores(forecasts: ForecastSet, model: str) -> RowScores:
    """WIS and interval coverage of every forecast of ``model`` with an observed target."""
    values = forecasts.values[model]
    shape = values.shape[:3]
    q = values.reshape(-1, values.shape[-1])
    y = forecasts.truth.reshape(-1)
    ok = np.isfinite(y) & np.isfinite(q).all(axis=1)
    wis = np.full(len(y), np.nan)
    wis[ok] = weighted_interval_score(y[ok], q[ok], forecasts.levels)
    covered = {}
    for width in coverages(forecasts.levels):
        hit = np.full(len(y), np.nan)
        hit[ok] = interval_coverage(y[ok], q[ok], forecasts.levels, width)
        covered[width] = hit.reshape(shape)
    return RowScores(wis.reshape(shape), covered)


def coverages(levels: np.ndarray) -> list[float]:
    """The reported interval coverages (50% and 95%) that ``levels`` define."""
    return [w for w in COVERAGES if any(np.isclose(w, c) for c in central_widths(levels))]


def ratio_with_ci(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int = 1000, seed: int = 0
) -> Estimate:
    """``sum(numerator) / sum(denominator)`` over dates, CI by resampling dates."""
    value = float(numerator.sum() / denominator.sum()) if denominator.sum() > 0 else np.nan
    if resamples == 0 or len(numerator) < 2:
        return Estimate(value, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(numerator), (resamples, len(numerator)))
    with np.errstate(all="ignore"):
        ratios = numerator[picks].sum(axis=1) / denominator[picks].sum(axis=1)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return Estimate(value, float(low), float(high))


def score_table(
    forecasts: ForecastSet,
    baseline: str,
    blocks: dict[str, np.ndarray],
    locations: list[int],
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per model and block of dates (a season, or ``all``): relative WIS with CI,
    mean WIS, 50% and 95% coverage with CIs, number of forecasts scored.

    ``blocks`` maps a name to a boolean mask over forecast dates; ``locations`` are the
    location positions scored.
    """
    base = row_scores(forecasts, baseline)
    rows = []
    for model in forecasts.models:
        scores = base if model == baseline else row_scores(forecasts, model)
        for block, mask in blocks.items():
            wis = scores.wis[mask][:, locations]
            base_wis = base.wis[mask][:, locations]
            both = np.isfinite(wis) & np.isfinite(base_wis)
            if not both.any():
                continue
            per_date = np.where(both, wis, 0).sum(axis=(1, 2))
            per_date_base = np.where(both, base_wis, 0).sum(axis=(1, 2))
            counts = both.sum(axis=(1, 2))
            dated = counts > 0
            row = {
                "model": model,
                "block": block,
                "forecasts": int(counts.sum()),
                "dates": int(dated.sum()),
                "wis": float(per_date.sum() / counts.sum()),
                "relative_wis": ratio_with_ci(
                    per_date[dated], per_date_base[dated], resamples, seed),
            }
            for width in scores.covered:
                hits = np.where(both, scores.covered[width][mask][:, locations], 0)
                row[f"coverage_{round(width * 100)}"] = ratio_with_ci(
                    hits.sum(axis=(1, 2))[dated], counts[dated].astype(float), resamples, seed)
            rows.append(row)
    return pd.DataFrame(rows)


def breakdown(
    forecasts: ForecastSet, model: str, baseline: str, mask: np.ndarray, locations: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relative WIS and widest-interval coverage of ``model`` by horizon and by location.

    The coverage column is ``coverage_95`` with FluSight's levels."""
    scores, base = row_scores(forecasts, model), row_scores(forecasts, baseline)
    wis, base_wis = scores.wis[mask][:, locations], base.wis[mask][:, locations]
    both = np.isfinite(wis) & np.isfinite(base_wis)
    widest = max(scores.covered)
    hits = scores.covered[widest][mask][:, locations]

    def summarise(axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = both.sum(axis=axis)
        with np.errstate(all="ignore"):
            ratio = np.where(both, wis, 0).sum(axis=axis) / np.where(both, base_wis, 0).sum(
                axis=axis)
            covered = np.where(both, hits, 0).sum(axis=axis) / n
        return ratio, covered, n

    ratio, covered, n = summarise((0, 1))
    label = f"coverage_{round(widest * 100)}"
    by_horizon = pd.DataFrame({"horizon": forecasts.horizons, "relative_wis": ratio,
                               label: covered, "forecasts": n})
    ratio, covered, n = summarise((0, 2))
    by_location = pd.DataFrame({"location": [forecasts.locations[i] for i in locations],
                                "relative_wis": ratio, label: covered, "forecasts": n})
    return by_horizon, by_location
