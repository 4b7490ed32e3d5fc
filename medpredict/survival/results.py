"""What a survival study produced: candidates, hold-outs and the selected model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.cohort import Cohort
from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.splits import Fold
from medpredict.spec import StudySpec
from medpredict.study.results import CandidateFailure
from medpredict.survival.conformal import LowerBound
from medpredict.survival.outcome import SurvivalOutcome
from medpredict.survival.scoring import SurvivalPredictions
from medpredict.trust.explanations import Attribution


@dataclass
class SurvivalCandidate:
    """One candidate's out-of-fold curves, metrics with CIs and fold models."""

    name: str
    estimator: Any
    predictions: SurvivalPredictions
    metrics: dict[str, Estimate]
    seconds: float
    delta: dict[str, Estimate] = field(default_factory=dict)


@dataclass
class SurvivalHoldout:
    """The selected model on a hold-out: temporal rows or an external table.

    ``lower_bounds`` are the rows' calibrated lower bounds on the time to the event, as
    ``medpredict predict`` gives them, and ``lower_bound_coverage`` their estimated
    (IPCW) coverage.
    """

    kind: str
    cohort: Cohort
    outcome: SurvivalOutcome
    predictions: SurvivalPredictions
    metrics: dict[str, Estimate]
    lower_bounds: np.ndarray | None = None
    lower_bound_coverage: Estimate | None = None


@dataclass
class SurvivalStudyResult:
    """Everything a survival study produced.

    ``lower_bound`` is calibrated on the selected model's out-of-fold curves;
    ``lower_bounds`` are the development rows' cross-fitted bounds (each fold calibrated
    on the others) and ``lower_bound_coverage`` their estimated (IPCW) coverage.
    """

    spec: StudySpec
    cohort: Cohort
    outcome: SurvivalOutcome
    folds: list[Fold]
    candidates: dict[str, SurvivalCandidate]
    best_name: str
    final_model: Any
    holdouts: list[SurvivalHoldout]
    failures: list[CandidateFailure]
    data_sha256: str
    background: pd.DataFrame | None = None
    explanation: Attribution | None = None
    lower_bound: LowerBound | None = None
    lower_bounds: np.ndarray | None = None
    lower_bound_coverage: Estimate | None = None
    seconds: float = 0.0
    model_dir: Path | None = None
    report_path: Path | None = None

    @property
    def best(self) -> SurvivalCandidate:
        return self.candidates[self.best_name]
