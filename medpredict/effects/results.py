"""What a treatment-effect study found, held in memory for its outputs and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.cohort import Cohort
from medpredict.effects.outcome import EffectOutcome
from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.splits import Fold
from medpredict.spec import StudySpec


@dataclass
class EffectCandidate:
    """One learner's out-of-fold benefits and how well they match held-out scores.

    ``metrics``: ``autoc`` and ``qini`` (RATE), and ``dr_loss``, the mean squared
    difference between the estimated benefit and held-out doubly robust scores (lower
    is better; the selection criterion).
    """

    name: str
    benefit: np.ndarray
    metrics: dict[str, Estimate]
    seconds: float


@dataclass
class EffectStudyResult:
    """Everything a treatment-effect study found.

    ``scores`` are the held-out doubly robust scores of benefit (signed like benefit);
    ``propensity`` each patient's held-out estimated probability of treatment;
    ``trimmed`` the table rows left out because their propensity was outside the
    overlap bounds.
    """

    spec: StudySpec
    cohort: Cohort
    treated: np.ndarray
    outcome: EffectOutcome
    folds: list[Fold]
    propensity: np.ndarray
    assignment: float | None
    overlap: dict[str, float]
    scores: np.ndarray
    candidates: dict[str, EffectCandidate]
    best_name: str
    final_model: Any
    average: Estimate
    policy: dict[str, Estimate]
    subgroups: pd.DataFrame
    quartiles: pd.DataFrame
    data_sha256: str
    trimmed: list[int] = field(default_factory=list)
    seconds: float = 0.0
    model_dir: Path | None = None
    report_path: Path | None = None

    @property
    def best(self) -> EffectCandidate:
        return self.candidates[self.best_name]

    @property
    def heterogeneity_detected(self) -> bool:
        """The selected learner's AUTOC interval lies above 0."""
        return self.best.metrics["autoc"].low > 0

    @property
    def verdict(self) -> str:
        """The plain-language answer to "do patients differ in benefit?"."""
        autoc = self.best.metrics["autoc"]
        if self.heterogeneity_detected:
            return (f"Heterogeneity detected: treating the patients ranked highest by "
                    f"estimated benefit does better than treating at random (AUTOC {autoc}, "
                    "interval above 0). The individual estimates carry real information.")
        return (f"No heterogeneity detectable: the ranking by estimated benefit does no "
                f"better than chance on held-out patients (AUTOC {autoc}, interval "
                "includes 0 or lies below it). Use the average effect for everyone; the "
                "individual estimates are not evidence that patients differ.")
