"""Evaluate early-warning alerts the way the wearable literature does, with person-level CIs.

For people with a reported symptom onset (*positives*) an alert counts as a detection
when it falls in a window around onset (default 14 days before to 7 after); the lead
time is onset minus the first alert day in that window. For false alerts, the
*healthy* person-days are every scored day of people without a reported onset plus the
days of positives well before their onset (more than ``healthy_gap_days`` before). The
detection share is compared with the share a detector alerting at random with the same
daily rate would reach in the same windows.

People count only when they are *evaluable*: enough days of the monitored signal before
the window to form a baseline, and at least one day inside it. Confidence intervals come
from a bootstrap over people (stratified by positive/negative), and anything learned
across people is fitted on other people (:func:`cross_fitted_scores`).

Examples
--------
>>> import pandas as pd
>>> days = pd.date_range("2020-03-01", periods=40)
>>> daily = pd.DataFrame({"person": "p1", "date": days, "resting_hr": 60.0})
>>> scores = pd.DataFrame({"person": "p1", "date": days[20:], "level": "none"})
>>> scores.loc[scores["date"] == days[33], "level"] = "red"
>>> out = person_outcomes(scores, daily, pd.Series({"p1": days[35]}))
>>> bool(out.at[0, "detected"]), float(out.at[0, "lead_days"])
(True, 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from medpredict.evaluation.bootstrap import Estimate, bootstrap


def onset_dates(
    participants: pd.DataFrame,
    column: str = "symptoms_onset",
    person: str = "user_code",
    earliest: str = "2019-12-01",
    latest: str = "2020-12-31",
    date_format: str = "%m/%d/%Y",
) -> tuple[pd.Series, pd.DataFrame]:
    """Reported onset per person, and the rows excluded with the reason.

    Dates that do not parse or fall outside ``[earliest, latest]`` (e.g. a birth date
    typed into the onset field) are excluded rather than guessed.
    """
    given = participants.dropna(subset=[column])
    parsed = pd.to_datetime(given[column], format=date_format, errors="coerce")
    bad_parse = parsed.isna()
    out_of_range = ~bad_parse & ((parsed < earliest) | (parsed > latest))
    excluded = given.loc[bad_parse | out_of_range, [person, column]].assign(
        reason=np.where(
            bad_parse[bad_parse | out_of_range], "unparseable date", f"outside {earliest}..{latest}"
        )
    )
    keep = ~(bad_parse | out_of_range)
    return pd.Series(parsed[keep].to_numpy(), index=given.loc[keep, person].astype(str)), excluded


def person_outcomes(
    scores: pd.DataFrame,
    daily: pd.DataFrame,
    onsets: pd.Series,
    signal: str = "resting_hr",
    window: tuple[int, int] = (-14, 7),
    healthy_gap_days: int = 21,
    min_baseline_days: int = 14,
) -> pd.DataFrame:
    """One row per person: evaluable, positive, detected, lead time, healthy alert days.

    Parameters
    ----------
    scores : a detector's score table (``person``, ``date``, ``level``).
    daily : person-day table (evaluability is judged on ``signal``).
    onsets : reported onset date per person (positives); everyone else is negative.
    window : days relative to onset in which an alert counts as a detection.
    healthy_gap_days : positives' days earlier than onset minus this count as healthy.
    min_baseline_days : days with ``signal`` needed before the window (or in total, for
        negatives) to be evaluable.
    """
    observed = daily.dropna(subset=[signal])
    rows = []
    alerted = scores[scores["level"] != "none"]
    for person, days in observed.groupby("person", sort=True):
        mine = scores[scores["person"] == person]
        alert_dates = np.unique(alerted.loc[alerted["person"] == person, "date"].to_numpy())
        onset = onsets.get(person)
        if onset is None or pd.isna(onset):
            evaluable = len(days) >= min_baseline_days
            healthy = mine["date"].nunique()
            rows.append((person, False, evaluable, False, np.nan, len(alert_dates), healthy, 0))
            continue
        onset = pd.Timestamp(onset)
        start = onset + pd.Timedelta(days=window[0])
        end = onset + pd.Timedelta(days=window[1])
        before = int((days["date"] < start).sum())
        inside = int(((days["date"] >= start) & (days["date"] <= end)).sum())
        in_window = alert_dates[(alert_dates >= start) & (alert_dates <= end)]
        detected = in_window.size > 0
        lead = float((onset - pd.Timestamp(in_window.min())).days) if detected else np.nan
        cutoff = onset - pd.Timedelta(days=healthy_gap_days)
        healthy = mine.loc[mine["date"] < cutoff, "date"].nunique()
        healthy_alerts = int((alert_dates < cutoff).sum())
        scored_window = mine.loc[(mine["date"] >= start) & (mine["date"] <= end), "date"].nunique()
        evaluable = before >= min_baseline_days and inside > 0
        rows.append(
            (person, True, evaluable, detected, lead, healthy_alerts, healthy, scored_window)
        )
    return pd.DataFrame(
        rows,
        columns=[
            "person",
            "positive",
            "evaluable",
            "detected",
            "lead_days",
            "healthy_alert_days",
            "healthy_days",
            "window_scored_days",
        ],
    )


def _metrics(
    y: np.ndarray,
    detected: np.ndarray,
    lead: np.ndarray,
    alerts: np.ndarray,
    healthy: np.ndarray,
    window_days: np.ndarray,
) -> dict[str, float]:
    pos = y == 1
    rate = alerts.sum() / healthy.sum() if healthy.sum() else np.nan
    leads = lead[pos & detected.astype(bool)]
    chance = 1 - (1 - rate) ** window_days[pos] if np.isfinite(rate) else np.array([np.nan])
    return {
        "detection_share": float(detected[pos].mean()) if pos.any() else np.nan,
        "median_lead_days": float(np.median(leads)) if leads.size else np.nan,
        "alert_days_per_100": 100 * rate,
        "chance_detection_share": float(np.mean(chance)) if pos.any() else np.nan,
    }


def summarise_outcomes(
    outcomes: pd.DataFrame, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate | int]:
    """Detection share, median lead, alert days per 100 healthy days, with person-level CIs.

    Only evaluable people count; the bootstrap resamples people, keeping the numbers of
    positives and negatives. Also returns the counts behind each estimate.
    """
    used = outcomes[outcomes["evaluable"]]
    y = used["positive"].to_numpy(int)
    arrays = [
        used["detected"].to_numpy(float),
        used["lead_days"].to_numpy(float),
        used["healthy_alert_days"].to_numpy(float),
        used["healthy_days"].to_numpy(float),
        used["window_scored_days"].to_numpy(float),
    ]
    estimates: dict[str, Estimate | int] = dict(
        bootstrap(_metrics, y, *arrays, n_boot=n_boot, seed=seed)
    )
    estimates["positives"] = int(y.sum())
    estimates["negatives"] = int((y == 0).sum())
    estimates["detected"] = int(used.loc[used["positive"], "detected"].sum())
    estimates["healthy_days"] = int(used["healthy_days"].sum())
    return estimates


def cross_fitted_scores(
    detector: object, daily: pd.DataFrame, n_splits: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Scores where each person is scored by a detector fitted on other people only.

    People are split into ``n_splits`` groups (shuffled with ``seed``); a copy of
    ``detector`` is fitted on the other groups' days and scores this group's days.
    """
    people = np.array(sorted(daily["person"].unique()))
    order = np.random.default_rng(seed).permutation(people.size)
    fold_of = dict(zip(people[order], np.arange(people.size) % n_splits, strict=True))
    folds = daily["person"].map(fold_of).to_numpy()
    parts = []
    for fold in range(n_splits):
        fitted = clone(detector).fit(daily[folds != fold])
        parts.append(fitted.detect(daily[folds == fold]))
    return pd.concat(parts, ignore_index=True).sort_values(["person", "date"], ignore_index=True)


def outcome_table(
    results: dict[str, dict[str, Estimate | int]], names: Sequence[str] | None = None
) -> list[list[str]]:
    """Rows for a report table: detector, n, detection share, lead, alert rate, chance."""
    rows = []
    for name in names or list(results):
        r = results[name]
        rows.append(
            [
                name,
                f"{r['detected']}/{r['positives']} pos, {r['negatives']} neg",
                str(r["detection_share"]),
                _fmt(r["median_lead_days"], "{:.1f}"),
                _fmt(r["alert_days_per_100"], "{:.1f}"),
                str(r["chance_detection_share"]),
            ]
        )
    return rows


def _fmt(est: Estimate, pattern: str) -> str:
    return f"{pattern.format(est.value)} ({pattern.format(est.low)}–{pattern.format(est.high)})"
