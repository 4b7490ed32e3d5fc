"""The study: one runner every modality flows through.

``runner`` runs a study: ``candidates`` cross-validates (or ``search`` searches) the
candidate models through the cross-validation loop of ``validation``, selects and refits
one; ``nested`` estimates the whole procedure by nested cross-validation; ``results``
holds what a study produced; ``outputs`` writes the model directory, ``metrics.json``
and the report (``report``).

Examples
--------
>>> from medpredict.study import run_study
>>> callable(run_study)
True
"""

from medpredict.study.results import (
    CandidatesFailedError,
    CandidateWarning,
    NotMeaningful,
    StudyResult,
)
from medpredict.study.runner import run_study

__all__ = ["CandidateWarning", "CandidatesFailedError", "NotMeaningful", "StudyResult", "run_study"]
