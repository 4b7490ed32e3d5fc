"""One row per person-day: the features every detector and insight reads.

Intraday readings are summarised per local day (heart-rate mean, step total, hours
worn, means of SpO2, temperature, blood pressure, sound exposure, medians of HRV
measurements) and resting heart rate comes from :class:`RestingHeartRate`. Device
daily summaries fill the days the intraday data do not cover.

Examples
--------
>>> import pandas as pd
>>> from medpredict.wearables.store import WearableStore
>>> store = WearableStore()
>>> _ = store.append(pd.DataFrame({"person": "p1", "signal": "resting_hr",
...                                "time": ["2020-03-10", "2020-03-11"], "value": [55, 57]}))
>>> daily_features(store)[["person", "resting_hr"]].to_dict("list")
{'person': ['p1', 'p1'], 'resting_hr': [55.0, 57.0]}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medpredict.wearables.resting import RestingHeartRate
from medpredict.wearables.store import WearableStore

FEATURES = (
    "resting_hr",
    "overnight_rhr",
    "heart_rate_avg",
    "heart_rate_min",
    "heart_rate_max",
    "daily_steps",
    "sleep_hours",
    "hrv_rmssd",
    "hrv_sdnn",
    "spo2_avg",
    "temperature_avg",
    "systolic",
    "diastolic",
    "env_noise_db_avg",
    "headphone_db_avg",
    "active_calories",
    "wear_hours",
    "resting_minutes",
)

_INTRADAY_SQL = """
SELECT person, CAST(time_utc + to_minutes(utc_offset_min::INTEGER) AS DATE) AS date,
  avg(value) FILTER (WHERE signal = 'heart_rate') AS heart_rate_avg,
  sum(value) FILTER (WHERE signal = 'steps') AS daily_steps,
  nullif(count(DISTINCT hour(time_utc + to_minutes(utc_offset_min::INTEGER)))
    FILTER (WHERE signal = 'heart_rate'), 0) AS wear_hours,
  avg(value) FILTER (WHERE signal = 'spo2') AS spo2_avg,
  avg(value) FILTER (WHERE signal = 'temperature') AS temperature_avg,
  avg(value) FILTER (WHERE signal = 'systolic') AS systolic,
  avg(value) FILTER (WHERE signal = 'diastolic') AS diastolic,
  median(value) FILTER (WHERE signal = 'hrv_rmssd') AS hrv_rmssd,
  median(value) FILTER (WHERE signal = 'hrv_sdnn') AS hrv_sdnn,
  avg(value) FILTER (WHERE signal = 'env_noise_db') AS env_noise_db_avg,
  avg(value) FILTER (WHERE signal = 'headphone_db') AS headphone_db_avg
FROM readings {where} GROUP BY ALL
"""


def daily_features(
    store: WearableStore,
    persons: list[str] | None = None,
    resting: RestingHeartRate | None = None,
) -> pd.DataFrame:
    """Wide person-day table with every column of :data:`FEATURES` (NaN where absent).

    Parameters
    ----------
    store : the readings.
    persons : restrict to these people (default: everyone).
    resting : resting-heart-rate settings (default :class:`RestingHeartRate`).
    """
    resting = resting or RestingHeartRate()
    where, params = ("WHERE person IN (SELECT unnest(?))", [list(persons)]) if persons else ("", [])
    intraday = store.query(_INTRADAY_SQL.format(where=where), params)
    intraday["date"] = pd.to_datetime(intraday["date"])
    rest = _resting(store, persons, resting)
    computed = intraday.merge(rest, on=["person", "date"], how="outer")
    summaries = store.daily(persons)
    if not summaries.empty:
        wide = summaries.pivot_table(
            index=["person", "day"], columns="signal", values="value", aggfunc="first"
        )
        wide = wide.reset_index().rename(columns={"day": "date"})
        wide.columns.name = None
        merged = computed.merge(wide, on=["person", "date"], how="outer", suffixes=("", "_day"))
        for column in [c for c in wide.columns if c not in ("person", "date")]:
            if f"{column}_day" in merged:
                merged[column] = merged[column].combine_first(merged.pop(f"{column}_day"))
        computed = merged
    for column in FEATURES:
        computed[column] = computed[column].astype(float) if column in computed else np.nan
    computed["person"] = computed["person"].astype(str)
    columns = ["person", "date", *FEATURES]
    return computed[columns].sort_values(["person", "date"], ignore_index=True)


def _resting(
    store: WearableStore, persons: list[str] | None, resting: RestingHeartRate
) -> pd.DataFrame:
    """Daily resting and overnight heart rate for everyone with heart-rate readings."""
    people = store.query(
        "SELECT DISTINCT person FROM readings WHERE signal = 'heart_rate' ORDER BY person"
    )["person"].tolist()
    parts = []
    for person in people:
        if persons is not None and person not in persons:
            continue
        hr_time, hr = store.stream(person, "heart_rate")
        step_time, steps = store.stream(person, "steps")
        minutes, values = resting.resting_minutes(_minutes(hr_time), hr, _minutes(step_time), steps)
        parts.append(resting.summarise(person, minutes, values))
    if not parts:
        return pd.DataFrame(
            columns=["person", "date", "resting_hr", "overnight_rhr", "resting_minutes"]
        ).astype({"date": "datetime64[ns]"})
    return pd.concat(parts, ignore_index=True)


def _minutes(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[m]").astype(np.int64)
