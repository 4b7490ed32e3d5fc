"""A deployed model's performance over time: expected before outcomes arrive, realised after.

**Expected (label-free) performance** (confidence-based performance estimation, as in
NannyML's CBPE). If the model's risks are calibrated in the period, a patient with risk
``p`` has the outcome with probability ``p``; so each row counts as a positive with
weight ``p`` and as a negative with weight ``1 - p``:

* expected AUROC (:func:`expected_auroc`): the AUROC of these fractional positives and
  negatives, i.e. ``sum p_i (1 - p_j) [p_i > p_j] / (sum p_i * sum (1 - p_j))`` over
  all pairs of rows, ties counting half (a row's pair with itself is such a tie, a term
  of order ``1/n``). Computed exactly by one sort, in ``O(n log n)``;
* expected Brier score: ``mean(p (1 - p))``, the Brier score expected when outcomes are
  drawn from the risks;
* expected calibration intercept 0 and slope 1: calibration is what the estimate
  assumes, not something it can measure.

The assumptions: the risks are calibrated in the period, which holds under covariate
shift (the case mix changes but the risk of the outcome given the features does not,
no concept shift) for a model that was calibrated in development. When practice or the
outcome itself changes, the estimate is wrong and only the realised numbers show it.

**Realised performance** (:func:`realised_performance`), once outcomes arrive: AUROC,
Brier score, calibration intercept and slope (:mod:`medpredict.evaluation.metrics`),
with bootstrap 95% CIs over rows, not stratified by outcome
(:mod:`medpredict.evaluation.bootstrap`).

:func:`by_period` puts both side by side per period, with the drift of the predicted
risks and an alert in words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc, binary_metrics
from medpredict.monitoring.drift import PSI_MODERATE, psi

REALISED = ("auroc", "brier", "calibration_intercept", "calibration_slope")


def expected_auroc(risk: Sequence[float]) -> float:
    """AUROC expected from calibrated risks alone, no outcomes needed.

    Each row is a positive with weight ``p`` and a negative with weight ``1 - p``;
    this is the AUROC of those fractional counts (ties count half).

    Examples
    --------
    >>> round(expected_auroc([0.1, 0.5, 0.9]), 4)
    0.8556
    >>> expected_auroc([0.3, 0.3, 0.3])  # all risks equal: no discrimination
    0.5
    """
    p = np.asarray(risk, dtype=float)
    return auroc(p, p)  # the outcome argument accepts fractional weights


def expected_performance(risk: Sequence[float]) -> dict[str, float]:
    """Expected AUROC, Brier score and calibration (0 and 1, by assumption).

    Examples
    --------
    >>> expected_performance([0.2, 0.8])["brier"]
    0.16
    """
    p = np.asarray(risk, dtype=float)
    return {
        "auroc": expected_auroc(p),
        "brier": float(np.mean(p * (1 - p))),
        "calibration_intercept": 0.0,
        "calibration_slope": 1.0,
    }


def realised_performance(
    outcome: Sequence[float], risk: Sequence[float], n_boot: int = 500, seed: int = 0
) -> dict[str, Estimate]:
    """AUROC, Brier score, calibration intercept and slope, bootstrap 95% CIs.

    The bootstrap resamples rows without stratifying by outcome (each row its own
    group), so the number of events varies between resamples, as it does between
    periods; the calibration intercept's interval needs that.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 2000)
    >>> y = (rng.uniform(size=2000) < p).astype(float)
    >>> result = realised_performance(y, p, n_boot=100)
    >>> result["calibration_slope"].low < 1 < result["calibration_slope"].high
    True
    """
    y, p = np.asarray(outcome, dtype=float), np.asarray(risk, dtype=float)
    estimates = bootstrap(binary_metrics, y, p, n_boot=n_boot, seed=seed,
                          groups=np.arange(y.size))
    return {k: estimates[k] for k in REALISED}


def _realised_columns(y: np.ndarray | None, p: np.ndarray, n_boot: int,
                      seed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    usable = y is not None and 0 < y.sum() < y.size
    found = realised_performance(y, p, n_boot, seed) if usable else {}
    nan = Estimate(float("nan"), float("nan"), float("nan"))
    for k in REALISED:
        e = found.get(k, nan)
        out[f"realised_{k}"], out[f"realised_{k}_low"], out[f"realised_{k}_high"] = (
            e.value, e.low, e.high)
    return out


def _alert(row: dict[str, float]) -> str:
    """The reasons for an alert in words; empty when there is none."""
    reasons = []
    if row["realised_auroc_high"] < row["expected_auroc"]:
        reasons.append(
            f"discrimination is worse than the risks promise: realised AUROC "
            f"{row['realised_auroc']:.3f} (95% CI {row['realised_auroc_low']:.3f} to "
            f"{row['realised_auroc_high']:.3f}) below the expected {row['expected_auroc']:.3f}")
    low = row["realised_calibration_intercept_low"]
    high = row["realised_calibration_intercept_high"]
    if low > 0 or high < 0:
        direction = "more" if low > 0 else "fewer"
        reasons.append(
            f"{direction} events than predicted: calibration intercept "
            f"{row['realised_calibration_intercept']:+.2f} (95% CI {low:+.2f} to {high:+.2f}, "
            f"ideal 0), so the expected numbers, which assume calibrated risks, are off")
    if row["prediction_psi"] >= PSI_MODERATE:
        reasons.append(
            f"the predicted risks have drifted from development (PSI "
            f"{row['prediction_psi']:.2f}, where 0.1 is moderate and 0.25 major)")
    return "; ".join(reasons)


def by_period(
    model_risks: Sequence[float],
    outcomes: Sequence[float] | None,
    periods: Sequence[object],
    reference_risks: Sequence[float] | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected and realised performance of a deployed model, one row per period.

    Parameters
    ----------
    model_risks : the model's risk for each monitored row.
    outcomes : 0/1 outcome per row, NaN where it has not arrived yet, or None while no
        outcome has (the realised columns of a period are computed on its rows with an
        outcome, ``with_outcome``, and are NaN without both outcomes among them).
    periods : period label per row (a year, a month); rows are grouped by it, in
        sorted order.
    reference_risks : the model's risks on its development data; gives
        ``prediction_psi`` (NaN without them).
    n_boot, seed : bootstrap resamples and seed of the realised CIs.

    Returns
    -------
    DataFrame with ``period``, ``n``, ``with_outcome``, ``events``; ``expected_`` and
    ``realised_`` AUROC, Brier score, calibration intercept and slope (realised with
    ``_low`` and ``_high`` 95% limits); ``auroc_difference`` and ``brier_difference``
    (realised minus expected); ``prediction_psi``; ``alert`` and ``reason``. An alert is
    raised when the realised AUROC's CI lies below the expected AUROC, when the
    calibration intercept's CI excludes 0, or when the predicted risks' PSI is at least
    0.1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> p = rng.beta(2, 5, 4000)
    >>> y = (rng.uniform(size=4000) < p).astype(float)
    >>> table = by_period(p, y, np.repeat([2020, 2021], 2000), reference_risks=p, n_boot=100)
    >>> table[["period", "n", "alert"]].to_dict("records")
    [{'period': 2020, 'n': 2000, 'alert': False}, {'period': 2021, 'n': 2000, 'alert': False}]
    >>> bool(abs(table["auroc_difference"]).max() < 0.03)
    True
    """
    p = np.asarray(model_risks, dtype=float)
    y = None if outcomes is None else np.asarray(outcomes, dtype=float)
    labels = np.asarray(periods)
    if len(labels) != p.size or (y is not None and y.size != p.size):
        raise ValueError("model_risks, outcomes and periods need one value per row")
    rows = []
    for period in np.unique(labels):
        mask = labels == period
        rows.append(_period_row(period, p[mask], None if y is None else y[mask],
                                reference_risks, n_boot, seed))
    return pd.DataFrame(rows)


def _period_row(period: object, p: np.ndarray, y: np.ndarray | None,
                reference_risks: Sequence[float] | None, n_boot: int,
                seed: int) -> dict[str, object]:
    known = np.zeros(p.size, dtype=bool) if y is None else ~np.isnan(y)
    row: dict[str, object] = {
        "period": period.item() if isinstance(period, np.generic) else period,
        "n": int(p.size),
        "with_outcome": int(known.sum()),
        "events": int(y[known].sum()) if known.any() else float("nan"),
    }
    row.update({f"expected_{k}": v for k, v in expected_performance(p).items()})
    row.update(_realised_columns(y[known] if known.any() else None, p[known], n_boot, seed))
    row["auroc_difference"] = row["realised_auroc"] - row["expected_auroc"]
    row["brier_difference"] = row["realised_brier"] - row["expected_brier"]
    row["prediction_psi"] = (float("nan") if reference_risks is None
                             else psi(reference_risks, p))
    reason = _alert(row)
    row["alert"], row["reason"] = bool(reason), reason
    return row
