"""Multivariate detector: isolation forest on deviations from each person's own baseline.

Each person-day becomes a vector of robust z-scores (:func:`personal_deviations`):
how far today's resting heart rate, steps, sleep, HRV, SpO2, ... are from that person's
previous four weeks. Working on deviations rather than raw values lets one forest serve
everyone: a resting heart rate of 75 is ordinary for one person and high for another,
but "6 bpm above your usual" means the same for both. A missing feature counts as "no
deviation" (0). The forest is fitted on the training people's days (no labels are used)
and the alert thresholds are quantiles of their anomaly scores, so evaluating on other
people keeps the split at person level.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> days = pd.date_range("2020-01-01", periods=60)
>>> daily = pd.DataFrame({"person": "p1", "date": days,
...                       "resting_hr": rng.normal(60, 1, 60),
...                       "daily_steps": rng.normal(8000, 800, 60)})
>>> daily.loc[55, ["resting_hr", "daily_steps"]] = [68, 2000]
>>> detector = BaselineDeviationForest(features=("resting_hr", "daily_steps")).fit(daily)
>>> scores = detector.detect(daily)
>>> scores.loc[scores["date"] == days[55], ["level", "drivers"]].iloc[0].tolist()
['red', ('resting_hr', 'daily_steps')]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError
from medpredict.wearables.baseline import personal_deviations
from medpredict.wearables.scores import score_frame

DEFAULT_FEATURES = (
    "resting_hr",
    "heart_rate_avg",
    "daily_steps",
    "sleep_hours",
    "hrv_rmssd",
    "spo2_avg",
    "temperature_avg",
)


class BaselineDeviationForest(BaseEstimator):
    """Isolation forest over personal-baseline deviations with yellow/red thresholds.

    Parameters
    ----------
    features : daily columns to compare with each person's baseline.
    window_days, min_history : personal baseline window and values it needs.
    contamination : share of training days above the yellow threshold.
    red_fraction : the red threshold leaves ``contamination * red_fraction`` above it.
    driver_z : a feature with ``|z|`` at least this drives an alert.
    n_estimators, random_state : isolation forest settings.
    """

    name = "multivariate"

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_FEATURES,
        window_days: int = 28,
        min_history: int = 7,
        contamination: float = 0.05,
        red_fraction: float = 0.2,
        driver_z: float = 2.0,
        n_estimators: int = 100,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.window_days = window_days
        self.min_history = min_history
        self.contamination = contamination
        self.red_fraction = red_fraction
        self.driver_z = driver_z
        self.n_estimators = n_estimators
        self.random_state = random_state

    def deviations(self, daily: pd.DataFrame) -> pd.DataFrame:
        """Robust z-scores per feature; rows without any baseline are dropped."""
        missing = [c for c in ("person", "date") if c not in daily]
        if missing:
            raise DataError(f"daily table lacks columns {missing}")
        z = personal_deviations(daily, list(self.features), self.window_days, self.min_history)
        return z[z.notna().any(axis=1)]

    def fit(self, daily: pd.DataFrame, y: None = None) -> BaselineDeviationForest:
        """Fit the forest and its thresholds on the days of the people in ``daily``."""
        z = self.deviations(daily)
        if len(z) < 20:
            raise DataError(
                f"multivariate detector needs at least 20 person-days with a personal "
                f"baseline to fit, got {len(z)}"
            )
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1
        ).fit(z.fillna(0.0).to_numpy())
        anomaly = -self.forest_.score_samples(z.fillna(0.0).to_numpy())
        self.yellow_threshold_ = float(np.quantile(anomaly, 1 - self.contamination))
        self.red_threshold_ = float(
            np.quantile(anomaly, 1 - self.contamination * self.red_fraction)
        )
        return self

    def detect(self, daily: pd.DataFrame) -> pd.DataFrame:
        """Score every person-day that has a baseline (see :mod:`~medpredict.wearables.scores`)."""
        check_is_fitted(self, "forest_")
        z = self.deviations(daily)
        if z.empty:
            return score_frame([])
        anomaly = -self.forest_.score_samples(z.fillna(0.0).to_numpy())
        level = np.where(
            anomaly >= self.red_threshold_,
            "red",
            np.where(anomaly >= self.yellow_threshold_, "yellow", "none"),
        )
        names = np.array(list(self.features))
        magnitude = z.abs().fillna(0.0).to_numpy()
        persons = daily.loc[z.index, "person"].to_numpy()
        dates = daily.loc[z.index, "date"].to_numpy()
        rows = []
        for i, lvl in enumerate(level):
            drivers: tuple[str, ...] = ()
            if lvl != "none":
                order = np.argsort(-magnitude[i], kind="stable")
                strong = [str(names[j]) for j in order if magnitude[i, j] >= self.driver_z]
                drivers = tuple(strong or [str(names[order[0]])])
            rows.append(
                (
                    persons[i],
                    dates[i],
                    self.name,
                    anomaly[i],
                    self.yellow_threshold_,
                    anomaly[i],
                    lvl,
                    drivers,
                )
            )
        return score_frame(rows).sort_values(["person", "date"], ignore_index=True)
