"""What a survival study produced: candidates, hold-outs and the selected model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medpredict.data.cohort import Cohort
from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.splits import Fold
from medpredict.spec import StudySpec
from medpredict.study.results import CandidateFailure
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
    """The selected model on a hold-out: temporal rows or an external table."""

    kind: str
    cohort: Cohort
    outcome: SurvivalOutcome
    predictions: SurvivalPredictions
    metrics: dict[str, Estimate]


@dataclass
class SurvivalStudyResult:
    """Everything a survival study produced."""

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
    seconds: float = 0.0
    model_dir: Path | None = None
    report_path: Path | None = None

    @property
    def best(self) -> SurvivalCandidate:
        return self.candidates[self.best_name]
