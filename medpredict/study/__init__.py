"""The study: one runner every modality flows through.

``runner`` cross-validates candidates and selects, refits and validates one;
``results`` holds what a study produced; ``outputs`` writes the model directory,
``metrics.json`` and the report (``report``); ``search`` is the budgeted search.

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
