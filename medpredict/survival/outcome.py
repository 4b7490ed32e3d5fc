"""The outcome of a survival study: each patient's follow-up time and how it ended.

Examples
--------
>>> import pandas as pd
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc", "data": {"dataset": "pbc"}, "target": "status",
...     "task": "survival", "positive_class": 2,
...     "survival": {"duration_column": "time", "horizons": [1000], "competing_values": [1]}})
>>> frame = pd.DataFrame({"time": [400.0, 1200.0, 900.0], "status": [2, 0, 1]})
>>> outcome = survival_outcome(frame, spec)
>>> outcome.event.tolist(), outcome.competing.tolist()
([True, False, False], [False, False, True])
>>> outcome.structured()["time"].tolist()
[400.0, 1200.0, 900.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medpredict.data.checks import check_columns_present, check_durations, check_event_codes
from medpredict.spec import StudySpec

SURVIVAL_DTYPE = np.dtype([("event", bool), ("time", float)])
"""scikit-survival's structured outcome: event indicator, then time."""


@dataclass(frozen=True)
class SurvivalOutcome:
    """Follow-up time, whether it ended in the event, and whether in a competing event."""

    time: np.ndarray
    event: np.ndarray
    competing: np.ndarray

    def rows(self, rows: np.ndarray) -> SurvivalOutcome:
        """The outcome of the given row positions."""
        return SurvivalOutcome(self.time[rows], self.event[rows], self.competing[rows])

    def structured(self) -> np.ndarray:
        """The outcome as scikit-survival's structured array (competing events censored)."""
        out = np.empty(self.time.size, dtype=SURVIVAL_DTYPE)
        out["event"], out["time"] = self.event, self.time
        return out

    def __len__(self) -> int:
        return int(self.time.size)


def survival_outcome(frame: pd.DataFrame, spec: StudySpec) -> SurvivalOutcome:
    """Checked follow-up times and event codes of ``frame``'s rows (in its order)."""
    section = spec.survival
    check_columns_present(frame, [section.duration_column, spec.target], "survival outcome")
    time = check_durations(frame[section.duration_column])
    codes = check_event_codes(frame[spec.target], **section.codes(spec.positive_class))
    return SurvivalOutcome(time, codes == 1, codes == 2)


def from_structured(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(time, event)`` of a structured outcome (any two fields: event, then time)."""
    names = y.dtype.names
    if names is None or len(names) != 2:
        raise ValueError("a survival outcome is a structured array with fields (event, time)")
    return np.array(y[names[1]], dtype=float), np.array(y[names[0]], dtype=bool)
