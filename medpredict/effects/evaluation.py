"""Is the estimated heterogeneity real? Held-out tests of treatment-effect estimates.

Every test scores a ranking of patients by estimated benefit against doubly robust
scores (:func:`medpredict.effects.learners.dr_scores`) of patients the estimates were
not fitted on; intervals are percentile bootstraps over patients.

- :func:`rate`: the rank-weighted average treatment effect (Yadlowsky et al. 2023).
  AUTOC weighs the top of the ranking most, Qini weighs all of it. Its interval
  excluding 0 is the evidence that treating by the ranking does better than treating
  at random.
- :func:`policy_values`: the gain of "treat if the estimated benefit is above 0",
  of treating everyone, and of treating no one (0), over treating no one.
- :func:`group_effects`: the average effect within each group (declared subgroups, or
  quartiles of estimated benefit).
- :func:`pehe`: the error against true effects, when they are known (semi-synthetic data).
- :func:`check_overlap`: refuses, in plain words, to estimate effects for patients whose
  treatment was all but certain (propensity outside the bounds) when too many are.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0); tau = rng.normal(size=2000)
>>> scores = tau + rng.normal(0, 2, 2000)   # unbiased, noisy effect estimates
>>> found = rate(tau, scores, n_boot=200)
>>> shuffled = rate(rng.normal(size=2000), scores, n_boot=200)
>>> found["autoc"].low > 0, abs(shuffled["autoc"].value) < 0.2
(True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.evaluation.bootstrap import Estimate, bootstrap

OVERLAP_BOUNDS = (0.05, 0.95)
"""Propensities outside these leave one arm with almost no comparable patients."""


def pehe(true_effect: np.ndarray, estimated: np.ndarray) -> float:
    """Root mean squared error of the estimated individual effects (sqrt PEHE)."""
    return float(np.sqrt(np.mean((np.asarray(estimated) - np.asarray(true_effect)) ** 2)))


def toc_curve(benefit: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The targeting operator characteristic: ``(q, TOC(q))`` at ``q = k / n``.

    ``TOC(q)`` is how much more the top ``q`` share of patients, ranked by ``benefit``,
    benefit (mean of their ``scores``) than everyone does.

    Examples
    --------
    >>> q, toc = toc_curve(np.array([3.0, 2.0, 1.0]), np.array([0.3, 0.0, -0.3]))
    >>> q.round(2).tolist(), toc.round(2).tolist()
    ([0.33, 0.67, 1.0], [0.3, 0.15, 0.0])
    """
    ranked = np.asarray(scores, dtype=float)[np.argsort(-np.asarray(benefit), kind="stable")]
    n = ranked.size
    toc = np.cumsum(ranked) / np.arange(1, n + 1) - ranked.mean()
    return np.arange(1, n + 1) / n, toc


