"""What a study produced: candidates, nested cross-validation, hold-outs, failures, summaries.

The runner (:mod:`medpredict.study.runner`) fills these; the report, the CLI and the model
metadata read them, so none of those needs the runner itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medpredict.data.cohort import Cohort
from medpredict.data.errors import DataError
from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.splits import Fold
from medpredict.spec import StudySpec


class CandidateWarning(UserWarning):
    """A candidate model failed and was left out; the study went on without it."""


class CandidatesFailedError(DataError):
    """Every candidate model failed; the message lists each one's reason."""


@dataclass(frozen=True)
class NotMeaningful(Estimate):
    """A metric the predictions make meaningless, shown as the reason instead of a number."""

    reason: str = ""

    def __str__(self) -> str:
        return f"not meaningful ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"value": None, "low": None, "high": None, "not_meaningful": self.reason}


@dataclass
class CandidateFailure:
    """A candidate that could not be evaluated: why, and the table rows the error names."""

    name: str
    reason: str
    rows: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "rows": self.rows}


class FoldError(Exception):
    """A model failed inside a fold; the message names the fold and the table rows."""

    def __init__(self, message: str, rows: list[int]) -> None:
        super().__init__(message)
        self.rows = rows

    def __reduce__(self) -> tuple[type, tuple[str, list[int]]]:
        return type(self), (str(self), self.rows)


@dataclass
class CandidateResult:
    """One candidate model's cross-validated performance."""

    name: str
    estimator: Any
    oof_proba: np.ndarray
    metrics: dict[str, Estimate]
    thresholds: dict[str, float]
    fit_seconds: float
    fold_estimators: list[Any] = field(default_factory=list)
    delta_vs_best: Estimate | None = None


@dataclass
class HoldoutResult:
    """The final model scored on rows it never saw (temporal or external)."""

    kind: str
    cohort: Cohort
    proba: np.ndarray
    metrics: dict[str, Estimate]


@dataclass
class NestedPlan:
    """Whether nested cross-validation runs, and why (shown in the report and the CLI).

    ``estimated_seconds`` and ``allowance_seconds`` are None when the spec decided.
    """

    run: bool
    reason: str
    estimated_seconds: float | None = None
    allowance_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "ran": self.run,
            "reason": self.reason,
            "estimated_seconds": rounded(self.estimated_seconds),
            "allowance_seconds": rounded(self.allowance_seconds),
        }


@dataclass
class NestedFold:
    """One outer fold: the candidate the inner selection chose and how it scored.

    ``inner_score`` is the winner's selection metric on its inner out-of-fold
    predictions (outer-training rows only); ``test_score`` the same metric on the
    outer-test rows (NaN when they hold a single class); ``thresholds`` the operating
    points fixed on the inner predictions and applied to the outer-test rows.
    """

    fold: int
    winner: str
    inner_score: float
    test_score: float
    test_rows: int
    thresholds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if np.isnan(value) else round(value, 4)

        return {
            "fold": self.fold,
            "winner": self.winner,
            "inner_score": number(self.inner_score),
            "test_score": number(self.test_score),
            "test_rows": self.test_rows,
            "thresholds": self.thresholds,
        }


@dataclass
class NestedResult:
    """The whole procedure's performance by nested cross-validation.

    ``metrics`` score the pooled outer-test predictions ``proba`` (bootstrap CIs,
    clustered by patient when the study has patient ids); ``optimism`` is the selected
    model's cross-validated estimate minus the nested one, per metric, with a paired
    bootstrap CI; ``folds`` holds each outer fold's winner; ``failures`` the candidates
    that failed inside an outer fold.
    """

    metrics: dict[str, Estimate]
    optimism: dict[str, Estimate]
    folds: list[NestedFold]
    proba: np.ndarray
    inner_folds: int
    seconds: float
    failures: list[CandidateFailure] = field(default_factory=list)

    def winners(self) -> dict[str, int]:
        """How many outer folds each candidate won, most first."""
        counts: dict[str, int] = {}
        for fold in self.folds:
            counts[fold.winner] = counts.get(fold.winner, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inner_folds": self.inner_folds,
            "seconds": round(self.seconds, 2),
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "optimism": {k: v.to_dict() for k, v in self.optimism.items()},
            "folds": [f.to_dict() for f in self.folds],
            "failed_candidates": [{"name": f.name, **f.to_dict()} for f in self.failures],
        }


