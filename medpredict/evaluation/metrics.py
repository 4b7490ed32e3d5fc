"""Discrimination, calibration and threshold metrics computed directly with NumPy.

The functions here are called thousands of times per study by the bootstrap, so they
avoid scikit-learn's per-call validation overhead. Their results match
``sklearn.metrics`` (AUROC with ties, average precision, Brier score); the tests check
that they do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

_EPS = 1e-12
HIGHER_IS_BETTER = {
    "auroc": True,
    "auprc": True,
    "macro_f1": True,
    "accuracy": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
}


def _ranked_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first.

    A stable sort is linear on input already ordered by descending risk.
    """
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    y_sorted = y[order]
    distinct = np.flatnonzero(np.diff(p_sorted)) if p_sorted.size > 1 else np.array([], int)
    last = np.r_[distinct, y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(float), fps.astype(float)


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; ties in ``p`` count half, as in scikit-learn."""
    return _auroc_from_counts(*_ranked_counts(y, p))


def _auroc_from_counts(tps: np.ndarray, fps: np.ndarray) -> float:
    if tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.trapezoid(tpr, fpr))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve as a step function (scikit-learn's AP)."""
    return _average_precision_from_counts(*_ranked_counts(y, p))


def _average_precision_from_counts(tps: np.ndarray, fps: np.ndarray) -> float:
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between predicted risk and outcome."""
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of the outcomes under the predicted risks."""
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _wsum(values: np.ndarray, w: np.ndarray | None) -> float:
    return float(np.sum(values) if w is None else w @ values)


def recalibration_fit(
    y: np.ndarray,
    p: np.ndarray,
    start: tuple[float, float, float] = (0.0, 0.0, 1.0),
    weights: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Offset intercept and the (intercept, slope) of logistic recalibration on logit(p).

    Damped Newton steps (halved until the likelihood improves) on closed-form 1x1 and
    2x2 systems, from ``start``; a nearby start, such as the full-sample fit when
    bootstrapping, converges in two or three steps. ``weights`` are case weights (a
    bootstrap resample's counts). When the outcomes are perfectly separated the slope
    has no finite estimate and the value after 25 steps is returned (it will be large).
    """
    return recalibration_fit_logit(y, _logit(p), start, weights)


def recalibration_fit_logit(
    y: np.ndarray,
    lp: np.ndarray,
    start: tuple[float, float, float] = (0.0, 0.0, 1.0),
    w: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """:func:`recalibration_fit` on the logit of the risks, already computed."""
    signs = 2 * np.asarray(y, dtype=float) - 1
    (intercept,) = _damped_newton(signs, lp, w, np.array(start[:1]), slope=False)
    b0, b1 = _damped_newton(signs, lp, w, np.array(start[1:]), slope=True)
    return float(intercept), float(b0), float(b1)


def _damped_newton(
    signs: np.ndarray, lp: np.ndarray, w: np.ndarray | None, beta: np.ndarray, slope: bool
) -> np.ndarray:
    """Maximise the logistic likelihood of ``lp + a`` (offset) or ``b0 + b1 * lp``.

    Works with the probability ``q`` each row's observed outcome has, which gives the
    likelihood, gradient and curvature from one ``expit`` and one ``log`` per step.
    """

    def evaluate(beta: np.ndarray) -> tuple[np.ndarray, float]:
        eta = beta[0] + beta[1] * lp if slope else lp + beta[0]
        q = expit(signs * eta)
        return q, _wsum(np.log(np.maximum(q, 1e-300)), w)

    q, loglik = evaluate(beta)
    for _ in range(25):
        curvature, residual = q * (1 - q), signs * (1 - q)
        if w is not None:
            curvature, residual = w * curvature, w * residual
        if slope:
            cl = curvature * lp
            s_c, s_cl, s_cll = curvature.sum(), cl.sum(), cl @ lp
            g0, g1 = residual.sum(), residual @ lp
            det = s_c * s_cll - s_cl * s_cl
            if det <= _EPS:
                break
            step = np.array([s_cll * g0 - s_cl * g1, s_c * g1 - s_cl * g0]) / det
        else:
            step = np.array([residual.sum() / (curvature.sum() + _EPS)])
        if np.max(np.abs(step)) < 1e-7:
            return beta + step
        trial_q, trial_loglik = evaluate(beta + step)
        while trial_loglik < loglik and np.max(np.abs(step)) > 1e-12:
            step = step / 2
            trial_q, trial_loglik = evaluate(beta + step)
        beta, q, loglik = beta + step, trial_q, trial_loglik
    return beta


def calibration_intercept_slope(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration-in-the-large and calibration slope.

    The intercept is fitted with the logit of ``p`` as an offset (ideal 0); the slope
    is the coefficient of that logit in a logistic recalibration model (ideal 1).
    """
    intercept, _, slope = recalibration_fit(y, p)
    return intercept, slope


SEPARATION_UNDEFINED = ("calibration_intercept", "calibration_slope")


def separates_perfectly(y: np.ndarray, p: np.ndarray) -> bool:
    """Whether every event has a higher risk than every non-event (AUROC 1).

    Logistic recalibration then has no finite maximum, so the metrics in
    :data:`SEPARATION_UNDEFINED` carry no meaning.

    Examples
    --------
    >>> separates_perfectly(np.array([0, 1, 1]), np.array([0.2, 0.3, 0.9]))
    True
    """
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return False
    return bool(p[y].min() > p[~y].max())


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Weighted mean |observed - predicted| over ``n_bins`` equal-width risk bins."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    filled = counts > 0
    gap = np.abs(observed[filled] - predicted[filled])
    return float(gap.sum() / y.size)


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, PPV and NPV when risk >= ``threshold`` is positive."""
    flagged = p >= threshold
    positives = y == 1
    tp = float(np.sum(flagged & positives))
    fp = float(np.sum(flagged & ~positives))
    fn = float(np.sum(~flagged & positives))
    tn = float(np.sum(~flagged & ~positives))

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def binary_metrics(
    y: np.ndarray,
    p: np.ndarray,
    thresholds: dict[str, float] | None = None,
    calibration_start: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> dict[str, float]:
    """Every binary metric medpredict reports, as a flat ``name -> value`` dict.

    Parameters
    ----------
    y : array of 0/1 outcomes.
    p : array of predicted risks for class 1.
    thresholds : mapping ``label -> risk threshold``; each adds
        ``sensitivity@label``, ``specificity@label``, ``ppv@label`` and ``npv@label``.
    calibration_start : warm start for :func:`recalibration_fit` (bootstrap speed-up).

    Examples
    --------
    >>> import numpy as np
    >>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> round(m["auroc"], 2)
    0.75
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    intercept, _, slope = recalibration_fit(y, p, calibration_start)
    counts = _ranked_counts(y, p)
    out = {
        "auroc": _auroc_from_counts(*counts),
        "auprc": _average_precision_from_counts(*counts),
        "brier": brier(y, p),
        "log_loss": log_loss(y, p),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "ece": expected_calibration_error(y, p),
    }
    for label, value in (thresholds or {}).items():
        for name, metric in threshold_metrics(y, p, value).items():
            out[f"{name}@{label}"] = metric
    return out


def multiclass_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, macro one-vs-rest AUROC, multi-class Brier and log loss.

    ``y`` holds class indices ``0..K-1`` matching the columns of ``proba``.
    """
    y = np.asarray(y, dtype=int)
    n_classes = proba.shape[1]
    onehot = np.eye(n_classes)[y]
    predicted = proba.argmax(axis=1)
    f1s, aucs = [], []
    for k in range(n_classes):
        tp = np.sum((predicted == k) & (y == k))
        denom = np.sum(predicted == k) + np.sum(y == k)
        f1s.append(2 * tp / denom if denom else 0.0)
        aucs.append(auroc(onehot[:, k], proba[:, k]))
    return {
        "accuracy": float(np.mean(predicted == y)),
        "macro_f1": float(np.mean(f1s)),
        "auroc": float(np.nanmean(aucs)),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "log_loss": float(-np.mean(np.log(np.clip(proba[np.arange(y.size), y], 1e-15, 1)))),
    }


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, sensitivity: float) -> float:
    """Highest risk threshold whose sensitivity is at least ``sensitivity``."""
    positives = np.sort(np.asarray(p)[np.asarray(y) == 1])[::-1]
    if positives.size == 0:
        raise ValueError("no positive outcomes: a sensitivity target cannot be met")
    k = int(np.ceil(sensitivity * positives.size)) - 1
    return float(positives[max(k, 0)])


def threshold_for_specificity(y: np.ndarray, p: np.ndarray, specificity: float) -> float:
    """Lowest risk threshold whose specificity is at least ``specificity``."""
    negatives = np.sort(np.asarray(p)[np.asarray(y) == 0])
    if negatives.size == 0:
        raise ValueError("no negative outcomes: a specificity target cannot be met")
    k = int(np.ceil(specificity * negatives.size)) - 1
    return float(np.nextafter(negatives[max(k, 0)], np.inf))


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """Decision-curve net benefit of the model, treat-all and treat-none.

    Net benefit at threshold ``t`` is ``TP/n - FP/n * t/(1-t)`` (Vickers & Elkin 2006).
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    n = y.size
    odds = t / (1 - t)
    flagged = p[None, :] >= t[:, None]
    tp = (flagged & (y[None, :] == 1)).sum(axis=1) / n
    fp = (flagged & (y[None, :] == 0)).sum(axis=1) / n
    prevalence = y.mean()
    return {
        "threshold": t,
        "model": tp - fp * odds,
        "treat_all": prevalence - (1 - prevalence) * odds,
        "treat_none": np.zeros_like(t),
    }
