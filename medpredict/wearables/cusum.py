"""One-sided CuSum on resting heart rate with an empirical null (as in Mishra et al. 2020).

:class:`OnlineCuSum` is the per-reading update a watch or phone can run: constant
memory, constant time per reading. It learns the person's baseline in two halves:

1. the first ``baseline_size // 2`` readings give the usual level and spread (Welford);
2. the next readings are standardised against it and run through the CuSum recursion
   ``S = max(0, S + z - slack)``; streaming P² estimates of ``S``'s ``yellow_quantile``
   and ``red_quantile`` there form the *empirical null*: how high the statistic climbs
   in this person's own ordinary weeks.

Afterwards ``S`` restarts from zero and each reading is scored against those thresholds
(never below ``min_threshold``; the red one at least ``red_factor`` times the yellow).
Readings that raise no alert keep nudging the level and spread (exponential weight
``adapt``, by default one over the baseline length), so slow drifts such as seasons do
not turn into permanent alerts while a sudden rise is still caught.
:class:`CuSumDetector` runs it over each person's daily series.

Examples
--------
>>> import numpy as np
>>> detector = OnlineCuSum(baseline_size=20)
>>> rng = np.random.default_rng(0)
>>> levels = [detector.update(x) for x in np.r_[rng.normal(60, 1, 30), np.full(5, 66.0)]]
>>> levels[25], levels[-1]
('none', 'red')
"""

from __future__ import annotations

import math

import pandas as pd
from sklearn.base import BaseEstimator

from medpredict.wearables.quantile import P2Quantile
from medpredict.wearables.scores import score_frame


class OnlineCuSum:
    """Per-reading one-sided CuSum with a personal empirical null, O(1) memory.

    Parameters
    ----------
    baseline_size : readings used to learn the baseline (half for level and spread,
        half for the null distribution of the statistic).
    slack : allowance ``k`` in standard deviations subtracted at each step.
    yellow_quantile, red_quantile : quantiles of the baseline statistic used as thresholds.
    min_threshold : floor for the yellow threshold, in standard deviations.
    red_factor : the red threshold is at least this multiple of the yellow one.
    min_scale : floor for the baseline standard deviation (signal units).
    adapt : weight of each alert-free reading in the running level and spread after the
        baseline (``None``: ``1 / baseline_size``; 0 freezes the baseline).
    """

    __slots__ = (
        "_m2",
        "_mean",
        "_null_red",
        "_null_yellow",
        "_var",
        "adapt",
        "baseline_size",
        "min_scale",
        "min_threshold",
        "n_seen",
        "red_factor",
        "red_quantile",
        "red_threshold",
        "slack",
        "statistic",
        "yellow_quantile",
        "yellow_threshold",
    )

    def __init__(
        self,
        baseline_size: int = 28,
        slack: float = 0.5,
        yellow_quantile: float = 0.95,
        red_quantile: float = 0.99,
        min_threshold: float = 2.0,
        red_factor: float = 2.0,
        min_scale: float = 1.0,
        adapt: float | None = None,
    ) -> None:
        if baseline_size < 4:
            raise ValueError(f"baseline_size must be at least 4 readings, got {baseline_size}")
        self.baseline_size = baseline_size
        self.slack = slack
        self.yellow_quantile = yellow_quantile
        self.red_quantile = red_quantile
        self.min_threshold = min_threshold
        self.red_factor = red_factor
        self.min_scale = min_scale
        self.adapt = 1 / baseline_size if adapt is None else adapt
        self.n_seen = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._var = 0.0
        self.statistic = 0.0
        self._null_yellow = P2Quantile(yellow_quantile)
        self._null_red = P2Quantile(red_quantile)
        self.yellow_threshold = math.nan
        self.red_threshold = math.nan

    @property
    def mean(self) -> float:
        """Baseline level."""
        return self._mean

    @property
    def scale(self) -> float:
        """Baseline standard deviation, floored at ``min_scale``."""
        return max(math.sqrt(self._var), self.min_scale)

    @property
    def ready(self) -> bool:
        """Whether the baseline is learned and readings are being scored."""
        return self.n_seen > self.baseline_size

    def update(self, x: float) -> str:
        """Add one reading; return ``"baseline"``, ``"none"``, ``"yellow"`` or ``"red"``.

        Missing readings (NaN) leave the state unchanged and return ``"missing"``.
        """
        if math.isnan(x):
            return "missing"
        self.n_seen += 1
        half = self.baseline_size // 2
        if self.n_seen <= half:
            delta = x - self._mean
            self._mean += delta / self.n_seen
            self._m2 += delta * (x - self._mean)
            if self.n_seen > 1:
                self._var = self._m2 / (self.n_seen - 1)
            return "baseline"
        z = (x - self._mean) / self.scale
        self.statistic = max(0.0, self.statistic + z - self.slack)
        if self.n_seen <= self.baseline_size:
            self._null_yellow.update(self.statistic)
            self._null_red.update(self.statistic)
            if self.n_seen == self.baseline_size:
                self.yellow_threshold = max(self._null_yellow.value(), self.min_threshold)
                self.red_threshold = max(
                    self._null_red.value(), self.red_factor * self.yellow_threshold
                )
                self.statistic = 0.0
            return "baseline"
        if self.statistic >= self.red_threshold:
            return "red"
        if self.statistic >= self.yellow_threshold:
            return "yellow"
        delta = x - self._mean
        self._mean += self.adapt * delta
        self._var = (1 - self.adapt) * (self._var + self.adapt * delta * delta)
        return "none"


