"""What a study produced: per-candidate results, hold-outs, failures, and their summaries.

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
    if v.scheme == "site":
        text = f"leave-one-site-out over {len(result.folds)} sites"
    else:
        prefix = "temporal development period, " if v.scheme == "temporal" else ""
        text = f"{prefix}{len(result.folds)}-fold stratified cross-validation{grouped}"
    holdouts = ", ".join(f"{h.kind} validation ({len(h.cohort.y)} rows)" for h in result.holdouts)
    return text + (f"; {holdouts}" if holdouts else "; internal validation only")
