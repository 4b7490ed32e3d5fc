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
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> X, y = load_breast_cancer(return_X_y=True)
>>> members = [("nb", GaussianNB()), ("lr", make_pipeline(StandardScaler(), LogisticRegression()))]
>>> StackingEnsemble(members, cv=3).fit(X, y).predict_proba(X[:2]).shape
(2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.metadata_routing import get_routing_for_object
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from medpredict.evaluation.splits import inner_folds

_PROBA_FLOOR = 1e-3

Members = Sequence[tuple[str, Any]]


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of a DataFrame (keeping its index) or of an array."""
    return X.iloc[rows] if isinstance(X, pd.DataFrame | pd.Series) else np.asarray(X)[rows]


def requests_groups(estimator: Any) -> bool:
    """Whether ``estimator``, or a step or member inside it, requests ``groups`` in ``fit``.

    The request is scikit-learn's metadata request: medpredict's models that make
    inner folds or early-stopping splits request patient ids by default, and any other
    estimator can be asked to with ``set_fit_request(groups=True)``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> stacking = StackingEnsemble([("lr", LogisticRegression())])
    >>> requests_groups(make_pipeline(StandardScaler(), stacking))
    True
    >>> requests_groups(make_pipeline(StandardScaler(), LogisticRegression()))
    False
    """
    return bool(get_routing_for_object(estimator).consumes("fit", ["groups"]))


def fit_member(estimator: Any, X: Any, y: np.ndarray, groups: np.ndarray | None) -> Any:
    """Fit ``estimator``, routing ``groups`` to whichever part of it requests them.

    With metadata routing on for this fit, a pipeline passes the patient ids to its
    model, so the inner folds of a stacking or calibrated model inside the standard
    pipeline keep a patient's rows together.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), StackingEnsemble([("nb", GaussianNB())], cv=3))
    >>> fit_member(model, X, y, groups=np.arange(y.size) // 2).predict(X[:2]).shape
    (2,)
    """
    if groups is None or not requests_groups(estimator):
        return estimator.fit(X, y)
    with config_context(enable_metadata_routing=True):
        return estimator.fit(X, y, groups=groups)


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
    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

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
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class StackingEnsemble(_OutOfFoldEnsemble):
    """Stacking: a combiner fitted on the members' out-of-fold probabilities.

    Parameters
    ----------
    estimators : list of ``(name, estimator)``; all take the same ``X``.
    final_estimator : meta-learner fitted on a DataFrame of member log-odds (binary:
        one column per member; multi-class: the log-probability of each class per
        member) indexed like ``X``. Default None: non-negative log-linear pooling,
        ``softmax(sum_m w_m log p_m + b)`` with ``w >= 0`` (see :func:`log_linear_pool`),
        which also recalibrates the combined risk.
    alpha : L2 penalty on the pooling weights (default combiner only).
    cv : number of inner folds (fewer when the rarest class is smaller).
    random_state : seed of the inner folds.

    Attributes
    ----------
    estimators_ : members refitted on all training rows.
    weights_, intercept_ : pooling weights per member and intercept per class
        (default combiner).
    final_estimator_ : the fitted meta-learner (when ``final_estimator`` is given).
    """

    def __init__(
        self,
        estimators: Members,
        final_estimator: Any = None,
        alpha: float = 0.01,
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.alpha = alpha
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
        if self.final_estimator is None:
            self.weights_, self.intercept_ = log_linear_pool(oof, y_index, self.alpha)
            return
        meta = self._meta_features(oof, index)
        self.final_estimator_ = clone(self.final_estimator).fit(meta, y_index)

    def _combine(self, probas: list[np.ndarray], index: Any) -> np.ndarray:
        if self.final_estimator is None:
            logs = np.stack([np.log(np.clip(p, _PROBA_FLOOR, 1)) for p in probas])
            return softmax(np.tensordot(self.weights_, logs, axes=1) + self.intercept_, axis=1)
        meta = self._meta_features(probas, index)
        return aligned_proba(self.final_estimator_, meta, np.arange(self.classes_.size))


def log_linear_pool(
    probas: list[np.ndarray], y_index: np.ndarray, alpha: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative member weights and class intercepts for ``softmax(sum_m w_m log p_m + b)``.

    Minimises the log loss (plus ``alpha * ||w||^2``) on out-of-fold probabilities. With
    two classes this is logistic regression on the members' log-odds with weights
    constrained to be non-negative (Breiman's non-negative stacking): correlated members
    cannot cancel each other out, and the combined risk is recalibrated.
    """
    logs = np.stack([np.log(np.clip(p, _PROBA_FLOOR, 1)) for p in probas])  # (M, n, K)
    n_members, n_rows, n_classes = logs.shape
    onehot = np.eye(n_classes)[y_index]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:n_members], theta[n_members:]
        scores = np.tensordot(w, logs, axes=1) + b
        log_p = scores - logsumexp(scores, axis=1, keepdims=True)
        value = -np.sum(onehot * log_p) / n_rows + alpha * w @ w
        g = (np.exp(log_p) - onehot) / n_rows
        grad_w = np.einsum("mnk,nk->m", logs, g) + 2 * alpha * w
        return float(value), np.concatenate([grad_w, g.sum(axis=0)])

    start = np.concatenate([np.full(n_members, 1 / n_members), np.zeros(n_classes)])
    bounds = [(0, None)] * n_members + [(None, None)] * n_classes
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:n_members], result.x[n_members:]


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