def _rate_values(_: np.ndarray, benefit: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    q, toc = toc_curve(benefit, scores)
    return {"autoc": float(toc.mean()), "qini": float(np.mean(q * toc))}


def rate(
    benefit: np.ndarray, scores: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """AUTOC and Qini of a ranking by ``benefit`` against held-out ``scores``, with CIs."""
    benefit = np.asarray(benefit, dtype=float)
    scores = np.asarray(scores, dtype=float)
    return bootstrap(_rate_values, np.zeros(benefit.size), benefit, scores, n_boot=n_boot,
                     seed=seed)


def _policy(_: np.ndarray, benefit: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    treated = benefit > 0
    return {
        "treat_by_benefit": float(np.mean(treated * scores)),
        "treat_all": float(np.mean(scores)),
        "treated_share": float(treated.mean()),
    }


def policy_values(
    benefit: np.ndarray, scores: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """Mean gain per patient over treating no one: treating by benefit, treating all."""
    return bootstrap(_policy, np.zeros(np.size(benefit)), np.asarray(benefit, float),
                     np.asarray(scores, float), n_boot=n_boot, seed=seed)


def group_effects(
    groups: pd.Series, scores: np.ndarray, benefit: np.ndarray | None = None,
    n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Average effect (mean score) in each group with its CI, and the mean estimate.

    Parameters
    ----------
    groups : each patient's group (e.g. sex, or a quartile of estimated benefit).
    scores : held-out doubly robust scores.
    benefit : estimated effects, whose group means are shown beside (optional).
    """
    groups = pd.Series(np.asarray(groups), name=getattr(groups, "name", "group"))
    scores = np.asarray(scores, dtype=float)
    rows = []
    for value in sorted(groups.dropna().unique(), key=str):
        inside = (groups == value).to_numpy()
        mean = bootstrap(lambda _, s: {"effect": float(np.mean(s))}, np.zeros(inside.sum()),
                         scores[inside], n_boot=n_boot, seed=seed)["effect"]
        rows.append({
            "group": value, "patients": int(inside.sum()), "effect": mean.value,
            "low": mean.low, "high": mean.high,
            "estimated": float(np.mean(benefit[inside])) if benefit is not None else np.nan,
        })
    return pd.DataFrame(rows)


def benefit_quartiles(benefit: np.ndarray) -> pd.Series:
    """Each patient's quartile of estimated benefit (Q1 lowest to Q4 highest)."""
    ranks = pd.Series(np.asarray(benefit)).rank(method="first")
    return pd.qcut(ranks, 4, labels=["Q1", "Q2", "Q3", "Q4"]).astype(str).rename("benefit")


def check_overlap(
    propensity: np.ndarray, treatment: np.ndarray,
    bounds: tuple[float, float] = OVERLAP_BOUNDS, max_outside: float = 0.1,
) -> dict[str, float]:
    """Propensity overlap by arm; refused when more than ``max_outside`` lie outside.

    Parameters
    ----------
    propensity : each patient's estimated probability of treatment (held out).
    treatment : 0/1 treatment actually given.
    bounds : the propensities inside which both treatments were realistic.
    max_outside : the largest share of patients allowed outside ``bounds``.

    Returns
    -------
    The share outside the bounds overall and in each arm, and the propensity range of
    each arm.

    Raises
    ------
    DataError
        Saying how many patients had a near-certain treatment, so their effect could
        only be extrapolated, and what to do.

    Examples
    --------
    >>> import numpy as np
    >>> check_overlap(np.array([0.3, 0.5, 0.6, 0.4]), np.array([0, 1, 1, 0]))["outside"]
    0.0
    >>> check_overlap(np.array([0.01, 0.02, 0.99, 0.5]), np.array([0, 0, 1, 1]))
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: 3 of 4 patients (75%) had a propensity outside 0.05-0.95: for them one treatment was all but certain, so the data hold almost no comparable patients who got the other, and their effect could only be extrapolated. Restrict the cohort to patients for whom both treatments were realistic, or add the reasons for the treatment choice as features
    """  # noqa: E501
    e = np.asarray(propensity, dtype=float)
    t = np.asarray(treatment).astype(int)
    low, high = bounds
    outside = (e < low) | (e > high)
    summary = {"outside": float(outside.mean())}
    for arm, name in ((0, "control"), (1, "treated")):
        rows = t == arm
        summary[f"outside_{name}"] = float(outside[rows].mean()) if rows.any() else np.nan
        summary[f"min_{name}"] = float(e[rows].min()) if rows.any() else np.nan
        summary[f"max_{name}"] = float(e[rows].max()) if rows.any() else np.nan
    if summary["outside"] > max_outside:
        raise DataError(
            f"{int(outside.sum())} of {e.size} patients ({summary['outside']:.0%}) had a "
            f"propensity outside {low:g}-{high:g}: for them one treatment was all but "
            "certain, so the data hold almost no comparable patients who got the other, and "
            "their effect could only be extrapolated. Restrict the cohort to patients for "
            "whom both treatments were realistic, or add the reasons for the treatment "
            "choice as features"
        )
    return summary
