"""Ensembles whose combining step only ever sees out-of-fold predictions.

:class:`StackingEnsemble` and :class:`SoftVotingEnsemble` split *their own training
rows* into inner folds, collect each member's out-of-fold probabilities, fit the
combiner (a meta-learner, or the voting weights) on those, and finally refit every
member on all of their training rows. Used inside an outer cross-validation, the
outer test fold therefore never reaches any level: not the members, not the inner
folds, not the combiner. Inner folds keep a patient's rows together when ``groups``
is passed to ``fit``.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.naive_bayes import GaussianNB
>>> X, y = load_breast_cancer(return_X_y=True)
>>> members = [("nb", GaussianNB()), ("lr", LogisticRegression(max_iter=5000))]
>>> StackingEnsemble(members, cv=3).fit(X, y).predict_proba(X[:2]).shape
(2, 2)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

_PROBA_FLOOR = 1e-3

Members = Sequence[tuple[str, Any]]


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of a DataFrame (keeping its index) or of an array."""
    return X.iloc[rows] if isinstance(X, pd.DataFrame | pd.Series) else np.asarray(X)[rows]


def inner_folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified inner folds of the training rows, grouped by patient when given."""
    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    n_splits = min(n_splits, smallest)
    if n_splits < 2:
        raise ValueError(
            "an ensemble needs at least two rows of every class for its inner folds; "
            f"the rarest class has {smallest}"
        )
    if groups is not None:
        splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(y.size), y, groups))
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(y.size), y))


def fit_member(estimator: Any, X: Any, y: np.ndarray, groups: np.ndarray | None) -> Any:
    """Fit ``estimator``, passing ``groups`` when its ``fit`` accepts them."""
    if groups is not None and "groups" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


def aligned_proba(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` with columns for all of ``classes`` (absent ones get 0)."""
    proba = estimator.predict_proba(X)
    if np.array_equal(estimator.classes_, classes):
        return proba
    out = np.zeros((proba.shape[0], classes.size))
    out[:, np.searchsorted(classes, estimator.classes_)] = proba
    return out