@dataclass
class StudyResult:
    """Everything a study produced; the report and artifacts are built from it."""

    spec: StudySpec
    cohort: Cohort
    folds: list[Fold]
    candidates: dict[str, CandidateResult]
    best_name: str
    final_model: Any
    holdouts: list[HoldoutResult]
    data_sha256: str
    seconds: float
    trust: Any = None
    search: Any = None
    model_dir: Path | None = None
    report_path: Path | None = None
    failures: list[CandidateFailure] = field(default_factory=list)
    temporal: dict[str, Any] | None = None
    nested: NestedResult | None = None
    nested_plan: NestedPlan | None = None
    timeline: Any = None

    @property
    def best(self) -> CandidateResult:
        return self.candidates[self.best_name]

    @property
    def positive_class(self) -> Any:
        return self.cohort.positive_class


def temporal_text(summary: dict[str, Any]) -> str:
    """``cut-off 2020-01-01: development 2019-01-02 to 2019-12-30 (140 rows); ...``."""

    def side(label: str, part: dict[str, Any]) -> str:
        return f"{label} {part['first'][:10]} to {part['last'][:10]} ({part['rows']} rows)"

    return (
        f"cut-off {summary['cutoff'][:19].replace('T00:00:00', '').replace('T', ' ')}: "
        f"{side('development', summary['development'])}; "
        f"{side('temporal validation', summary['temporal'])}"
    )


def validation_text(result: StudyResult) -> str:
    """How the study validated, in words: ``5-fold stratified cross-validation; ...``."""
    v = result.spec.validation
    grouped = " grouped by patient" if result.spec.patient_column else ""
    if v.scheme == "fixed":
        train, held = result.folds[0]
        holdouts = ", ".join(
            f"{h.kind} rows ({len(h.cohort.y)}) scored once" for h in result.holdouts
        )
        return (
            f"given splits: candidates fitted on {len(train)} training rows and scored on "
            f"{len(held)} validation rows; the selected model refitted on both"
            + (f"; {holdouts}" if holdouts else "; no test rows")
        )
    if v.scheme == "site":
        text = f"leave-one-site-out over {len(result.folds)} sites"
    elif v.scheme == "leave_one_patient_out":
        text = f"leave-one-patient-out over {len(result.folds)} patients"
    else:
        prefix = "temporal development period, " if v.scheme == "temporal" else ""
        text = f"{prefix}{len(result.folds)}-fold stratified cross-validation{grouped}"
    if result.nested is not None:
        text += (
            f", nested ({result.nested.inner_folds} inner folds) to estimate the whole "
            "selection procedure"
        )
    holdouts = ", ".join(f"{h.kind} validation ({len(h.cohort.y)} rows)" for h in result.holdouts)
    return text + (f"; {holdouts}" if holdouts else "; internal validation only")


def nested_text(result: StudyResult) -> str | None:
    """The nested cross-validation in one line, or why it did not run (None: not planned).

    ``nested CV of pima: auroc 0.812 (0.750–0.868) for the whole procedure vs 0.830 for
    the selected model; optimism 0.018 (-0.010–0.047); winners logistic_regression 4,
    svm 1``
    """
    plan, nested = result.nested_plan, result.nested
    if plan is None:
        return None
    if nested is None:
        return f"nested cross-validation of {result.spec.name} not run: {plan.reason}"
    metric = result.spec.selection_metric
    selected = result.best.metrics[metric]
    winners = ", ".join(f"{name} {n}" for name, n in nested.winners().items())
    failed = (
        f"; {len(nested.failures)} candidate failure(s) inside outer folds"
        if nested.failures
        else ""
    )
    return (
        f"nested CV of {result.spec.name}: {metric} {nested.metrics[metric]} for the whole "
        f"procedure vs {selected.value:.3f} for the selected model; optimism "
        f"{nested.optimism[metric]}; outer-fold winners {winners}{failed}"
    )


def nested_summary(result: StudyResult) -> dict[str, Any] | None:
    """The ``nested`` entry of metrics.json: the decision and, when it ran, its results."""
    if result.nested_plan is None:
        return None
    summary = result.nested_plan.to_dict()
    if result.nested is not None:
        summary |= result.nested.to_dict()
    return summary
