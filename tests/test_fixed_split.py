"""The fixed validation scheme on real data: Pima (MASS::Pima.tr) with a split column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from medpredict.artifact import load_model
from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError, SpecError
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.study.candidates import operating_thresholds

FEATURES = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]


@pytest.fixture
def pima_splits(tmp_path):
    """Pima with a shuffled split column (100 train, 50 validation, 50 test) and age groups."""
    pima = load_dataset("pima_tr").copy()
    order = np.random.default_rng(3).permutation(len(pima))
    split = np.empty(len(pima), dtype=object)
    split[order[:100]], split[order[100:150]], split[order[150:]] = "train", "validation", "test"
    pima["split"] = split
    pima["age_group"] = np.where(pima["age"] >= 30, "30+", "<30")
    path = tmp_path / "pima_splits.csv"
    pima.to_csv(path, index=False)
    return pima, path


def _spec(path, tmp_path, **extra):
    raw = {
        "name": "pima-fixed",
        "data": {"path": str(path)},
        "target": "type",
        "positive_class": "Yes",
        "models": ["logistic_regression", "lightgbm"],
        "validation": {"scheme": "fixed", "split_column": "split"},
        "sensitive_attributes": ["age_group"],
        "bootstrap": 50,
        "trust": {"learning_curve": False},
        "output_dir": str(tmp_path / "run"),
    }
    return parse_spec(raw | extra)


def test_fixed_scheme_fits_on_train_selects_on_validation_and_holds_out_test(
    tmp_path, pima_splits
):
    pima, path = pima_splits
    result = run_study(_spec(path, tmp_path), quiet=True)
    rows = {name: pima.index[pima["split"] == name] for name in ("train", "validation", "test")}
    y = (pima["type"] == "Yes").to_numpy(dtype=int)

    # every candidate is fitted on the train rows and scored on the validation rows only
    assert len(result.cohort.y) == 50
    np.testing.assert_array_equal(result.cohort.y, y[rows["validation"]])
    for candidate in result.candidates.values():
        model = clone(candidate.estimator).fit(pima.loc[rows["train"], FEATURES], y[rows["train"]])
        expected = model.predict_proba(pima.loc[rows["validation"], FEATURES])
        np.testing.assert_allclose(candidate.oof_proba, expected, rtol=1e-6)
        assert candidate.metrics["auroc"].value == pytest.approx(
            roc_auc_score(y[rows["validation"]], expected[:, 1])
        )
    best = result.best
    auroc = {name: c.metrics["auroc"].value for name, c in result.candidates.items()}
    assert result.best_name == max(auroc, key=auroc.get)
    risk = best.oof_proba[:, 1]
    assert best.thresholds == operating_thresholds(result.spec, result.cohort.y, risk)

    # the final model is refitted on train + validation and scores the test rows once
    dev = rows["train"].union(rows["validation"])
    refit = clone(best.estimator).fit(pima.loc[dev, FEATURES], y[dev])
    (test,) = result.holdouts
    assert test.kind == "test" and len(test.cohort.y) == 50
    np.testing.assert_allclose(test.proba, refit.predict_proba(pima.loc[rows["test"], FEATURES]))
    assert test.metrics["auroc"].low <= test.metrics["auroc"].value <= test.metrics["auroc"].high

    # fairness audit and conformal calibration see the validation rows' predictions
    groups = result.trust.fairness.groups
    assert groups.loc[groups["attribute"] == "age_group", "n"].sum() == 50
    assert not result.nested_plan.run and "fixed" in result.nested_plan.reason

    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["holdouts"]["test"]["rows"] == 50
    assert metrics["nested_cross_validation"]["ran"] is False
    loaded = load_model(run / "model")
    assert loaded.metadata.training_rows == 150 and "test" in loaded.metadata.holdouts
    page = (run / "report.html").read_text()
    assert "refitted on training and validation rows together (150)" in page
    assert "logistic_regression (validation)" in page or "lightgbm (validation)" in page


def test_split_value_names_are_configurable(tmp_path, pima_splits):
    pima, path = pima_splits
    pima["split"] = pima["split"].map({"train": "dev", "validation": "tune", "test": "final"})
    pima.to_csv(path, index=False)
    validation = {"scheme": "fixed", "split_column": "split", "train_value": "dev",
                  "validation_value": "tune", "test_value": "final"}
    result = run_study(_spec(path, tmp_path, validation=validation, models=["logistic_regression"]),
                       quiet=True, save=False)
    assert len(result.cohort.y) == 50 and result.holdouts[0].kind == "test"


def test_patients_crossing_splits_are_refused_by_name(tmp_path, pima_splits):
    pima, path = pima_splits
    pima["patient"] = [f"p{i}" for i in range(len(pima))]
    train, test = pima.index[pima["split"] == "train"], pima.index[pima["split"] == "test"]
    pima.loc[test[:2], "patient"] = pima.loc[train[:2], "patient"].to_numpy()
    pima.to_csv(path, index=False)
    with pytest.raises(DataError, match="more than one split") as err:
        run_study(_spec(path, tmp_path, patient_column="patient"), quiet=True, save=False)
    for patient in pima.loc[train[:2], "patient"]:
        assert f"'{patient}' (test, train)" in str(err.value)


def test_unknown_or_missing_split_values_name_their_rows(tmp_path, pima_splits):
    pima, path = pima_splits
    pima.loc[[4, 9], "split"] = "val"
    pima.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"rows 5, 10 have a value other than .* \('val'\)"):
        run_study(_spec(path, tmp_path), quiet=True, save=False)
    pima.loc[[4, 9], "split"] = None
    pima.to_csv(path, index=False)
    with pytest.raises(DataError, match="rows 5, 10 have no split value"):
        run_study(_spec(path, tmp_path), quiet=True, save=False)


def test_fixed_scheme_spec_errors(tmp_path, pima_splits):
    _, path = pima_splits
    with pytest.raises(SpecError, match=r"needs validation\.split_column"):
        _spec(path, tmp_path, validation={"scheme": "fixed"})
    with pytest.raises(SpecError, match="nested: true does not apply"):
        _spec(path, tmp_path, validation={"scheme": "fixed", "split_column": "split",
                                          "nested": True})
    with pytest.raises(SpecError, match="'split' is also the features"):
        _spec(path, tmp_path, features={"glu": "numeric", "split": "categorical"})
    with pytest.raises(DataError, match=r"validation\.split_column column"):
        run_study(_spec(path, tmp_path, validation={"scheme": "fixed", "split_column": "fold"}),
                  quiet=True, save=False)


def test_split_column_is_never_a_feature(tmp_path, pima_splits):
    _, path = pima_splits
    result = run_study(_spec(path, tmp_path, models=["logistic_regression"]), quiet=True,
                       save=False)
    assert "split" not in result.cohort.X.columns
    assert set(result.cohort.X.columns) == set(FEATURES)


def test_spec_without_splits_keeps_cross_validating(tmp_path):
    """Control: the default scheme still scores every development row out of fold."""
    spec = parse_spec({"name": "pima-kfold", "data": {"dataset": "pima_tr"}, "target": "type",
                       "positive_class": "Yes", "models": ["logistic_regression"],
                       "bootstrap": 20, "validation": {"nested": False}})
    result = run_study(spec, quiet=True, save=False)
    assert len(result.cohort.y) == 200 and np.isfinite(result.best.oof_proba).all()
    assert pd.Series(result.cohort.y).size == sum(len(test) for _, test in result.folds)
