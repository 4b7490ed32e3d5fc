"""Resting heart rate from minute heart rate and steps (as in Mishra et al. 2020).

A minute counts as *resting* when heart rate was recorded in it and the step counter
recorded zero steps in that minute and each of the ``quiet_minutes`` minutes before it.
Minutes without a steps record are treated as unknown, hence not resting: a watch that
was not counting steps cannot vouch for stillness. Times are the reading's local wall
clock (its own UTC offset), so the night window follows the person across time zones.

Examples
--------
>>> import numpy as np, pandas as pd
>>> t = pd.date_range("2020-03-10", periods=120, freq="min")
>>> hr = pd.DataFrame({"person": "p1", "signal": "heart_rate", "local_time": t,
...                    "value": 60.0})
>>> steps = hr.assign(signal="steps", value=np.r_[np.zeros(60), np.full(60, 30.0)])
>>> rest = RestingHeartRate(quiet_minutes=12).transform(pd.concat([hr, steps]))
>>> len(rest)  # minutes 12..59 are resting; the walk from minute 60 on is not
48
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

_NS_PER_MIN = 60_000_000_000


def _local_minutes(frame: pd.DataFrame) -> np.ndarray:
    """Integer local minutes since the epoch for each reading."""
    if "local_time" in frame:
        local = frame["local_time"].to_numpy().astype("datetime64[ns]")
    else:
        offset = frame["utc_offset_min"].to_numpy().astype("timedelta64[m]")
        local = (frame["time_utc"].to_numpy() + offset).astype("datetime64[ns]")
    return local.astype(np.int64) // _NS_PER_MIN


class RestingHeartRate(TransformerMixin, BaseEstimator):
    """Resting-minute heart rate and its daily and overnight means.

    Parameters
    ----------
    quiet_minutes : int
        Minutes without steps required before a minute counts as resting (12, as in
        Mishra et al. 2020).
    night_hours : tuple of int
        Local hours ``[start, end)`` of the overnight window (00:00-07:00, as in the
        NightSignal algorithm of Alavi et al. 2022).
    min_day_minutes : int
        Resting minutes needed for a daily resting heart rate.
    min_night_minutes : int
        Resting minutes needed in the night window for an overnight resting heart rate.
    """

    def __init__(
        self,
        quiet_minutes: int = 12,
        night_hours: tuple[int, int] = (0, 7),
        min_day_minutes: int = 60,
        min_night_minutes: int = 30,
    ) -> None:
        self.quiet_minutes = quiet_minutes
        self.night_hours = night_hours
        self.min_day_minutes = min_day_minutes
        self.min_night_minutes = min_night_minutes

    def fit(self, readings: pd.DataFrame, y: None = None) -> RestingHeartRate:
        """Nothing to learn; present for the scikit-learn API."""
        return self

    def resting_minutes(
        self, hr_minutes: np.ndarray, hr: np.ndarray, step_minutes: np.ndarray, steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Resting minutes (local epoch minutes) and their mean heart rate, for one person.

        Parameters
        ----------
        hr_minutes, hr : local minute and value of each heart-rate reading.
        step_minutes, steps : local minute and count of each steps reading.
        """
        if hr.size == 0:
            return np.array([], dtype=np.int64), np.array([], dtype=float)
        first = (
            hr_minutes.min()
            if step_minutes.size == 0
            else min(hr_minutes.min(), step_minutes.min())
        )
        last = (
            hr_minutes.max()
            if step_minutes.size == 0
            else max(hr_minutes.max(), step_minutes.max())
        )
        size = int(last - first + 1)
        hr_idx = hr_minutes - first
        hr_count = np.bincount(hr_idx, minlength=size)
        hr_sum = np.bincount(hr_idx, weights=hr, minlength=size)
        step_idx = step_minutes - first
        seen = np.bincount(step_idx, minlength=size) > 0
        moving = np.bincount(step_idx, weights=steps, minlength=size) > 0
        not_still = np.concatenate([[0], np.cumsum(~seen | moving)])
        minute = np.arange(size)
        window_start = np.maximum(minute - self.quiet_minutes, 0)
        still = (not_still[minute + 1] - not_still[window_start]) == 0
        resting = still & (hr_count > 0) & (minute >= self.quiet_minutes)
        return minute[resting] + first, hr_sum[resting] / hr_count[resting]

    def transform(self, readings: pd.DataFrame) -> pd.DataFrame:
        """Per-minute resting heart rate (``person``, ``minute``, ``heart_rate``).

        ``readings`` holds ``heart_rate`` and ``steps`` rows with ``person``, ``signal``,
        ``value`` and either ``local_time`` or ``time_utc`` plus ``utc_offset_min``.
        """
        parts = []
        for person, rows in readings.groupby("person", sort=True, observed=True):
            minutes = _local_minutes(rows)
            signal = rows["signal"].to_numpy()
            values = rows["value"].to_numpy(dtype=float)
            is_hr, is_steps = signal == "heart_rate", signal == "steps"
            rest_min, rest_hr = self.resting_minutes(
                minutes[is_hr], values[is_hr], minutes[is_steps], values[is_steps]
            )
            parts.append(
                pd.DataFrame(
                    {
                        "person": person,
                        "minute": (rest_min * _NS_PER_MIN).astype("datetime64[ns]"),
                        "heart_rate": rest_hr,
                    }
                )
            )
        if not parts:
            return pd.DataFrame(columns=["person", "minute", "heart_rate"])
        return pd.concat(parts, ignore_index=True)

    def summarise(self, person: str, minutes: np.ndarray, hr: np.ndarray) -> pd.DataFrame:
        """Daily ``resting_hr`` and ``overnight_rhr`` for one person's resting minutes."""
        day = minutes // 1440
        hour = (minutes % 1440) // 60
        days, index = np.unique(day, return_inverse=True)
        count = np.bincount(index, minlength=days.size)
        total = np.bincount(index, weights=hr, minlength=days.size)
        start, end = self.night_hours
        night = (hour >= start) & (hour < end)
        n_count = np.bincount(index[night], minlength=days.size)
        n_total = np.bincount(index[night], weights=hr[night], minlength=days.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            resting = np.where(count >= self.min_day_minutes, total / count, np.nan)
            overnight = np.where(n_count >= self.min_night_minutes, n_total / n_count, np.nan)
        return pd.DataFrame(
            {
                "person": person,
                "date": (days * 86_400_000_000_000).astype("datetime64[ns]"),
                "resting_hr": resting,
                "overnight_rhr": overnight,
                "resting_minutes": count,
            }
        )

    def daily(self, readings: pd.DataFrame) -> pd.DataFrame:
        """Daily ``resting_hr``, ``overnight_rhr`` and ``resting_minutes`` per person.

        ``overnight_rhr`` on date *D* is the mean resting heart rate during the night
        window of *D* (the night that ends on the morning of *D*).
        """
        minutes = self.transform(readings)
        parts = [
            self.summarise(
                person,
                rows["minute"].to_numpy().astype(np.int64) // _NS_PER_MIN,
                rows["heart_rate"].to_numpy(),
            )
            for person, rows in minutes.groupby("person", sort=True)
        ]
        columns = ["person", "date", "resting_hr", "overnight_rhr", "resting_minutes"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
