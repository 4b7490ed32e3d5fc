"""Moving a model to a new site or period: estimates before target labels, updates after.

Two situations, each built from the other monitoring modules:

* **No target labels yet** (:func:`reweighted_performance`). The domain classifier of
  :func:`medpredict.monitoring.domain.domain_shift` tells the source (development) rows
  from the target's; its importance weights make the source rows, whose outcomes are
  known, resemble the target. The source's AUROC, Brier score and calibration
  intercept and slope are re-estimated with those weights as case weights
  (:class:`medpredict.evaluation.weighted.BinaryScorer`, intervals from
  :func:`medpredict.evaluation.bootstrap.bootstrap_weighted`), beside the label-free
  expected performance of the target's own risks
  (:func:`medpredict.monitoring.performance.expected_performance`), Kish's effective
  sample size of the weights and the domain classifier's support flag.
* **A few target labels** (:func:`adapt_with_labels`, e.g. 50-200 patients). Vergouwe's
  closed test (:func:`medpredict.monitoring.closed_test.closed_test`) chooses between the
  original model, recalibration in the large, logistic recalibration and model revision.

Assumptions of the reweighted estimates: only the case mix differs (covariate shift;
the risk of the outcome given the features is the same at both sites), and the target's
patients are of kinds the source contains (overlap, or support). Outside the support the
weights cannot make up for the missing patients and the estimates are extrapolations.
Results hold summary numbers only, never a patient's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medpredict.evaluation.bootstrap import Estimate, bootstrap_weighted
from medpredict.evaluation.weighted import BinaryScorer
from medpredict.monitoring.closed_test import ORIGINAL, ClosedTestResult, closed_test
from medpredict.monitoring.domain import SUPPORT_SHARE, DomainShift, domain_shift
from medpredict.monitoring.performance import REALISED, expected_performance

FEW_EFFECTIVE_ROWS = 100
"""Below this effective sample size the reweighted intervals rest on few rows."""
"""A domain AUROC at least this high: the two sites barely overlap."""
EVENTS_PER_PARAMETER = 10
"""Fewer target events than this per revision parameter: the revision is unstable."""


@dataclass(frozen=True)
class TransferEstimate:
    """A model's performance at a target estimated without the target's outcomes.

    Attributes
    ----------
    weighted : the source rows' AUROC, Brier score, calibration intercept and slope
        with the importance weights as case weights (bootstrap 95% CIs): the target's
        realised performance if only the case mix differs.
    unweighted : the same on the source rows as they are.
    expected : label-free expected performance of the target's own risks (calibration
        intercept 0 and slope 1 by assumption).
    domain : the domain classifier's result (AUROC, weights, support).
    ess : Kish's effective sample size of the weights.
    out_of_support : whether the target lies outside the source's support (the
        domain classifier's flag).
    summary : the result in words.
    n_source, n_target : rows on each side.
    """

    weighted: dict[str, Estimate]
    unweighted: dict[str, Estimate]
    expected: dict[str, float]
    domain: DomainShift
    ess: float
    out_of_support: bool
    summary: str
    n_source: int
    n_target: int

    def to_dict(self) -> dict[str, Any]:
        """Summary numbers only (no per-row weights)."""
        return {
            "weighted": {k: v.to_dict() for k, v in self.weighted.items()},
            "unweighted": {k: v.to_dict() for k, v in self.unweighted.items()},
            "expected": dict(self.expected),
            "domain": self.domain.to_dict(),
            "ess": self.ess,
            "out_of_support": self.out_of_support,
            "summary": self.summary,
            "n_source": self.n_source,
            "n_target": self.n_target,
        }


def _scored(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None, n_boot: int,
            seed: int) -> dict[str, Estimate]:
    """The REALISED metrics of ``p`` under case ``weights`` (None: all 1), bootstrap CIs."""
    scorer = BinaryScorer(y, p)

    def metrics(counts: np.ndarray | None) -> dict[str, float]:
        if weights is None:
            found = scorer(counts)
        else:
            found = scorer(weights if counts is None else counts * weights)
        return {k: found[k] for k in REALISED}

    return bootstrap_weighted(metrics, y, n_boot=n_boot, seed=seed)


def reweighted_performance(
    reference_X: pd.DataFrame,
    reference_y: Sequence[float],
    reference_risk: Sequence[float],
    target_X: pd.DataFrame,
    target_risk: Sequence[float],
    features: Sequence[str] | None = None,
    clip: float = 20.0,
    n_boot: int = 500,
    seed: int = 0,
) -> TransferEstimate:
    """Estimate a model's performance at a target site from unlabelled target rows.

    Parameters
    ----------
    reference_X : source (development) rows, with the columns of ``features``.
    reference_y : their 0/1 outcomes.
    reference_risk : the model's risks on them; out-of-sample ones (e.g.
        cross-validated) so that the source performance is not optimistic.
    target_X : the target's rows (no outcomes needed).
    target_risk : the model's risks on the target rows.
    features : columns the domain classifier reads (default: those of ``reference_X``);
        leave out a column that names the site itself, which separates the two
        perfectly without saying anything about case mix.
    clip : upper limit of the importance weights.
    n_boot : bootstrap resamples (domain AUROC and the metrics' intervals).
    seed : seed of the domain classifier's folds and of the bootstraps.

    Returns
    -------
    TransferEstimate

    Examples
    --------
    Younger and older Pima women (the older half as the target):

    >>> from sklearn.linear_model import LogisticRegression
    >>> from medpredict.data.datasets import load_dataset
    >>> women = load_dataset("pima_te")
    >>> features = ["glu", "bmi", "ped", "age"]
    >>> source, target = women[women["age"] < 30], women[women["age"] >= 30]
    >>> model = LogisticRegression(max_iter=1000).fit(source[features], source["type"])
    >>> result = reweighted_performance(
    ...     source[features], source["type"] == "Yes",
    ...     model.predict_proba(source[features])[:, 1], target[features],
    ...     model.predict_proba(target[features])[:, 1], n_boot=50)
    >>> result.out_of_support, result.ess < len(source)
    (True, True)
    >>> result.summary.startswith("The target is out of the source's support")
    True
    """
    y = np.asarray(reference_y, dtype=float)
    p = np.asarray(reference_risk, dtype=float)
    q = np.asarray(target_risk, dtype=float)
    if y.size != len(reference_X) or p.size != y.size:
        raise ValueError("reference_X, reference_y and reference_risk need one value per row")
    if q.size != len(target_X):
        raise ValueError("target_X and target_risk need one value per row")
    if not 0 < y.sum() < y.size:
        raise ValueError("the source rows need both outcomes (events and non-events)")
    features = list(reference_X.columns if features is None else features)
    domain = domain_shift(reference_X, target_X, features, clip=clip, n_boot=n_boot, seed=seed)
    weighted = _scored(y, p, domain.weights, n_boot, seed)
    unweighted = _scored(y, p, None, n_boot, seed)
    expected = expected_performance(q)
    out = domain.out_of_support
    return TransferEstimate(
        weighted=weighted,
        unweighted=unweighted,
        expected=expected,
        domain=domain,
        ess=domain.ess,
        out_of_support=out,
        summary=_summary(weighted, unweighted, expected, domain, out),
        n_source=int(y.size),
        n_target=int(q.size),
    )


def _summary(weighted: dict[str, Estimate], unweighted: dict[str, Estimate],
             expected: dict[str, float], domain: DomainShift, out: bool) -> str:
    parts = []
    if out:
        why = (f"{domain.share_beyond_support:.0%} of its rows are of a kind the source "
               f"hardly contains" if domain.share_beyond_support > SUPPORT_SHARE else
               f"the domain classifier tells the sites apart almost perfectly (AUROC "
               f"{domain.auroc.value:.3f})")
        parts.append(
            f"The target is out of the source's support: {why}, so these estimates are "
            f"extrapolations; collect target outcomes before relying on the model.")
    parts.append(
        f"Reweighted to resemble the target, the {domain.n_reference} source rows are worth "
        f"{domain.ess:.0f} (effective sample size); the domain classifier's AUROC is "
        f"{domain.auroc}.")
    parts.append(
        f"Estimated at the target: AUROC {weighted['auroc']}, Brier score "
        f"{weighted['brier']}, calibration intercept {weighted['calibration_intercept']}, "
        f"slope {weighted['calibration_slope']} (at the source: AUROC "
        f"{unweighted['auroc'].value:.3f}, Brier {unweighted['brier'].value:.3f}).")
    parts.append(
        f"The target's own risks promise AUROC {expected['auroc']:.3f} and Brier score "
        f"{expected['brier']:.3f} if they are calibrated there.")
    if domain.ess < FEW_EFFECTIVE_ROWS:
        parts.append(
            f"Fewer than {FEW_EFFECTIVE_ROWS} effective rows: the reweighted estimates are "
            f"imprecise.")
    parts.append("Both estimates assume only the case mix differs (no change in the risk "
                 "given the features).")
    return " ".join(parts)


@dataclass(frozen=True)
class Adaptation:
    """The update a few target labels support, and why.

    Attributes
    ----------
    method : ``"original"``, ``"recalibration_in_the_large"``,
        ``"logistic_recalibration"`` or ``"model_revision"``.
    model : the chosen model, fitted on the target labels (the original itself when
        ``method`` is ``"original"``).
    reason : the closed test's reason, with a caution when revision estimates many
        parameters from few events.
    test : the full :class:`~medpredict.monitoring.closed_test.ClosedTestResult`.
    """

    method: str
    model: Any
    reason: str
    test: ClosedTestResult

    @property
    def updated(self) -> bool:
        """Whether the chosen model differs from the original."""
        return self.method != ORIGINAL

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-compatible values."""
        return {"method": self.method, "reason": self.reason, "test": self.test.to_dict()}


def adapt_with_labels(
    model: Any,
    target_X: Any,
    target_y: Any,
    alpha: float = 0.05,
    features: Sequence[Any] | None = None,
) -> Adaptation:
    """Choose how far to update ``model`` for a target with a few labelled patients.

    Runs :func:`~medpredict.monitoring.closed_test.closed_test` on the labelled target
    rows and returns its choice. With few labels, name a few ``features`` for the
    revision (selective revision): re-estimating every coefficient of a model with many
    predictors from 100 patients is not supported by the data, and the reason says so
    when revision has fewer than 10 target events per parameter.

    Parameters
    ----------
    model : the deployed binary model (``predict_proba``).
    target_X, target_y : the labelled target rows; ``y`` as the model's classes or 0/1.
    alpha : level of each likelihood-ratio test.
    features : revision features (None: all; see
        :class:`~medpredict.monitoring.updating.ModelRevision`).

    Returns
    -------
    Adaptation

    Examples
    --------
    Ripley's two Pima sets are a random split of the same women:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from medpredict.data.datasets import load_dataset
    >>> features = ["glu", "bmi", "ped", "age"]
    >>> source, target = load_dataset("pima_tr"), load_dataset("pima_te")
    >>> model = LogisticRegression(max_iter=1000).fit(source[features], source["type"])
    >>> adaptation = adapt_with_labels(model, target[features][:150], target["type"][:150])
    >>> adaptation.method, adaptation.updated
    ('original', False)
    """
    result = closed_test(model, target_X, target_y, alpha=alpha, features=features)
    reason = result.reason
    revision_parameters = result.parameters["model_revision"]
    if result.events < EVENTS_PER_PARAMETER * revision_parameters:
        reason += (
            f" Caution: revision estimates {revision_parameters} parameters from "
            f"{result.events} target events (fewer than {EVENTS_PER_PARAMETER} per "
            f"parameter); name fewer revision features or gather more labels.")
    return Adaptation(method=result.method, model=result.model, reason=reason, test=result)
