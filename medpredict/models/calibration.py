"""Probability calibration fitted inside the training fold, and its before/after report.

:class:`CalibratedModel` wraps any classifier with Platt scaling, isotonic regression
or temperature scaling (one temperature on the logits, the natural choice for neural
networks; multi-class by construction), all on the log-odds of the model's
probabilities. The calibrator is *cross-fitted*: the
classifier's inner out-of-fold scores on the training rows train the calibrator, so it
never sees the rows being evaluated. Multi-class Platt and isotonic are one-vs-rest,
renormalised (scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV`
does the fitting).

:func:`calibration_section` draws reliability curves before and after, with Brier
scores and bootstrap CIs, as a report :class:`~medpredict.report.html.Section`.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> from sklearn.naive_bayes import GaussianNB
>>> X, y = load_breast_cancer(return_X_y=True)
>>> model = CalibratedModel(GaussianNB(), method="isotonic").fit(X, y)
>>> model.predict_proba(X[:3]).shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from medpredict.evaluation.bootstrap import bootstrap
from medpredict.evaluation.metrics import brier, expected_calibration_error
from medpredict.evaluation.splits import inner_folds
from medpredict.models.ensembles import fit_member
from medpredict.report.html import Section, callout, figure, table

METHODS = {"platt": "sigmoid", "isotonic": "isotonic", "temperature": "temperature"}
_PROBA_FLOOR = 1e-12


class LogOddsScores(ClassifierMixin, BaseEstimator):
    """A classifier whose ``decision_function`` is the log-odds of its probabilities.

    Calibrators then work on the log-odds scale for every model (Platt scaling is a
    logistic regression on log-odds; temperature scaling divides logits), instead
    of on raw probabilities, which are squeezed against 0 and 1 for confident models.

    Parameters
    ----------
    estimator : unfitted classifier with ``predict_proba``.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, groups: Any = None) -> LogOddsScores:
        """Fit a clone of ``estimator``; ``groups`` go on to it if it requests them."""
        groups = None if groups is None else np.asarray(groups)
        self.estimator_ = fit_member(clone(self.estimator), X, y, groups)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The wrapped model's probabilities."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Binary: log-odds of the second class, shape (n,). Otherwise log-probabilities."""
        proba = np.clip(self.predict_proba(X), _PROBA_FLOOR, 1 - _PROBA_FLOOR)
        if proba.shape[1] == 2:
            return np.log(proba[:, 1] / proba[:, 0])
        return np.log(proba)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class CalibratedModel(ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities are recalibrated on inner out-of-fold scores.

    Parameters
    ----------
    estimator : unfitted classifier (any input it accepts, e.g. a raw DataFrame).
    method : ``"platt"``, ``"isotonic"`` or ``"temperature"``.
    cv : number of inner folds of the training rows.
    ensemble : False fits the calibrator on all inner out-of-fold scores and refits the
        classifier on all rows; True keeps one (classifier, calibrator) pair per inner
        fold and averages them (no refit).
    random_state : seed of the inner folds.

    Attributes
    ----------
    calibrated_ : the fitted :class:`~sklearn.calibration.CalibratedClassifierCV`.
    classes_ : class labels.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(
        self,
        estimator: Any,
        method: str = "platt",
        cv: int = 5,
        ensemble: bool = False,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.ensemble = ensemble
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> CalibratedModel:
        """Fit classifier and calibrator on these rows only (inner folds by patient).

        Parameters
        ----------
        X : training features.
        y : class labels.
        groups : optional patient id per row; inner folds keep a patient together.
        """
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        classes, y_index = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"calibration needs two or more classes; got {classes}")
        groups = None if groups is None else np.asarray(groups)
        folds = inner_folds(y_index, groups, self.cv, self.random_state)
        fit_params = {} if groups is None else {"groups": groups}
        self.calibrated_ = CalibratedClassifierCV(
            LogOddsScores(self.estimator),
            method=METHODS[self.method],
            cv=folds,
            ensemble=self.ensemble,
        ).fit(X, y, **fit_params)
        self.classes_ = self.calibrated_.classes_
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "calibrated_")
        return self.calibrated_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row (after calibration)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


