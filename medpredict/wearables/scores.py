"""The table every detector returns: one row per person-day it scored.

Columns: ``person``, ``date``, ``detector``, ``value`` (the monitored reading or the
anomaly score), ``baseline`` (the person's usual level it was compared with),
``statistic`` (the detector's test statistic), ``level`` (``"none"``, ``"yellow"`` or
``"red"``) and ``drivers`` (tuple of the signals that drove an alert).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

SCORE_COLUMNS = ["person", "date", "detector", "value", "baseline", "statistic", "level", "drivers"]
LEVELS = ("none", "yellow", "red")


def score_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    """Build a typed score table from row tuples in :data:`SCORE_COLUMNS` order."""
    frame = pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
    return frame.astype(
        {
            "person": str,
            "date": "datetime64[ns]",
            "detector": str,
            "value": float,
            "baseline": float,
            "statistic": float,
            "level": str,
        }
    )
