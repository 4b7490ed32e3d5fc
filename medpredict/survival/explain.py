"""SHAP attributions of a survival model's risk of the event by a horizon.

A fitted survival model, read at one horizon, is a classifier of "event by then":
:class:`RiskByHorizon` gives it ``predict_proba``, so the trust layer's explanations
(:func:`medpredict.trust.explanations.explain`: per original clinical column, with a
background sample that holds no real patient's row) apply unchanged. The
model-agnostic explainer works in log-odds, as for every classifier: the attributions
add up, with the base value, to the log-odds of the predicted risk.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from medpredict.models import make_model
>>> from medpredict.survival.outcome import SURVIVAL_DTYPE
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
>>> y = np.empty(200, dtype=SURVIVAL_DTYPE)
>>> y["time"] = rng.exponential(np.exp(-X["a"])); y["event"] = True
>>> model = make_model("cox").fit(X, y)
>>> attribution = horizon_attributions(model, X.head(3), X.head(50), horizon=1.0)
>>> attribution.space, attribution.values.abs().mean().idxmax()
('log-odds', 'a')
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from medpredict.artifact import BACKGROUND_FILE, LoadedModel
from medpredict.data.schema import Schema
from medpredict.encoders.tabular import standard_parts
from medpredict.survival.models import survival_curves
from medpredict.trust.explanations import Attribution, background_from_json, explain


class RiskByHorizon(ClassifierMixin, BaseEstimator):
    """A fitted survival model as a classifier of the event by ``horizon``.

    Parameters
    ----------
    model : a fitted survival model (or pipeline).
    horizon : the time by which the event is predicted.
    """

    def __init__(self, model: Any, horizon: float) -> None:
        self.model = model
        self.horizon = horizon

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def __sklearn_is_fitted__(self) -> bool:
        return True  # it wraps a fitted model

    def fit(self, X: Any, y: Any = None) -> RiskByHorizon:
        raise TypeError("RiskByHorizon reads an already fitted survival model; fit that")

    def predict_proba(self, X: Any) -> np.ndarray:
        risk = 1.0 - survival_curves(self.model, X, np.array([self.horizon]))[:, 0]
        return np.column_stack([1.0 - risk, risk])


def horizon_classifier(estimator: Any, horizon: float) -> Any:
    """``estimator`` as a classifier of the event by ``horizon``, preprocessing kept in front."""
    parts = standard_parts(estimator)
    if parts is None:
        return RiskByHorizon(estimator, horizon)
    (name, _), (model_name, _) = estimator.steps
    return Pipeline([(name, parts[0]), (model_name, RiskByHorizon(parts[1], horizon))])


def horizon_attributions(
    estimator: Any, frame: pd.DataFrame, background: pd.DataFrame, horizon: float,
    n_samples: int | str = "auto",
) -> Attribution:
    """SHAP attributions of each row's risk of the event by ``horizon``, per column."""
    return explain(horizon_classifier(estimator, horizon), frame, background,
                   n_samples=n_samples)


def stored_background(loaded: LoadedModel) -> pd.DataFrame:
    """The explanation background saved with a survival model, checked against its schema.

    Raises
    ------
    FileNotFoundError
        If the directory holds no background (saved before explanations existed).
    """
    if not loaded.has_file(BACKGROUND_FILE):
        raise FileNotFoundError(f"{loaded.path} has no {BACKGROUND_FILE}; rerun the study")
    background = background_from_json(loaded.read_file(BACKGROUND_FILE))
    return Schema.from_dict(loaded.metadata.data_schema).validate(background)


def annotate_survival(
    loaded: LoadedModel, frame: pd.DataFrame, keep: list[str] | None = None, k: int = 5
) -> list[str]:
    """Each row's ``k`` strongest factors of its risk by the first horizon, as JSON text."""
    from medpredict.predict import role_columns, validate_input

    keep = [*(keep or []), *(c for c in role_columns(loaded.metadata, frame)
                             if c not in (keep or []))]
    X = validate_input(frame, loaded.metadata.data_schema, keep)
    attribution = horizon_attributions(loaded.estimator, X, stored_background(loaded),
                                       loaded.metadata.horizons[0])
    return [json.dumps(row) for row in attribution.top_factors(k)]