def reliability_points(
    y: np.ndarray, risk: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted risk, observed frequency and row count in equal-count risk bins."""
    order = np.argsort(risk, kind="stable")
    bins = [b for b in np.array_split(order, min(n_bins, risk.size)) if b.size]
    predicted = np.array([risk[b].mean() for b in bins])
    observed = np.array([y[b].mean() for b in bins])
    counts = np.array([b.size for b in bins])
    return predicted, observed, counts


def _as_binary(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary: outcome and positive-class risk. Multi-class: whether the top class was
    right, and its probability (top-label calibration)."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        return y.astype(float), proba
    if proba.shape[1] == 2:
        return y.astype(float), proba[:, 1]
    top = proba.argmax(axis=1)
    return (top == y).astype(float), proba[np.arange(y.size), top]


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    outcome, risk = _as_binary(y, proba)
    if proba.ndim == 2 and proba.shape[1] > 2:
        onehot = np.eye(proba.shape[1])[y]
        score = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    else:
        score = brier(outcome, risk)
    return {"brier": score, "ece": expected_calibration_error(outcome, risk)}


def calibration_section(
    y: np.ndarray,
    probas: Mapping[str, np.ndarray],
    groups: np.ndarray | None = None,
    n_boot: int = 500,
    seed: int = 0,
    title: str = "Calibration before and after",
) -> Section:
    """Reliability curves and Brier/ECE with bootstrap CIs for each set of predictions.

    Parameters
    ----------
    y : outcome per row as class index ``0..K-1`` (binary: 0/1).
    probas : name -> out-of-fold probabilities, shape (n, K) (or (n,) positive risk);
        the first entry is the reference ("before"), the others are compared with it.
    groups : optional patient ids for a clustered bootstrap.
    n_boot, seed : bootstrap settings.
    title : section title.

    Returns
    -------
    Section with a figure, a table and a note on how to read it. Multi-class
    predictions are shown as top-label calibration (confidence vs accuracy).
    """
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype=int)
    names = list(probas)
    if not names:
        raise ValueError("calibration_section needs at least one set of predictions")
    reference = np.asarray(probas[names[0]], dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    rows = []
    for name in names:
        proba = np.asarray(probas[name], dtype=float)
        outcome, risk = _as_binary(y, proba)
        predicted, observed, _ = reliability_points(outcome, risk)
        ax.plot(predicted, observed, marker="o", label=name)
        est = bootstrap(_scores, y, proba, n_boot=n_boot, seed=seed, groups=groups)
        delta = "—"
        if name != names[0]:

            def paired(y_: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
                return {"delta": _scores(y_, a)["brier"] - _scores(y_, b)["brier"]}

            delta = str(
                bootstrap(paired, y, proba, reference, n_boot=n_boot, seed=seed, groups=groups)[
                    "delta"
                ]
            )
        rows.append([name, str(est["brier"]), str(est["ece"]), delta])
    multiclass = reference.ndim == 2 and reference.shape[1] > 2
    ax.set_xlabel("predicted probability of the top class" if multiclass else "predicted risk")
    ax.set_ylabel("observed accuracy" if multiclass else "observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    header = ["predictions", "Brier (95% CI)", "ECE (95% CI)", f"Brier change vs {names[0]}"]
    body = (
        figure(fig, f"reliability curves: {', '.join(names)}")
        + table(rows, header)
        + callout(
            "Points on the diagonal mean predicted risks match observed frequencies "
            "(equal-count bins of out-of-fold predictions). A Brier change whose interval "
            "lies below zero is a significant improvement.",
            kind="note",
        )
    )
    return Section(title, body)
