"""Overfitting and validity checks: learning curves, optimism, events per variable.

* A learning curve refits the whole pipeline (preprocessing included) inside each
  cross-validation fold on growing fractions of the training rows and scores AUROC
  on the training rows and on the held-out fold. A validation curve still rising at
  full size says more data would help; a wide, persistent train-validation gap says
  the model memorises.
* Optimism: the final model's AUROC on its own training data minus the
  cross-validated AUROC. A gap above ``max_gap`` is warned about.
* Events per variable: the smaller outcome class divided by the number of candidate
  model parameters (one per transformed column: each one-hot level and missing
  indicator counts). Below ``min_epv`` (default 10) the model is likely overfitted
  (Peduzzi et al. 1996; Riley et al., BMJ 2020, for a full sample-size calculation).
* Validation scope: when no temporal or external validation was done, a clear
  warning says that performance in other settings is unknown.

Examples
--------
>>> import numpy as np
>>> round(events_per_variable(np.r_[np.zeros(90), np.ones(10)], 4), 1)
2.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import learning_curve

from medpredict.encoders.tabular import standard_parts
from medpredict.evaluation.metrics import auroc
from medpredict.evaluation.splits import inner_folds
from medpredict.report.html import Section, callout, figure, table

LARGE_CURVE_ROWS = 20_000


@dataclass
class LearningCurve:
    """AUROC on training and validation folds at growing training-set sizes."""

    sizes: np.ndarray
    train_mean: np.ndarray
    train_sd: np.ndarray
    validation_mean: np.ndarray
    validation_sd: np.ndarray

    @property
    def gap(self) -> float:
        """Train minus validation AUROC at the largest size."""
        return float(self.train_mean[-1] - self.validation_mean[-1])

    @property
    def still_improving(self) -> bool:
        """Whether the validation AUROC rose by more than its SD over the last step."""
        if len(self.sizes) < 2:
            return False
        rise = self.validation_mean[-1] - self.validation_mean[-2]
        return bool(rise > max(self.validation_sd[-1], 0.005))


def learning_curve_auroc(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    n_sizes: int = 5,
    n_splits: int = 5,
    seed: int = 0,
) -> LearningCurve:
    """Learning curve of AUROC; every fit (preprocessing included) sees training rows only.

    Parameters
    ----------
    estimator : unfitted (or fitted; it is cloned) pipeline or classifier.
    X, y : development data and 0/1 outcomes.
    groups : optional patient ids: folds keep a patient's rows together.
    n_sizes : number of training-set sizes, from 20% to 100% of each training fold.
    n_splits : cross-validation folds.
    seed : random seed of the folds and subsampling.
    """
    y = np.asarray(y).astype(int)
    cv = inner_folds(y, None if groups is None else np.asarray(groups), n_splits, seed)
    sizes, train, validation = learning_curve(
        estimator,
        X,
        y,
        groups=groups,
        train_sizes=np.linspace(0.2, 1.0, n_sizes),
        cv=cv,
        scoring="roc_auc",
        shuffle=True,
        random_state=seed,
        n_jobs=1,
    )
    return LearningCurve(
        sizes=sizes,
        train_mean=train.mean(axis=1),
        train_sd=train.std(axis=1),
        validation_mean=validation.mean(axis=1),
        validation_sd=validation.std(axis=1),
    )


def count_parameters(estimator: Any, X: pd.DataFrame) -> int:
    """Candidate parameters: the number of columns the model itself receives.

    For the standard pipeline that is the preprocessor's output width (each one-hot
    level and missing indicator counts); otherwise the number of input columns.
    """
    parts = standard_parts(estimator)
    if parts is not None:
        preprocessor = parts[0]
        if hasattr(preprocessor, "output_indices_"):
            return int(sum(s.stop - s.start for s in preprocessor.output_indices_.values()))
    return int(X.shape[1])


def events_per_variable(y: np.ndarray, n_parameters: int) -> float:
    """Size of the smaller outcome class per candidate parameter."""
    y = np.asarray(y)
    if n_parameters < 1:
        raise ValueError(f"n_parameters must be at least 1, got {n_parameters}")
    smaller = min(np.bincount(y.astype(int)).tolist() or [0])
    return smaller / n_parameters


@dataclass
class OverfittingCheck:
    """Results and warnings of the overfitting and validity checks."""

    events_per_variable: float
    n_parameters: int
    apparent_auroc: float
    validated_auroc: float
    validation: list[str]
    curve: LearningCurve | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def optimism(self) -> float:
        """Apparent minus cross-validated AUROC."""
        return self.apparent_auroc - self.validated_auroc

    @property
    def internal_only(self) -> bool:
        return not self.validation

    def summary(self) -> dict[str, Any]:
        """JSON-ready digest for the model card."""
        return {
            "events_per_variable": round(self.events_per_variable, 2),
            "candidate_parameters": self.n_parameters,
            "apparent_auroc": round(self.apparent_auroc, 4),
            "cross_validated_auroc": round(self.validated_auroc, 4),
            "optimism": round(self.optimism, 4),
            "validation": self.validation or ["internal (cross-validation) only"],
            "learning_curve_gap": None if self.curve is None else round(self.curve.gap, 4),
            "warnings": list(self.warnings),
        }


def check_overfitting(
    fitted: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    oof_risk: np.ndarray,
    *,
    validation: list[str] | None = None,
    estimator: Any | None = None,
    groups: np.ndarray | None = None,
    max_gap: float = 0.05,
    min_epv: float = 10.0,
    curve_sizes: int | None = None,
    curve_folds: int | None = None,
    seed: int = 0,
) -> OverfittingCheck:
    """Run every check on a final model and its out-of-fold risks.

    Parameters
    ----------
    fitted : the final model, fitted on all of ``X``.
    X, y : development data and 0/1 outcomes.
    oof_risk : out-of-fold risk of the event for each row.
    validation : further validation done, e.g. ``["temporal", "external"]``;
        empty means internal only.
    estimator : when given, a learning curve is computed for this (unfitted) pipeline.
    groups : optional patient ids for the learning curve's folds.
    max_gap : optimism / learning-curve gap above which a warning is given.
    min_epv : events per variable below which a warning is given.
    curve_sizes, curve_folds : training-set sizes and folds of the learning curve; by
        default 4 and 5, or 3 and 3 above ``LARGE_CURVE_ROWS`` rows, where the curve
        would otherwise cost a dozen fits of the final model on nearly all the data.
    seed : random seed.
    """
    y = np.asarray(y).astype(int)
    n_parameters = count_parameters(fitted, X)
    epv = events_per_variable(y, n_parameters)
    apparent = auroc(y, fitted.predict_proba(X)[:, 1])
    validated = auroc(y, np.asarray(oof_risk, dtype=float))
    large = len(y) > LARGE_CURVE_ROWS
    curve_sizes = curve_sizes or (3 if large else 4)
    curve_folds = curve_folds or (3 if large else 5)
    curve = (
        None
        if estimator is None
        else learning_curve_auroc(
            estimator, X, y, groups=groups, n_sizes=curve_sizes, n_splits=curve_folds, seed=seed
        )
    )
    check = OverfittingCheck(epv, n_parameters, apparent, validated, list(validation or []), curve)
    if epv < min_epv:
        check.warnings.append(
            f"Only {epv:.1f} events per candidate parameter ({min(np.bincount(y))} in the "
            f"smaller class, {n_parameters} parameters after encoding); below {min_epv:g} the "
            "model is likely overfitted. Reduce the predictors or collect more data."
        )
    if check.optimism > max_gap:
        check.warnings.append(
            f"The model's AUROC on its own training data ({apparent:.3f}) exceeds the "
            f"cross-validated AUROC ({validated:.3f}) by {check.optimism:.3f}: it fits noise "
            "in the development data. Trust the cross-validated figure, not the apparent one."
        )
    if curve is not None and curve.gap > max_gap:
        check.warnings.append(
            f"Learning curve: training AUROC exceeds validation AUROC by {curve.gap:.3f} at "
            "full size."
        )
    if curve is not None and curve.still_improving:
        check.warnings.append(
            "Learning curve: validation AUROC is still rising at full size; more data "
            "would likely improve the model."
        )
    if check.internal_only:
        check.warnings.append(
            "Validation is internal only (cross-validation on the development data). "
            "Performance in another hospital, population or period is unknown: validate "
            "temporally or externally before clinical use."
        )
    return check


def _curve_figure(curve: LearningCurve) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for mean, sd, label, colour in (
        (curve.train_mean, curve.train_sd, "training folds", "#d1242f"),
        (curve.validation_mean, curve.validation_sd, "validation folds", "#1f6feb"),
    ):
        ax.plot(curve.sizes, mean, marker="o", color=colour, label=label)
        ax.fill_between(curve.sizes, mean - sd, mean + sd, color=colour, alpha=0.15)
    ax.set_xlabel("training rows")
    ax.set_ylabel("AUROC")
    ax.legend()
    fig.tight_layout()
    return figure(fig, "Learning curve: AUROC on training and validation folds")


def overfitting_section(check: OverfittingCheck) -> Section:
    """Report section: warnings, optimism, events per variable, learning curve."""
    rows = [
        ["events per candidate parameter", f"{check.events_per_variable:.1f}"],
        ["candidate parameters (after encoding)", check.n_parameters],
        ["apparent AUROC (final model, training data)", f"{check.apparent_auroc:.3f}"],
        ["cross-validated AUROC", f"{check.validated_auroc:.3f}"],
        ["optimism", f"{check.optimism:+.3f}"],
        ["validation", ", ".join(check.validation) or "internal only"],
    ]
    parts = [callout(w) for w in check.warnings]
    if not check.warnings:
        parts.append(callout("No sign of overfitting in these checks.", kind="note"))
    parts.append(table(rows, ["check", "value"]))
    if check.curve is not None:
        parts.append(
            "<p>Learning curve: the whole pipeline refitted inside each fold on growing "
            "fractions of the training rows (mean ± SD over folds).</p>"
            + _curve_figure(check.curve)
            + table(
                [
                    [int(n), f"{t:.3f}", f"{v:.3f} ± {s:.3f}"]
                    for n, t, v, s in zip(
                        check.curve.sizes,
                        check.curve.train_mean,
                        check.curve.validation_mean,
                        check.curve.validation_sd,
                        strict=True,
                    )
                ],
                ["training rows", "training AUROC", "validation AUROC (± SD)"],
            )
        )
    return Section("Overfitting and validity", "".join(parts))