def out_of_fold_proba(
    members: Members,
    X: Any,
    y: np.ndarray,
    classes: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Each member's probabilities for every row, predicted by a model that did not see it."""
    out = []
    for _, member in members:
        oof = np.zeros((y.size, classes.size))
        for train, test in folds:
            sub_groups = None if groups is None else groups[train]
            fitted = fit_member(clone(member), take_rows(X, train), y[train], sub_groups)
            oof[test] = aligned_proba(fitted, take_rows(X, test), classes)
        out.append(oof)
    return out


class _OutOfFoldEnsemble(ClassifierMixin, BaseEstimator):
    """Inner folds -> out-of-fold member predictions -> combiner -> members refitted."""

    estimators: Members
    cv: int
    random_state: int

    def _fit_combiner(self, oof: list[np.ndarray], y_index: np.ndarray, index: Any) -> None:
        raise NotImplementedError

    def _combine(self, probas: list[np.ndarray], index: Any) -> np.ndarray:
        raise NotImplementedError

    def _needs_out_of_fold(self) -> bool:
        return True

    def fit(self, X: Any, y: Any, groups: Any = None) -> _OutOfFoldEnsemble:
        """Fit the combiner on inner out-of-fold predictions, then refit every member.

        Parameters
        ----------
        X : feature table as the members expect it (e.g. a raw DataFrame).
        y : class labels.
        groups : optional patient id per row; inner folds keep a patient together.
        """
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        if not self.estimators:
            raise ValueError("an ensemble needs at least one member estimator")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(f"an ensemble needs two or more classes; got {self.classes_}")
        groups = None if groups is None else np.asarray(groups)
        if self._needs_out_of_fold():
            folds = inner_folds(y_index, groups, self.cv, self.random_state)
            oof = out_of_fold_proba(self.estimators, X, y, self.classes_, folds, groups)
            self._fit_combiner(oof, y_index, getattr(X, "index", None))
        else:
            self._fit_combiner([], y_index, None)
        self.estimators_ = [
            fit_member(clone(member), X, y, groups) for _, member in self.estimators
        ]
        self.n_features_in_ = np.shape(X)[1]
        return self

    def _member_probas(self, X: Any) -> list[np.ndarray]:
        check_is_fitted(self, "estimators_")
        return [aligned_proba(m, X, self.classes_) for m in self.estimators_]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Combined class probabilities, columns in the order of ``classes_``."""
        return self._combine(self._member_probas(X), getattr(X, "index", None))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class StackingEnsemble(_OutOfFoldEnsemble):
    """Stacking: a meta-learner on the members' out-of-fold log-odds.

    Parameters
    ----------
    estimators : list of ``(name, estimator)``; all take the same ``X``.
    final_estimator : meta-learner fitted on a DataFrame of member log-odds (binary:
        one column per member; multi-class: the log-probability of each class per
        member) indexed like ``X``. Default: L2 logistic regression, which also
        recalibrates the combined risk.
    cv : number of inner folds (fewer when the rarest class is smaller).
    random_state : seed of the inner folds.

    Attributes
    ----------
    estimators_ : members refitted on all training rows.
    final_estimator_ : the fitted meta-learner.
    """

    def __init__(
        self,
        estimators: Members,
        final_estimator: Any = None,
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.random_state = random_state

    def _meta_features(self, probas: list[np.ndarray], index: Any) -> pd.DataFrame:
        names = [name for name, _ in self.estimators]
        clipped = [np.clip(p, _PROBA_FLOOR, 1 - _PROBA_FLOOR) for p in probas]
        if self.classes_.size == 2:
            columns = {n: np.log(p[:, 1] / p[:, 0]) for n, p in zip(names, clipped, strict=True)}
        else:
            columns = {
                f"{n}:{c}": np.log(p[:, k])
                for n, p in zip(names, clipped, strict=True)
                for k, c in enumerate(self.classes_)
            }
        return pd.DataFrame(columns, index=index)

    def _fit_combiner(self, oof: list[np.ndarray], y_index: np.ndarray, index: Any) -> None:
        meta = self.final_estimator
        if meta is None:
            meta = LogisticRegression(C=1.0, max_iter=1000)
        self.final_estimator_ = clone(meta).fit(self._meta_features(oof, index), y_index)

    def _combine(self, probas: list[np.ndarray], index: Any) -> np.ndarray:
        meta = self._meta_features(probas, index)
        return aligned_proba(self.final_estimator_, meta, np.arange(self.classes_.size))


def simplex_weights(probas: list[np.ndarray], y_index: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise the log loss of the weighted mean."""
    stacked = np.stack([np.clip(p[np.arange(y_index.size), y_index], 1e-12, 1) for p in probas])
    log_stacked = np.log(stacked)

    def loss(theta: np.ndarray) -> float:
        log_w = theta - logsumexp(theta)
        return -float(np.mean(logsumexp(log_stacked + log_w[:, None], axis=0)))

    result = minimize(loss, np.zeros(len(probas)), method="L-BFGS-B")
    return softmax(result.x)


class SoftVotingEnsemble(_OutOfFoldEnsemble):
    """Weighted average of member probabilities.

    Parameters
    ----------
    estimators : list of ``(name, estimator)``; all take the same ``X``.
    weights : ``"auto"`` learns non-negative weights summing to one by minimising the
        log loss of the out-of-fold average; a list gives fixed weights (no inner
        folds); None weighs members equally.
    cv : number of inner folds for ``"auto"``.
    random_state : seed of the inner folds.

    Attributes
    ----------
    estimators_ : members refitted on all training rows.
    weights_ : the weights used, one per member, summing to one.
    """

    def __init__(
        self,
        estimators: Members,
        weights: str | Sequence[float] | None = "auto",
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.estimators = estimators
        self.weights = weights
        self.cv = cv
        self.random_state = random_state

    def _needs_out_of_fold(self) -> bool:
        return isinstance(self.weights, str)

    def _fit_combiner(self, oof: list[np.ndarray], y_index: np.ndarray, index: Any) -> None:
        if isinstance(self.weights, str):
            if self.weights != "auto":
                raise ValueError(f"weights must be 'auto', a list or None; got {self.weights!r}")
            self.weights_ = simplex_weights(oof, y_index)
            return
        raw = np.ones(len(self.estimators)) if self.weights is None else np.asarray(self.weights)
        if raw.shape != (len(self.estimators),) or np.any(raw < 0) or raw.sum() <= 0:
            raise ValueError(
                f"weights must be {len(self.estimators)} non-negative numbers, got {self.weights}"
            )
        self.weights_ = raw / raw.sum()

    def _combine(self, probas: list[np.ndarray], index: Any) -> np.ndarray:
        return np.tensordot(self.weights_, np.stack(probas), axes=1)
