"""A saved treatment-effect model: preprocessing, a learner, and bootstrap refits.

:class:`EffectModel` takes the study's table (a DataFrame), fits the standard
preprocessing and an effect learner (:mod:`medpredict.effects.learners`) on it, and
answers each patient's estimated *benefit* of treatment: the effect signed so that
positive means the treatment helps (fewer events, when the event is harm). Its
intervals are percentiles of the same learner refitted on bootstrap resamples of the
patients (resampled within each arm) with its model choices kept: they show how much
the estimate would move with other patients of the same kind, not the error of the
model's assumptions.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from sklearn.linear_model import LinearRegression
>>> from sklearn.preprocessing import StandardScaler
>>> from medpredict.effects.learners import TLearner
>>> rng = np.random.default_rng(0); X = pd.DataFrame({"age": rng.normal(60, 10, 400)})
>>> t = rng.integers(0, 2, 400); y = 0.02 * X["age"] + t * 0.5 + rng.normal(0, 0.3, 400)
>>> model = EffectModel(StandardScaler(), TLearner(LinearRegression()), intervals=20,
...                     benefit_sign=1).fit(X, t, y)   # a higher outcome helps
>>> low, high = model.benefit_interval(X.head(3))
>>> bool(np.all(low < model.benefit(X.head(3)))), bool(np.all(high > 0.3))
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone


def arm_bootstrap(treatment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row numbers of a bootstrap resample drawn within each arm (both keep their size)."""
    rows = [rng.choice(np.flatnonzero(treatment == arm), (treatment == arm).sum())
            for arm in (0, 1)]
    return np.concatenate(rows)


class EffectModel(BaseEstimator):
    """Preprocessing and a treatment-effect learner, with bootstrap intervals of benefit.

    Parameters
    ----------
    preprocessor : unfitted transformer of the feature table (the study's standard one).
    learner : unfitted effect learner with ``fit(X, treatment, y)``, ``effect(X)`` and
        ``resample(X, treatment, y, rows)``.
    intervals : bootstrap refits behind the intervals (0: none).
    benefit_sign : +1 when a higher outcome helps, -1 when a lower one does (fewer events).
    random_state : seed of the resamples.

    Attributes
    ----------
    preprocessor_, learner_ : the fitted parts.
    resamples_ : the learner refitted on each bootstrap resample.
    """

    def __init__(self, preprocessor: Any, learner: Any, intervals: int = 0,
                 benefit_sign: int = -1, random_state: int = 0) -> None:
        self.preprocessor = preprocessor
        self.learner = learner
        self.intervals = intervals
        self.benefit_sign = benefit_sign
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, treatment: Any, y: Any) -> EffectModel:
        t = np.asarray(treatment).astype(int)
        y = np.asarray(y, dtype=float)
        self.preprocessor_ = clone(self.preprocessor).fit(X)
        features = np.asarray(self.preprocessor_.transform(X), dtype=float)
        self.learner_ = clone(self.learner).fit(features, t, y)
        rng = np.random.default_rng(self.random_state)
        self.resamples_ = [self.learner_.resample(features, t, y, arm_bootstrap(t, rng))
                           for _ in range(self.intervals)]
        return self

    def features(self, X: pd.DataFrame) -> np.ndarray:
        """``X`` through the fitted preprocessing."""
        return np.asarray(self.preprocessor_.transform(X), dtype=float)

    def benefit_of(self, features: np.ndarray) -> np.ndarray:
        """Estimated benefit of preprocessed rows."""
        return self.benefit_sign * self.learner_.effect(features)

    def interval_of(
        self, features: np.ndarray, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile interval of the benefit of preprocessed rows."""
        if not self.resamples_:
            raise ValueError("this effect model was fitted without intervals (intervals=0)")
        draws = self.benefit_sign * np.stack([m.effect(features) for m in self.resamples_])
        tail = 50 * (1 - level)
        return np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)

    def benefit(self, X: pd.DataFrame) -> np.ndarray:
        """Each patient's estimated benefit of treatment (positive: it helps)."""
        return self.benefit_of(self.features(X))

    def benefit_interval(
        self, X: pd.DataFrame, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's bootstrap interval of benefit: (low, high)."""
        return self.interval_of(self.features(X), level)
