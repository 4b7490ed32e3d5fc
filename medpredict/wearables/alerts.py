"""Alerts with plain-language lifestyle insights tied to the person's own baseline.

An alert is a scored person-day whose level is yellow or red. Each carries the
detector, the signals that drove it and short insights comparing the last few days
with the person's usual values (the median of the four weeks before them), e.g.
"Sleep was 25% below your usual 7.2 h on 4 of the last 4 nights". Every alert is
marked informational: it describes a change from the person's own pattern and is not
a diagnosis.

Examples
--------
>>> import pandas as pd
>>> days = pd.date_range("2020-03-01", periods=32)
>>> daily = pd.DataFrame({"person": "p1", "date": days,
...                       "sleep_hours": [7.5] * 28 + [5.5] * 4})
>>> lifestyle_insights(daily, days[-1])[0][:64]
'Sleep was 27% below your usual 7.5 h on 4 of the last 4 nights. '
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DISCLAIMER = (
    "Informational only: this describes a change from your own usual pattern and is not "
    "a diagnosis. If you feel unwell, contact a health professional."
)
ALERT_COLUMNS = ["person", "date", "detector", "level", "statistic", "drivers", "insights", "note"]


class _PersonDays:
    """One person's daily table as day numbers and float arrays, for fast windows."""

    def __init__(self, days: pd.DataFrame) -> None:
        self.day = days["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
        self.columns = {
            c: days[c].to_numpy(dtype=float)
            for c in days.columns
            if c not in ("person", "date") and pd.api.types.is_numeric_dtype(days[c])
        }

    def usual_and_recent(
        self, column: str, day: int, recent_days: int, window_days: int, min_history: int
    ) -> tuple[float, np.ndarray] | None:
        values = self.columns.get(column)
        if values is None:
            return None
        start_recent = day - recent_days + 1
        usual_mask = (self.day >= start_recent - window_days) & (self.day < start_recent)
        recent_mask = (self.day >= start_recent) & (self.day <= day)
        usual = values[usual_mask]
        usual = usual[~np.isnan(usual)]
        recent = values[recent_mask]
        recent = recent[~np.isnan(recent)]
        if usual.size < min_history or recent.size == 0:
            return None
        return float(np.median(usual)), recent


def lifestyle_insights(
    days: pd.DataFrame,
    date: pd.Timestamp,
    recent_days: int = 4,
    window_days: int = 28,
    min_history: int = 7,
) -> list[str]:
    """Plain-language comparisons of the last ``recent_days`` with the person's usual.

    Parameters
    ----------
    days : one person's daily table (``date`` plus feature columns).
    date : the alert day (the last day of the recent period).
    recent_days : length of the recent period.
    window_days, min_history : the usual-value window before the recent period and the
        values it needs.
    """
    return _insights(_PersonDays(days), date, recent_days, window_days, min_history)


def _insights(
    person: _PersonDays, date: pd.Timestamp, recent_days: int, window_days: int, min_history: int
) -> list[str]:
    day = int(np.datetime64(pd.Timestamp(date), "D").astype(np.int64))
    out: list[str] = []

    def stats(column: str) -> tuple[float, np.ndarray] | None:
        return person.usual_and_recent(column, day, recent_days, window_days, min_history)

    sleep = stats("sleep_hours")
    if sleep and sleep[0] > 0:
        usual, recent = sleep
        short = recent < 0.85 * usual
        if short.sum() >= max(2, (recent.size + 1) // 2):
            pct = 100 * (1 - recent[short].mean() / usual)
            out.append(
                f"Sleep was {pct:.0f}% below your usual {usual:.1f} h on {short.sum()} of the "
                f"last {recent.size} nights. A regular bedtime and a wind-down routine "
                "support recovery."
            )
    steps = stats("daily_steps")
    if steps and steps[0] > 0:
        usual, recent = steps
        ratio = recent.mean() / usual
        if ratio < 0.7:
            out.append(
                f"Activity was {100 * (1 - ratio):.0f}% below your usual {usual:,.0f} steps "
                f"over the last {recent.size} days. If you feel well, a short walk helps; "
                "if you feel unwell, rest."
            )
        elif ratio > 1.5:
            out.append(
                f"Activity was {100 * (ratio - 1):.0f}% above your usual {usual:,.0f} steps; "
                "hard exercise can raise resting heart rate for a day or two."
            )
    for column in ("overnight_rhr", "resting_hr"):
        rhr = stats(column)
        if rhr:
            usual, recent = rhr
            rise = recent.mean() - usual
            if rise >= 3:
                out.append(
                    f"Resting heart rate averaged {recent.mean():.0f} bpm, {rise:.0f} above "
                    f"your usual {usual:.0f}. Rest, fluids and avoiding alcohol help it "
                    "settle; if it keeps rising or you feel unwell, seek advice."
                )
            break
    hrv = stats("hrv_rmssd")
    if hrv and hrv[0] > 0:
        usual, recent = hrv
        drop = 1 - recent.mean() / usual
        if drop >= 0.2:
            out.append(
                f"Heart-rate variability was {100 * drop:.0f}% below your usual {usual:.0f} "
                "ms, often a sign of strain or poor recovery; lighter days may help."
            )
    temp = stats("temperature_avg")
    if temp and temp[1].mean() - temp[0] >= 0.5:
        out.append(
            f"Body temperature was {temp[1].mean() - temp[0]:.1f} °C above your usual "
            f"{temp[0]:.1f} °C."
        )
    spo2 = stats("spo2_avg")
    if spo2 and spo2[0] - spo2[1].mean() >= 2:
        out.append(
            f"Blood-oxygen readings were {spo2[0] - spo2[1].mean():.0f} points below your "
            f"usual {spo2[0]:.0f}%."
        )
    loud = stats("headphone_db_avg")
    if loud and loud[1].mean() >= 80:
        out.append(
            f"Headphone listening averaged {loud[1].mean():.0f} dB; long listening above "
            "80 dB can harm hearing, so lowering the volume helps."
        )
    return out


def build_alerts(scores: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Alert rows (yellow/red scores) with insights and the informational note."""
    flagged = scores[scores["level"].isin(["yellow", "red"])].copy()
    by_person = {person: _PersonDays(days) for person, days in daily.groupby("person", sort=False)}
    flagged["insights"] = [
        tuple(_insights(by_person[p], d, 4, 28, 7)) if p in by_person else ()
        for p, d in zip(flagged["person"], flagged["date"], strict=True)
    ]
    flagged["note"] = DISCLAIMER
    return flagged[ALERT_COLUMNS].sort_values(["person", "date", "detector"], ignore_index=True)


def write_alerts(alerts: pd.DataFrame, folder: str | Path) -> tuple[Path, Path]:
    """Write ``alerts.csv`` (lists joined with " | ") and ``alerts.json``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flat = alerts.assign(
        date=alerts["date"].dt.strftime("%Y-%m-%d"),
        drivers=alerts["drivers"].map(" | ".join),
        insights=alerts["insights"].map(" | ".join),
    )
    csv_path, json_path = folder / "alerts.csv", folder / "alerts.json"
    flat.to_csv(csv_path, index=False)
    records = [
        {
            **row,
            "drivers": list(row["drivers"]),
            "insights": list(row["insights"]),
            "date": pd.Timestamp(row["date"]).strftime("%Y-%m-%d"),
        }
        for row in alerts.to_dict("records")
    ]
    json_path.write_text(json.dumps(records, indent=1, default=float))
    return csv_path, json_path
