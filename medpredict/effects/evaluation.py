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

from medpredict.evaluation.bootstrap import Estimate, bootstrap


def pehe(true_effect: np.ndarray, estimated: np.ndarray) -> float:
    """Root mean squared error of the estimated individual effects (sqrt PEHE)."""
    return float(np.sqrt(np.mean((np.asarray(estimated) - np.asarray(true_effect)) ** 2)))


def _rate_values(_: np.ndarray, benefit: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    order = np.argsort(-benefit, kind="stable")
    ranked = scores[order]
    n = ranked.size
    top = np.cumsum(ranked) / np.arange(1, n + 1) - ranked.mean()  # TOC at q = k / n
    q = np.arange(1, n + 1) / n
    return {"autoc": float(top.mean()), "qini": float(np.mean(q * top))}


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
