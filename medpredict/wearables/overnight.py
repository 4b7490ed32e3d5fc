"""Overnight resting-heart-rate rule with yellow and red alerts (as in Alavi et al. 2022).

The NightSignal rule compares each night's mean resting heart rate (00:00-07:00) with
the person's running median of earlier nights. A night at least ``yellow_bpm`` above
that median is *elevated*; two elevated nights in a row raise a yellow alert on the
second, and two nights at least ``red_bpm`` above raise a red one (defaults 3 and 4
bpm, the published thresholds). Nights count as consecutive when at most
``max_gap_days`` apart, so one missing night does not reset the run.

Differences from the published state machine: the median uses earlier nights only (the
current night is the one being tested) and scoring starts after ``min_baseline_nights``.

Examples
--------
>>> import pandas as pd
>>> nights = pd.date_range("2020-03-01", periods=12)
>>> daily = pd.DataFrame({"person": "p1", "date": nights,
...                       "overnight_rhr": [60, 61, 59, 60, 60, 61, 59, 60, 65, 66, 60, 60]})
>>> s = OvernightRHRAlert(min_baseline_nights=7).detect(daily)
>>> s.set_index(s["date"].dt.day)["level"].to_dict()
{8: 'none', 9: 'none', 10: 'red', 11: 'none', 12: 'none'}
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from medpredict.wearables.scores import score_frame


class OvernightRHRAlert(BaseEstimator):
    """Yellow/red alerts when overnight resting heart rate stays above the running median.

    Parameters
    ----------
    signal : nightly column to test (``overnight_rhr``).
    fallback : column used for a person who has no ``signal`` values at all (e.g. a
        device's daily ``resting_hr`` when no intraday data exist); ``None`` disables it.
    yellow_bpm, red_bpm : elevation above the running median for a yellow/red night.
    consecutive : elevated nights in a row needed for an alert.
    min_baseline_nights : earlier nights needed before a night is tested.
    max_gap_days : largest calendar gap between nights that still counts as consecutive.
    """

    name = "overnight_rhr"

    def __init__(
        self,
        signal: str = "overnight_rhr",
        fallback: str | None = "resting_hr",
        yellow_bpm: float = 3.0,
        red_bpm: float = 4.0,
        consecutive: int = 2,
        min_baseline_nights: int = 7,
        max_gap_days: int = 2,
    ) -> None:
        self.signal = signal
        self.fallback = fallback
        self.yellow_bpm = yellow_bpm
        self.red_bpm = red_bpm
        self.consecutive = consecutive
        self.min_baseline_nights = min_baseline_nights
        self.max_gap_days = max_gap_days

    def fit(self, daily: pd.DataFrame, y: None = None) -> OvernightRHRAlert:
        """Nothing is shared between people; present for the scikit-learn API."""
        return self

    def _column(self, days: pd.DataFrame) -> str | None:
        if self.signal in days and days[self.signal].notna().any():
            return self.signal
        if self.fallback and self.fallback in days and days[self.fallback].notna().any():
            return self.fallback
        return None

    def detect(self, daily: pd.DataFrame) -> pd.DataFrame:
        """Score every night after the baseline (see :mod:`~medpredict.wearables.scores`)."""
        rows = []
        for person, days in daily.sort_values(["person", "date"]).groupby("person", sort=True):
            column = self._column(days)
            if column is None:
                continue
            nights = days.dropna(subset=[column])
            values = nights[column].to_numpy(float)
            dates = nights["date"].to_numpy()
            baseline = pd.Series(values).expanding().median().shift(1).to_numpy()
            enough = np.arange(values.size) >= self.min_baseline_nights
            elevation = values - baseline
            gap_ok = np.r_[
                False, np.diff(dates).astype("timedelta64[D]").astype(int) <= self.max_gap_days
            ]
            run_yellow = _runs(enough & (elevation >= self.yellow_bpm), gap_ok)
            run_red = _runs(enough & (elevation >= self.red_bpm), gap_ok)
            for i in np.flatnonzero(enough):
                level = (
                    "red"
                    if run_red[i] >= self.consecutive
                    else "yellow"
                    if run_yellow[i] >= self.consecutive
                    else "none"
                )
                drivers = (column,) if level != "none" else ()
                rows.append(
                    (
                        person,
                        dates[i],
                        self.name,
                        values[i],
                        baseline[i],
                        elevation[i],
                        level,
                        drivers,
                    )
                )
        return score_frame(rows)


def _runs(flag: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive ``flag`` entries ending at each position."""
    out = np.zeros(flag.size, dtype=int)
    for i in range(flag.size):
        if flag[i]:
            out[i] = out[i - 1] + 1 if i and linked[i] and flag[i - 1] else 1
    return out