class CuSumDetector(BaseEstimator):
    """Run :class:`OnlineCuSum` over each person's daily ``signal``.

    Parameters
    ----------
    signal : daily column to monitor (``resting_hr`` by default).
    baseline_days : days with a value used to learn each person's baseline.
    slack, yellow_quantile, red_quantile, min_threshold, red_factor, min_scale, adapt :
        passed to :class:`OnlineCuSum`.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> days = pd.date_range("2020-03-01", periods=40)
    >>> rhr = np.r_[60 + np.tile([-1, 0, 1, 0], 8), np.full(8, 67.0)]
    >>> daily = pd.DataFrame({"person": "p1", "date": days, "resting_hr": rhr})
    >>> scores = CuSumDetector(baseline_days=20).detect(daily)
    >>> scores.loc[scores["level"] != "none", "date"].min().date().isoformat()
    '2020-04-02'
    """

    name = "cusum"

    def __init__(
        self,
        signal: str = "resting_hr",
        baseline_days: int = 28,
        slack: float = 0.5,
        yellow_quantile: float = 0.95,
        red_quantile: float = 0.99,
        min_threshold: float = 2.0,
        red_factor: float = 2.0,
        min_scale: float = 1.0,
        adapt: float | None = None,
    ) -> None:
        self.signal = signal
        self.baseline_days = baseline_days
        self.slack = slack
        self.yellow_quantile = yellow_quantile
        self.red_quantile = red_quantile
        self.min_threshold = min_threshold
        self.red_factor = red_factor
        self.min_scale = min_scale
        self.adapt = adapt

    def fit(self, daily: pd.DataFrame, y: None = None) -> CuSumDetector:
        """Nothing is shared between people; present for the scikit-learn API."""
        return self

    def detect(self, daily: pd.DataFrame) -> pd.DataFrame:
        """Score every person-day after the baseline (see :mod:`~medpredict.wearables.scores`)."""
        rows = []
        present = daily.dropna(subset=[self.signal]).sort_values(["person", "date"])
        for person, days in present.groupby("person", sort=True):
            online = OnlineCuSum(
                self.baseline_days,
                self.slack,
                self.yellow_quantile,
                self.red_quantile,
                self.min_threshold,
                self.red_factor,
                self.min_scale,
                self.adapt,
            )
            for date, value in zip(days["date"], days[self.signal].to_numpy(float), strict=True):
                level = online.update(value)
                if level == "baseline":
                    continue
                rows.append(
                    (
                        person,
                        date,
                        self.name,
                        value,
                        online.mean,
                        online.statistic,
                        level,
                        (self.signal,) if level != "none" else (),
                    )
                )
        return score_frame(rows)
