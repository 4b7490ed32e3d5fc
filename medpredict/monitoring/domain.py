"""A domain classifier: can a model tell development rows from a period's rows?

:func:`domain_shift` stacks the reference table (development data, label 0) and a
period's table (label 1) and fits a classifier to tell them apart, by stratified
cross-validation, so that every row's probability ``p`` of being a period row comes
from a model that did not see it. Its out-of-fold AUROC (with a bootstrap 95% CI from
:func:`medpredict.evaluation.bootstrap.bootstrap`) says how different the two
populations are as a whole: 0.5 when they cannot be told apart, near 1 when they barely
overlap. Unlike per-feature drift it also sees changes in how features go together.

The classifier is LightGBM (one thread, shallow trees, few rounds): it finds shifts in
spread, shape and combinations of features and not only in their means, which a
logistic regression on the raw features would miss (a change of scale with the same
mean is invisible to it), and it takes missing values and categories as they are.

From ``p`` come importance weights for the reference rows,
``w = p / (1 - p) * n_reference / n_period``, an estimate of how much more common each
reference patient's kind is in the period than in development; reweighting the
reference rows by ``w`` makes them resemble the period (covariate shift). Weights are
clipped to at most ``clip`` (20 by default) so that a few rows cannot carry the
estimate, and Kish's effective sample size ``(sum w)^2 / sum w^2`` says how many
equally weighted rows they are worth.

Support: when more than 5% of the period's rows (``support_share``) have ``p > 0.99``,
or the domain AUROC is at least 0.95 (the two populations barely overlap; shallow
trees seldom give out-of-fold probabilities above 0.99 even then), many period
patients are of a kind the development data hardly contain, the weights cannot make up
for it, and the result flags the target as out of the source's support.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc

SUPPORT_P = 0.99
SUPPORT_SHARE = 0.05
SEPARABLE_AUROC = 0.95


@dataclass(frozen=True)
class DomainShift:
    """How well development rows and a period's rows can be told apart.

    Attributes
    ----------
    auroc : out-of-fold AUROC of the domain classifier, bootstrap 95% CI.
    weights : importance weight of each reference row (clipped), in its order.
    ess : Kish's effective sample size of ``weights``.
    share_beyond_support : share of period rows with out-of-fold ``p > 0.99``.
    out_of_support : whether that share exceeds ``support_share``.
    reason : the result in words.
    n_reference, n_period : rows on each side.
    """

    auroc: Estimate
    weights: np.ndarray
    ess: float
    share_beyond_support: float
    out_of_support: bool
    reason: str
    n_reference: int
    n_period: int

    def to_dict(self) -> dict[str, Any]:
        """Summary numbers only (no per-row weights)."""
        return {
            "auroc": self.auroc.to_dict(),
            "ess": self.ess,
            "share_beyond_support": self.share_beyond_support,
            "out_of_support": self.out_of_support,
            "reason": self.reason,
            "n_reference": self.n_reference,
            "n_period": self.n_period,
        }


def kish_ess(weights: Sequence[float]) -> float:
    """Kish's effective sample size, ``(sum w)^2 / sum w^2``.

    Examples
    --------
    >>> kish_ess([1.0, 1.0, 1.0, 1.0]), kish_ess([1.0, 0.0, 0.0, 0.0])
    (4.0, 1.0)
    """
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.sum(w**2))


def importance_weights(
    p: np.ndarray, n_reference: int, n_period: int, clip: float = 20.0
) -> np.ndarray:
    """``p / (1 - p) * n_reference / n_period``, clipped to ``[0, clip]``.

    Examples
    --------
    >>> importance_weights(np.array([0.5, 0.8, 0.999]), 100, 100).round(2).tolist()
    [1.0, 4.0, 20.0]
    """
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.minimum(p / (1 - p) * n_reference / n_period, clip)


def domain_classifier(seed: int = 0) -> LGBMClassifier:
    """The classifier :func:`domain_shift` fits: small LightGBM, one thread."""
    return LGBMClassifier(
        n_estimators=100, learning_rate=0.05, num_leaves=8, min_child_samples=20,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=1,
        random_state=seed, verbose=-1,
    )


def _stacked(reference: pd.DataFrame, current: pd.DataFrame,
             features: Sequence[str]) -> pd.DataFrame:
    """Both tables, reference first; text columns as categories of the union."""
    X = pd.concat([reference[list(features)], current[list(features)]], ignore_index=True)
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column]):
            X[column] = X[column].astype(str).where(X[column].notna()).astype("category")
    return X


def domain_shift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] | None = None,
    folds: int = 5,
    clip: float = 20.0,
    support_share: float = SUPPORT_SHARE,
    n_boot: int = 500,
    seed: int = 0,
) -> DomainShift:
    """Fit the domain classifier out of fold; AUROC, importance weights, support.

    Parameters
    ----------
    reference : development data.
    current : the period's data.
    features : columns to use (default: those of ``reference``).
    folds : cross-validation folds (stratified by side).
    clip : upper limit of the importance weights.
    support_share : share of period rows with ``p > 0.99`` above which the period is
        flagged as out of the source's support.
    n_boot : bootstrap resamples for the AUROC's interval.
    seed : seed of the folds, the classifier and the bootstrap.

    Returns
    -------
    DomainShift

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pima = load_dataset("pima_te")[["glu", "bmi", "age"]]
    >>> result = domain_shift(pima.iloc[::2], pima.iloc[1::2], n_boot=100)
    >>> result.auroc.low < 0.5 < result.auroc.high, result.out_of_support
    (True, False)
    """
    features = list(reference.columns if features is None else features)
    X = _stacked(reference, current, features)
    side = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p = cross_val_predict(domain_classifier(seed), X, side, cv=splitter,
                          method="predict_proba")[:, 1]
    estimate = bootstrap(lambda y, s: {"auroc": auroc(y, s)}, side, p,
                         n_boot=n_boot, seed=seed)["auroc"]
    weights = importance_weights(p[: len(reference)], len(reference), len(current), clip)
    beyond = float(np.mean(p[len(reference):] > SUPPORT_P))
    out = beyond > support_share or estimate.value >= SEPARABLE_AUROC
    ess = kish_ess(weights)
    return DomainShift(
        auroc=estimate,
        weights=weights,
        ess=ess,
        share_beyond_support=beyond,
        out_of_support=out,
        reason=_reason(estimate, ess, len(reference), beyond, out),
        n_reference=len(reference),
        n_period=len(current),
    )


def _reason(estimate: Estimate, ess: float, n_reference: int, beyond: float,
            out: bool) -> str:
    if estimate.low > 0.5:
        told = (f"The period's patients can be told apart from the development patients "
                f"(domain AUROC {estimate}; 0.5 means indistinguishable).")
    else:
        told = (f"The period's patients cannot be told apart from the development patients "
                f"(domain AUROC {estimate}; the interval includes 0.5).")
    weighted = (f" Reweighted to resemble the period, the {n_reference} development rows "
                f"are worth {ess:.0f} (effective sample size).")
    why = (f"{beyond:.0%} of the period's rows are almost surely not development-like "
           f"(p > 0.99)" if beyond > SUPPORT_SHARE else
           "the two populations can be told apart almost perfectly")
    support = (f" {why}: the target lies outside the development data's support, and "
               "reweighting cannot correct for it." if out else "")
    return told + weighted + support
