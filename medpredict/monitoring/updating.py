"""Updating a deployed binary risk model on recent or local patients.

A model's predictions drift from the truth when case mix, outcome rates or practice
change. The updating methods of the prediction-model literature form a hierarchy, from
the least to the most extensive (Steyerberg, *Clinical Prediction Models*, 2nd ed.,
ch. 20; Vergouwe et al., Stat Med 2017;36:4529-4539). Each method here wraps a fitted
base model (see :mod:`medpredict.monitoring.binary`; for example
``medpredict.artifact.load_model(path).estimator``, which reads the raw feature table)
and is fitted on the new patients only:

* :class:`RecalibrationInTheLarge` (:func:`recalibrate_in_the_large`): a new intercept;
  the base model's log-odds enter as an offset, slope fixed at 1. One parameter. Fixes
  risks that are too high or too low on average (a different outcome rate).
* :class:`LogisticRecalibration` (:func:`logistic_recalibration`): a new intercept and
  slope on the base log-odds. Two parameters. Also fixes risks that are too extreme
  (slope below 1) or too modest (slope above 1); the ranking of patients is unchanged.
* :class:`ModelRevision` (:func:`model_revision`): logistic recalibration plus a
  coefficient for each revision feature (all of them by default, or those named), which
  re-estimates how strongly each predictor counts in the new data.
* :class:`Refit` (:func:`refit`): the base model's unfitted clone
  (:func:`sklearn.base.clone`, same hyperparameters) fitted on the new data alone.

Each update is a scikit-learn classifier (``fit``, ``predict_proba``, ``predict``,
``log_likelihood``) whose ``classes_`` are the base model's class labels (for
:class:`Refit`, those of the refitted clone). The first three are unpenalised logistic
regressions on the base model's log-odds, fitted by Newton-Raphson with step halving;
once fitted they also have ``beta_`` (the coefficients, on the scale fitted),
``n_parameters_`` (how many were estimated, intercept included) and
``log_likelihood_`` (on the fitting data). Which of them the new data support is
chosen by :func:`medpredict.monitoring.closed_test.closed_test`; a refitted model is
compared with the deployed one by
:func:`medpredict.monitoring.comparison.champion_challenger`.

Examples
--------
Ripley's two Pima sets are a random split of the same women, so the recalibration slope
is close to 1:

>>> from sklearn.linear_model import LogisticRegression
>>> from medpredict.data.datasets import load_dataset
>>> development, recent = load_dataset("pima_tr"), load_dataset("pima_te")
>>> features = ["glu", "bmi", "ped", "age"]
>>> deployed = LogisticRegression(max_iter=1000).fit(development[features], development["type"])
>>> updated = logistic_recalibration(deployed, recent[features], recent["type"])
>>> round(updated.slope_, 2), updated.predict_proba(recent[features][:3]).shape
(1.02, (3, 2))
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from medpredict.monitoring.binary import check_model, log_likelihood, log_odds, outcomes

_MAX_NEWTON = 100
_DEPENDENT = 1e-7  # a column whose residual norm is below this share of sqrt(n) adds nothing


def _fit_logistic(
    design: np.ndarray, y: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, float]:
    """Unpenalised maximum-likelihood logistic regression of ``y`` on ``design``.

    ``offset`` is added to the linear predictor with coefficient 1. Newton-Raphson
    with step halving; under perfect separation the estimate after ``_MAX_NEWTON``
    steps is returned (its coefficients are then large). Returns the coefficients and
    the maximised log-likelihood.
    """
    beta = np.zeros(design.shape[1])
    eta = offset.copy()
    loglik = log_likelihood(y, eta)
    for _ in range(_MAX_NEWTON):
        mu = expit(eta)
        gradient = design.T @ (y - mu)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design
        try:
            with warnings.catch_warnings():  # near-separation: the fallback handles it
                warnings.simplefilter("ignore", linalg.LinAlgWarning)
                step = linalg.solve(hessian, gradient, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            step = linalg.lstsq(hessian, gradient)[0]
        scale = 1.0
        while True:
            trial = beta + scale * step
            trial_eta = offset + design @ trial
            trial_loglik = log_likelihood(y, trial_eta)
            if trial_loglik >= loglik - 1e-12 or scale < 1e-10:
                break
            scale /= 2
        gain = trial_loglik - loglik
        beta, eta, loglik = trial, trial_eta, max(trial_loglik, loglik)
        if np.max(np.abs(scale * step), initial=0.0) < 1e-9 or abs(gain) < 1e-11:
            break
    return beta, loglik


class _Update(ClassifierMixin, BaseEstimator):
    """A deployed model updated on new data; risks in the order of ``classes_``."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __sklearn_clone__(self) -> Self:
        """A copy with the same parameters, the fitted base model kept as it is.

        :func:`sklearn.base.clone` would otherwise clone the base model into an
        unfitted one; the base is the deployed model being updated, not a
        hyperparameter.
        """
        return type(self)(**self.get_params(deep=False))

    def _updated_log_odds(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """Updated probabilities, shape (n, 2), columns in the order of ``classes_``."""
        check_is_fitted(self, "classes_")
        risk = expit(self._updated_log_odds(X))
        return np.column_stack([1 - risk, risk])

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row (after updating)."""
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]

    def log_likelihood(self, X: Any, y: Any) -> float:
        """Log-likelihood of outcomes ``y`` under the updated (clipped) risks."""
        eta = self._updated_log_odds(X)
        return log_likelihood(outcomes(self, X, y), eta)


class _LogisticUpdate(_Update):
    """An unpenalised logistic regression on the base model's log-odds (and features).

    A subclass gives the design matrix and offset; the updated log-odds are
    ``offset + design @ beta_``.
    """

    def fit(self, X: Any, y: Any) -> Self:
        """Estimate the update on these (new) rows.

        Parameters
        ----------
        X : features as the base model reads them (e.g. the raw DataFrame).
        y : outcomes, as the base model's class labels or 0/1.
        """
        check_model(self.base)
        events = outcomes(self.base, X, y)
        self.classes_ = np.asarray(getattr(self.base, "classes_", np.array([0, 1])))
        design, offset = self._fit_design(X, log_odds(self.base, X))
        self.beta_, self.log_likelihood_ = _fit_logistic(design, events, offset)
        self.n_parameters_ = int(self.beta_.size)
        self._set_coefficients()
        return self

    def _fit_design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The design on the fitting rows, learning whatever it needs from them."""
        return self._design(X, lp)

    def _design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Design matrix and offset for rows ``X`` with base log-odds ``lp``."""
        raise NotImplementedError

    def _set_coefficients(self) -> None:
        """The named coefficients, from ``beta_``."""
        raise NotImplementedError

    def _updated_log_odds(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "beta_")
        design, offset = self._design(X, log_odds(self.base, X))
        return offset + design @ self.beta_


class RecalibrationInTheLarge(_LogisticUpdate):
    """Recalibration in the large: a new intercept, the base log-odds as offset.

    The updated log-odds are ``intercept_ + logit(p)``, with ``p`` the base model's risk:
    every patient's odds are multiplied by the same factor ``exp(intercept_)``, so the
    average predicted risk matches the new data and the ranking is unchanged.

    Parameters
    ----------
    base : fitted binary classifier with ``predict_proba``; it is not refitted, and
        :func:`sklearn.base.clone` keeps it as it is.

    Attributes
    ----------
    intercept_ : float
        Log-odds correction; it equals the calibration-in-the-large of the base model on
        the update data (0 means no correction was needed).

    See Also
    --------
    recalibrate_in_the_large : fits it, with an example.
    """

    def _design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((lp.size, 1)), lp

    def _set_coefficients(self) -> None:
        self.intercept_ = float(self.beta_[0])


class LogisticRecalibration(_LogisticUpdate):
    """Logistic recalibration: a new intercept and slope on the base log-odds.

    The updated log-odds are ``intercept_ + slope_ * logit(p)``. A slope below 1 shrinks
    risks that were too extreme (typical of an overfitted model); above 1 spreads risks
    that were too modest.

    Parameters
    ----------
    base : fitted binary classifier with ``predict_proba``; it is not refitted.

    Attributes
    ----------
    intercept_, slope_ : float
        The recalibration coefficients; on the update data they are the base model's
        calibration intercept and calibration slope (ideal 0 and 1).

    See Also
    --------
    logistic_recalibration : fits it, with an example.
    """

    def _design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.column_stack([np.ones_like(lp), lp]), np.zeros_like(lp)

    def _set_coefficients(self) -> None:
        self.intercept_, self.slope_ = (float(b) for b in self.beta_)


def _is_linear_pipeline(base: Any) -> bool:
    """A scikit-learn Pipeline ending in a binary linear model (one row of ``coef_``)."""
    if not isinstance(base, Pipeline) or len(base.steps) < 2:
        return False
    coef = getattr(base[-1], "coef_", None)
    return coef is not None and np.ndim(coef) == 2 and np.shape(coef)[0] == 1


def _revision_columns(
    base: Any, X: Any, features: Sequence[Any] | None
) -> tuple[np.ndarray, list[str], str]:
    """The revision model's feature matrix, its column names and where they come from.

    Named ``features``: those columns of ``X`` (numeric). Otherwise, for a Pipeline
    ending in a linear model, the features after its preprocessing (so revision
    re-estimates every coefficient of the linear predictor); for any other model, the
    numeric columns of ``X`` as they are.
    """
    if features is not None:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        absent = [f for f in features if f not in frame.columns]
        if absent:
            raise ValueError(f"revision features not among the columns of X: {absent}")
        chosen = frame[list(features)]
        text = [str(c) for c in chosen.columns if not pd.api.types.is_numeric_dtype(chosen[c])]
        if text:
            raise ValueError(f"revision features must be numeric; not numeric: {text}")
        return chosen.to_numpy(dtype=float), [str(f) for f in features], "selected"
    if _is_linear_pipeline(base):
        transformed = base[:-1].transform(X)
        if hasattr(transformed, "toarray"):
            transformed = transformed.toarray()
        matrix = np.asarray(transformed, dtype=float)
        try:
            names = [str(n) for n in base[:-1].get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):
            names = [f"x{i}" for i in range(matrix.shape[1])]
        return matrix, names, "preprocessed"
    if isinstance(X, pd.DataFrame):
        numeric = X.select_dtypes(include=["number", "bool"])
        return numeric.to_numpy(dtype=float), [str(c) for c in numeric.columns], "raw numeric"
    matrix = np.asarray(X, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"X must be a table (2-D); got shape {matrix.shape}")
    return matrix, [f"x{i}" for i in range(matrix.shape[1])], "raw numeric"


def _independent(columns: np.ndarray) -> np.ndarray:
    """Indices of the columns that are not linear combinations of the columns before them."""
    if columns.shape[1] == 0:
        return np.array([], dtype=int)
    r = linalg.qr(columns, mode="r")[0]
    diagonal = np.abs(np.diag(r))
    limit = _DEPENDENT * np.sqrt(columns.shape[0])
    return np.flatnonzero(diagonal[: columns.shape[1]] > limit)


class ModelRevision(_LogisticUpdate):
    """Model revision: logistic recalibration plus re-estimated feature coefficients.

    The updated log-odds are ``a + b * logit(p) + sum_j c_j * x_j`` over the revision
    features ``x_j``. A coefficient ``c_j`` is how much more (or less) feature ``j``
    counts in the new data than the base model lets it.

    Which features: ``features`` names columns of ``X`` (selective re-estimation).
    Otherwise, when the base is a Pipeline ending in a linear model (a logistic
    regression), the features after its preprocessing: the base log-odds are then a
    linear combination of them, so the revision is a logistic regression on those
    features alone: it re-estimates every coefficient of the linear predictor and has
    ``p + 1`` parameters for ``p`` preprocessed features, as in Vergouwe et al. 2017.
    For any other (non-linear) base model there is no linear predictor to re-estimate;
    the revision is then a logistic regression on the base log-odds plus the numeric
    columns of ``X`` as they are (``q`` columns, ``q + 2`` parameters), which asks
    whether any feature carries information the base model misses or misweights in
    the new data.

    Missing feature values are filled with the update data's column means. Columns
    that are constant or linear combinations of earlier ones (for example a full set
    of one-hot dummies beside the intercept) are dropped, so every parameter counted
    is estimable.

    Parameters
    ----------
    base : fitted binary classifier with ``predict_proba``; it is not refitted.
    features : optional column names of ``X`` (integer positions for an array) to
        re-estimate; all (see above) when None.

    Attributes
    ----------
    coefficients_ : dict
        ``"intercept"``, ``"base_log_odds"`` (absent for a linear pipeline's
        preprocessed features) and one coefficient per kept feature, per unit of that
        feature (of the preprocessed column, for preprocessed features).
    feature_source_ : str
        ``"selected"``, ``"preprocessed"`` or ``"raw numeric"``.

    See Also
    --------
    model_revision : fits it, with an example.
    """

    def __init__(self, base: Any, features: Sequence[Any] | None = None) -> None:
        self.base = base
        self.features = features

    def _columns(self, X: Any, lp: np.ndarray) -> np.ndarray:
        """Standardised candidate columns: intercept, features and (unless the features
        span the base's linear predictor) the base log-odds."""
        matrix, _, _ = _revision_columns(self.base, X, self.features)
        matrix = np.where(np.isnan(matrix), self.center_, matrix)
        parts = [np.ones_like(lp), (matrix - self.center_) / self.scale_]
        if self.uses_base_log_odds_:
            parts.append((lp - self.lp_center_) / self.lp_scale_)
        return np.column_stack(parts)

    def _fit_design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        matrix, self._names, self.feature_source_ = _revision_columns(self.base, X, self.features)
        # preprocessed features of a linear pipeline span its linear predictor already
        self.uses_base_log_odds_ = self.feature_source_ != "preprocessed"
        if matrix.shape[0] != lp.size:
            raise ValueError("the revision features and the base model disagree on rows")
        with np.errstate(invalid="ignore"):
            center = np.nanmean(matrix, axis=0) if matrix.size else np.zeros(matrix.shape[1])
        self.center_ = np.nan_to_num(center)
        filled = np.where(np.isnan(matrix), self.center_, matrix)
        scale = filled.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.lp_center_ = float(lp.mean())
        self.lp_scale_ = float(lp.std()) or 1.0
        columns = self._columns(X, lp)
        self.kept_ = _independent(columns)
        return columns[:, self.kept_], np.zeros_like(lp)

    def _design(self, X: Any, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._columns(X, lp)[:, self.kept_], np.zeros_like(lp)

    def _set_coefficients(self) -> None:
        """Coefficients per unit of each feature (and of the base log-odds)."""
        centers = np.r_[0.0, self.center_, self.lp_center_]
        scales = np.r_[1.0, self.scale_, self.lp_scale_]
        labels = ["intercept", *self._names, "base_log_odds"]
        out: dict[str, float] = {}
        intercept = 0.0
        for index, b in zip(self.kept_, self.beta_, strict=True):
            if index == 0:
                intercept += b
                continue
            per_unit = b / scales[index]
            out[labels[index]] = float(per_unit)
            intercept -= per_unit * centers[index]
        self.coefficients_ = {"intercept": float(intercept), **out}


class Refit(_Update):
    """Refitting: the base model's unfitted clone fitted on the new data alone.

    :func:`sklearn.base.clone` keeps the base model's hyperparameters (its penalty,
    its preprocessing) and forgets its fitted state, so nothing learned from the
    development data survives. The most extensive update; with few new patients it
    overfits, which is why the closed test stops before it.

    Parameters
    ----------
    base : binary classifier (fitted or not); its clone is what is fitted.

    Attributes
    ----------
    estimator_ : the clone of ``base`` fitted on the new data.

    See Also
    --------
    refit : fits it, with an example.
    """

    def fit(self, X: Any, y: Any) -> Self:
        """Fit a clone of ``base`` on these (new) rows.

        Parameters
        ----------
        X : features as the base model reads them.
        y : outcomes as the base model takes them.
        """
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.estimator_ = clone(self.base).fit(X, y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        if self.classes_.size != 2:
            raise ValueError(f"updating needs a binary model; it has {self.classes_.size} classes")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The refitted model's probabilities."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict_proba(X), dtype=float)

    def _updated_log_odds(self, X: Any) -> np.ndarray:
        return log_odds(self, X)


def recalibrate_in_the_large(base: Any, X: Any, y: Any) -> RecalibrationInTheLarge:
    """Fit :class:`RecalibrationInTheLarge` of ``base`` on new data ``X``, ``y``.

    The fitted model's mean risk on ``X`` equals the event rate of ``y``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = recalibrate_in_the_large(GaussianNB().fit(X[:200], y[:200]), X[200:], y[200:])
    >>> bool(abs(model.predict_proba(X[200:])[:, 1].mean() - y[200:].mean()) < 1e-6)
    True
    """
    return RecalibrationInTheLarge(base).fit(X, y)


def logistic_recalibration(base: Any, X: Any, y: Any) -> LogisticRecalibration:
    """Fit :class:`LogisticRecalibration` of ``base`` on new data ``X``, ``y``.

    Its ``intercept_`` and ``slope_`` are the calibration intercept and slope of
    ``base`` on ``X``, ``y``.

    Examples
    --------
    A lightly penalised model fitted on 150 rows is overconfident (slope below 1):

    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> overfitted = make_pipeline(StandardScaler(), LogisticRegression(C=100.0))
    >>> model = logistic_recalibration(overfitted.fit(X[:150], y[:150]), X[150:], y[150:])
    >>> bool(model.slope_ < 1)
    True
    """
    return LogisticRecalibration(base).fit(X, y)


def model_revision(
    base: Any, X: Any, y: Any, features: Sequence[Any] | None = None
) -> ModelRevision:
    """Fit :class:`ModelRevision` of ``base`` on new data ``X``, ``y``.

    ``features`` names the columns of ``X`` to re-estimate (None: all, as described
    under :class:`ModelRevision`).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> deployed = GaussianNB().fit(X[:300], y[:300])
    >>> model = model_revision(deployed, X[300:], y[300:], features=["mean radius"])
    >>> sorted(model.coefficients_), model.n_parameters_
    (['base_log_odds', 'intercept', 'mean radius'], 3)
    """
    return ModelRevision(base, features=features).fit(X, y)


def refit(base: Any, X: Any, y: Any) -> Refit:
    """Fit :class:`Refit` (a clone of ``base``) on new data ``X``, ``y``.

    The fitted clone is its ``estimator_``; ``base`` is left as it is.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> deployed = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X[:300], y[:300])
    >>> model = refit(deployed, X[300:], y[300:])
    >>> model.estimator_ is not deployed, model.predict_proba(X[:2]).shape
    (True, (2, 2))
    """
    return Refit(base).fit(X, y)
