"""A deployed binary risk model as the monitoring modules read it.

Any object with ``predict_proba`` whose second column is the risk will do (a fitted
scikit-learn estimator must be fitted). Outcomes are the model's class labels (the
positive class is ``classes_[1]``) or 0/1 when it has no ``classes_``. Log-odds are
those of the risks clipped to [1e-6, 1 - 1e-6].

Examples
--------
>>> from sklearn.dummy import DummyClassifier
>>> model = DummyClassifier(strategy="prior").fit([[0], [1], [2], [3]], ["a", "b", "b", "b"])
>>> outcomes(model, [[0], [1]], ["a", "b"]).tolist()
[0.0, 1.0]
>>> round(float(log_odds(model, [[0]])[0]), 4)  # log(0.75 / 0.25)
1.0986
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

PROBABILITY_CLIP = 1e-6


def check_model(model: Any) -> None:
    """A model with ``predict_proba``; a scikit-learn estimator must be fitted."""
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{type(model).__name__} has no predict_proba")
    if isinstance(model, BaseEstimator):
        check_is_fitted(model)


def risk(model: Any, X: Any) -> np.ndarray:
    """The model's predicted risk of the positive (second) class, shape (n,)."""
    proba = np.asarray(model.predict_proba(X), dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise ValueError(
            f"updating needs a binary model: predict_proba gave shape {proba.shape}, "
            "expected (n, 2)"
        )
    return proba[:, 1]


def log_odds(model: Any, X: Any) -> np.ndarray:
    """Log-odds of the model's risks, clipped to [1e-6, 1 - 1e-6] first."""
    p = np.clip(risk(model, X), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p / (1 - p))


def outcomes(model: Any, X: Any, y: Any) -> np.ndarray:
    """0/1 outcomes, 1 where ``y`` is the model's positive class; one per row of ``X``.

    Raises ValueError for values that are not the model's classes (not 0/1 for a model
    without ``classes_``), for a single outcome only, or for a row count unlike ``X``'s.
    """
    y = np.asarray(y).ravel()
    classes = getattr(model, "classes_", None)
    if classes is not None:
        classes = np.asarray(classes)
        if classes.size != 2:
            raise ValueError(f"updating needs a binary model; it has {classes.size} classes")
        unknown = ~np.isin(y, classes)
        if unknown.any():
            raise ValueError(
                f"{int(unknown.sum())} outcome values are not among the model's classes "
                f"{classes.tolist()}"
            )
        events = (y == classes[1]).astype(float)
    else:
        if not np.isin(y, [0, 1]).all():
            raise ValueError("outcomes must be 0/1 when the model has no classes_")
        events = y.astype(float)
    if events.size and (events.min() == events.max()):
        raise ValueError("the new data need both outcomes (events and non-events)")
    if len(X) != events.size:
        raise ValueError(f"X has {len(X)} rows but y has {events.size}")
    return events


def log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    """Bernoulli log-likelihood of 0/1 outcomes ``y`` at log-odds ``eta``."""
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))
