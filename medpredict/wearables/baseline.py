"""Deviation of each person-day from that person's own recent baseline.

For each feature, the baseline is the median of the person's previous ``window_days``
calendar days (the current day excluded) and the spread is their interquartile range
/ 1.349 (a robust standard deviation), floored at a per-feature minimum so a very
steady person does not turn noise into large deviations. A day gets a deviation only
when at least ``min_history`` earlier days had a value.

Examples
--------
>>> import pandas as pd
>>> days = pd.date_range("2020-03-01", periods=10)
>>> daily = pd.DataFrame({"person": "p1", "date": days,
...                       "resting_hr": [60, 61, 59, 60, 60, 61, 59, 60, 64, 60]})
>>> z = personal_deviations(daily, ["resting_hr"], window_days=28, min_history=7)
>>> float(round(z["resting_hr"].iloc[8], 1))
4.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_SCALE = {
    "resting_hr": 1.0,
    "overnight_rhr": 1.0,
    "heart_rate_avg": 1.5,
    "daily_steps": 500.0,
    "sleep_hours": 0.25,
    "hrv_rmssd": 3.0,
    "hrv_sdnn": 3.0,
    "spo2_avg": 0.5,
    "temperature_avg": 0.1,
    "systolic": 3.0,
    "diastolic": 2.0,
}


def personal_baseline(
    daily: pd.DataFrame, feature: str, window_days: int = 28, min_history: int = 7
) -> tuple[pd.Series, pd.Series]:
    """Rolling personal median and robust spread of ``feature`` before each day.

    Returns two Series aligned with ``daily``'s index (NaN without enough history).
    """
    ordered = daily[["person", "date", feature]].sort_values(["person", "date"])
    rolling = (
        ordered.set_index("date")
        .groupby("person", sort=False)[feature]
        .rolling(f"{window_days}D", closed="left", min_periods=min_history)
    )
    median = rolling.median().to_numpy()
    iqr = (rolling.quantile(0.75) - rolling.quantile(0.25)).to_numpy() / 1.349
    median = pd.Series(median, index=ordered.index).reindex(daily.index)
    spread = pd.Series(iqr, index=ordered.index).reindex(daily.index)
    return median, spread


def personal_deviations(
    daily: pd.DataFrame,
    features: Sequence[str],
    window_days: int = 28,
    min_history: int = 7,
    min_scale: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Robust z-score of each feature against the person's previous ``window_days``.

    Parameters
    ----------
    daily : person-day table with ``person``, ``date`` and the ``features``.
    features : columns to compare.
    window_days, min_history : baseline window and the values it must contain.
    min_scale : floor of the spread per feature (default :data:`MIN_SCALE`, else 1).
    """
    floors = {**MIN_SCALE, **(min_scale or {})}
    out = pd.DataFrame(index=daily.index)
    for feature in features:
        if feature not in daily or daily[feature].notna().sum() == 0:
            out[feature] = np.nan
            continue
        median, spread = personal_baseline(daily, feature, window_days, min_history)
        scale = np.maximum(spread.to_numpy(), floors.get(feature, 1.0))
        out[feature] = (daily[feature].to_numpy(float) - median.to_numpy()) / scale
    return out
