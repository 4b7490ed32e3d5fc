"""Meta-learners of the conditional average treatment effect (CATE).

Each learner is fitted with ``fit(X, treatment, y)`` (treatment 0/1) and gives each
patient's estimated effect of treatment with ``effect(X)``: the expected outcome if
treated minus the expected outcome if not (for a binary outcome, a difference in risk).

- :class:`TLearner`: one outcome model per arm; effect = mu1(x) - mu0(x).
- :class:`SLearner`: one outcome model with the treatment as a feature.
- :class:`XLearner` (Künzel et al. 2019): imputed effects per arm, blended by the
  propensity score.
- :class:`DRLearner` (Kennedy 2023): the doubly robust pseudo-outcome, cross-fitted,
  regressed on the features.

Outcome models default to :class:`SelectedModel`, which picks per fit the candidate
(ridge, quadratic ridge, RBF kernel ridge up to 2,000 rows, LightGBM, LightGBM with
linear leaves) with
the lowest cross-validated error on the rows it is given, so the choice is made on
training data only. LightGBM runs single-threaded (cross-fitting with LightGBM's
default threads stalls a 2-core machine).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0); X = rng.normal(size=(600, 3))
>>> t = rng.integers(0, 2, 600); y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(0, 0.5, 600)
>>> tau = TLearner().fit(X, t, y).effect(X)
>>> bool(np.sqrt(np.mean((tau - (1 + X[:, 1])) ** 2)) < 0.3)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone, is_classifier
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

PROPENSITY_CLIP = 0.02
"""Propensity scores are kept within [0.02, 0.98] in the doubly robust terms."""


KERNEL_ROWS = 2000
"""Above this many rows the kernel ridge candidate is left out (its cost grows as n^3)."""


class KernelRidgeCV(RegressorMixin, BaseEstimator):
    """RBF kernel ridge regression with ``alpha`` and ``gamma`` chosen by exact
    leave-one-out error (one eigendecomposition of the kernel per ``gamma``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); X = rng.uniform(-2, 2, (200, 1))
    >>> y = np.sin(2 * X[:, 0]) + rng.normal(0, 0.1, 200)
    >>> model = KernelRidgeCV(gammas=(0.1, 1.0, 10.0)).fit(X, y)
    >>> model.gamma_, bool(np.mean((model.predict(X) - np.sin(2 * X[:, 0])) ** 2) < 0.01)
    (1.0, True)
    """

    def __init__(self, alphas: tuple[float, ...] = (0.01, 0.1, 1.0),
                 gammas: tuple[float, ...] = (0.005, 0.02, 0.05)) -> None:
        self.alphas = alphas
        self.gammas = gammas

    def fit(self, X: Any, y: Any) -> KernelRidgeCV:
        X, y = validate_data(self, X, y, y_numeric=True)
        self.errors_ = np.empty((len(self.gammas), len(self.alphas)))
        for i, gamma in enumerate(self.gammas):
            values, vectors = np.linalg.eigh(rbf_kernel(X, gamma=gamma))
            projected = vectors.T @ y
            for j, alpha in enumerate(self.alphas):
                shrink = values / (values + alpha)
                fitted = vectors @ (shrink * projected)
                leverage = np.minimum((vectors**2) @ shrink, 1 - 1e-9)
                self.errors_[i, j] = np.mean(((y - fitted) / (1 - leverage)) ** 2)
        i, j = np.unravel_index(np.argmin(self.errors_), self.errors_.shape)
        self.alpha_, self.gamma_ = float(self.alphas[j]), float(self.gammas[i])
        self.model_ = KernelRidge(kernel="rbf", alpha=self.alpha_, gamma=self.gamma_).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.model_.predict(validate_data(self, X, reset=False))


def outcome_candidates(n_rows: int = 0) -> dict[str, Any]:
    """The default candidate outcome models of :class:`SelectedModel` for ``n_rows`` rows."""
    from lightgbm import LGBMRegressor

    boosting = {"n_estimators": 300, "learning_rate": 0.03, "n_jobs": 1, "verbose": -1}
    candidates = {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 20))),
        "quadratic_ridge": make_pipeline(
            PolynomialFeatures(2, include_bias=False), StandardScaler(),
            RidgeCV(alphas=np.logspace(-2, 4, 20)),
        ),
        "kernel_ridge": make_pipeline(StandardScaler(), KernelRidgeCV()),
        "lightgbm": LGBMRegressor(num_leaves=15, min_child_samples=10, **boosting),
        "lightgbm_linear": LGBMRegressor(num_leaves=7, min_child_samples=20, linear_tree=True,
                                         linear_lambda=1.0, **boosting),
    }
    if n_rows > KERNEL_ROWS:
        del candidates["kernel_ridge"]
    return candidates


class SelectedModel(RegressorMixin, BaseEstimator):
    """The candidate with the lowest cross-validated squared error, refitted on all rows.

    Parameters
    ----------
    candidates : name -> unfitted regressor (default :func:`outcome_candidates`: kernel
        ridge only up to ``KERNEL_ROWS`` rows).
    folds : folds of the choice.
    random_state : seed of the folds.

    Attributes
    ----------
    chosen_ : the name of the chosen candidate.
    errors_ : cross-validated mean squared error of each candidate.
    """

    def __init__(self, candidates: dict[str, Any] | None = None, folds: int = 5,
                 random_state: int = 0) -> None:
        self.candidates = candidates
        self.folds = folds
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SelectedModel:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        candidates = self.candidates or outcome_candidates(y.size)
        folds = KFold(min(self.folds, y.size), shuffle=True, random_state=self.random_state)
        self.errors_ = {}
        for name, model in candidates.items():
            predicted = cross_val_predict(clone(model), X, y, cv=folds)
            self.errors_[name] = float(np.mean((predicted - y) ** 2))
        self.chosen_ = min(self.errors_, key=self.errors_.get)
        self.model_ = clone(candidates[self.chosen_]).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=float))


def frozen(model: Any) -> Any:
    """An unfitted copy of a fitted outcome model with its choice kept: the candidate a
    :class:`SelectedModel` chose (its own regularisation is tuned again), else a clone."""
    return clone(model.model_ if isinstance(model, SelectedModel) else model)


def _expected(model: Any, X: np.ndarray) -> np.ndarray:
    """A fitted model's expected outcome: the event probability of a classifier."""
    return model.predict_proba(X)[:, 1] if is_classifier(model) else model.predict(X)


def _default(model: Any, seed: int) -> Any:
    return SelectedModel(random_state=seed) if model is None else clone(model)


def _check(X: Any, treatment: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    t = np.asarray(treatment)
    y = np.asarray(y, dtype=float)
    if not set(np.unique(t)) <= {0, 1}:
        raise ValueError(f"treatment must be 0 or 1, got values {sorted(set(np.unique(t)))[:5]}")
    for arm in (0, 1):
        if (t == arm).sum() < 5:
            raise ValueError(
                f"arm {arm} has {(t == arm).sum()} patients; each arm needs at least 5"
            )
    return X, t.astype(int), y


class TLearner(BaseEstimator):
    """One outcome model per arm; effect = mu1(x) - mu0(x).

    Parameters
    ----------
    outcome : outcome model fitted in each arm (default :class:`SelectedModel`).
    random_state : seed of the default model's folds.
    """

    def __init__(self, outcome: Any = None, random_state: int = 0) -> None:
        self.outcome = outcome
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> TLearner:
        X, t, y = _check(X, treatment, y)
        self.models_ = [_default(self.outcome, self.random_state).fit(X[t == a], y[t == a])
                        for a in (0, 1)]
        return self

    def resample(self, X: Any, treatment: Any, y: Any, rows: np.ndarray) -> TLearner:
        """A copy fitted on ``rows`` with the same outcome models chosen (bootstrap)."""
        X, t, y = _check(X[rows], np.asarray(treatment)[rows], np.asarray(y)[rows])
        copy = clone(self)
        copy.models_ = [frozen(m).fit(X[t == a], y[t == a]) for a, m in enumerate(self.models_)]
        return copy

    def outcomes(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Expected outcome without and with treatment."""
        X = np.asarray(X, dtype=float)
        return _expected(self.models_[0], X), _expected(self.models_[1], X)

    def effect(self, X: Any) -> np.ndarray:
        mu0, mu1 = self.outcomes(X)
        return mu1 - mu0


class SLearner(BaseEstimator):
    """One outcome model with the treatment as a feature; effect = f(x, 1) - f(x, 0)."""

    def __init__(self, outcome: Any = None, random_state: int = 0) -> None:
        self.outcome = outcome
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> SLearner:
        X, t, y = _check(X, treatment, y)
        self.model_ = _default(self.outcome, self.random_state).fit(np.column_stack([X, t]), y)
        return self

    def resample(self, X: Any, treatment: Any, y: Any, rows: np.ndarray) -> SLearner:
        """A copy fitted on ``rows`` with the same outcome model chosen (bootstrap)."""
        X, t, y = _check(X[rows], np.asarray(treatment)[rows], np.asarray(y)[rows])
        copy = clone(self)
        copy.model_ = frozen(self.model_).fit(np.column_stack([X, t]), y)
        return copy

    def effect(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        ones, zeros = np.ones(len(X)), np.zeros(len(X))
        return (_expected(self.model_, np.column_stack([X, ones]))
                - _expected(self.model_, np.column_stack([X, zeros])))


def _propensity_model(propensity: Any) -> Any:
    return LogisticRegression(C=1.0, max_iter=5000) if propensity is None else clone(propensity)


class XLearner(BaseEstimator):
    """Künzel et al.'s X-learner: imputed effects per arm, blended by the propensity.

    Parameters
    ----------
    outcome : outcome model per arm (default :class:`SelectedModel`).
    effect_model : regressor of the imputed effects (default :class:`SelectedModel`).
    propensity : classifier of the treatment (default logistic regression).
    random_state : seed of the default models' folds.
    """

    def __init__(self, outcome: Any = None, effect_model: Any = None, propensity: Any = None,
                 random_state: int = 0) -> None:
        self.outcome = outcome
        self.effect_model = effect_model
        self.propensity = propensity
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> XLearner:
        X, t, y = _check(X, treatment, y)
        return self._fit(X, t, y, [_default(self.outcome, self.random_state)] * 2,
                         [_default(self.effect_model, self.random_state)] * 2)

    def _fit(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, outcomes: list[Any],
             effects: list[Any]) -> XLearner:
        self.outcomes_ = [clone(outcomes[a]).fit(X[t == a], y[t == a]) for a in (0, 1)]
        imputed = {1: y[t == 1] - _expected(self.outcomes_[0], X[t == 1]),
                   0: _expected(self.outcomes_[1], X[t == 0]) - y[t == 0]}
        self.effects_ = [clone(effects[a]).fit(X[t == a], imputed[a]) for a in (0, 1)]
        self.propensity_ = _propensity_model(self.propensity).fit(X, t)
        return self

    def resample(self, X: Any, treatment: Any, y: Any, rows: np.ndarray) -> XLearner:
        """A copy fitted on ``rows`` with the same models chosen (bootstrap)."""
        X, t, y = _check(X[rows], np.asarray(treatment)[rows], np.asarray(y)[rows])
        return clone(self)._fit(X, t, y, [frozen(m) for m in self.outcomes_],
                                [frozen(m) for m in self.effects_])

    def effect(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        e = self.propensity_.predict_proba(X)[:, 1]
        return e * self.effects_[0].predict(X) + (1 - e) * self.effects_[1].predict(X)


def dr_scores(
    y: np.ndarray, t: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """Doubly robust (AIPW) scores: each patient's unbiased, noisy effect estimate.

    Their mean estimates the average effect when either the outcome models or the
    propensity are right; :mod:`medpredict.effects.evaluation` scores CATE estimates
    against them on held-out patients.
    """
    e = np.clip(e, PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


def cross_fitted_scores(
    X: Any, treatment: Any, y: Any, outcome: Any = None, propensity: Any = None,
    folds: int = 5, random_state: int = 0, randomised: float | None = None,
) -> np.ndarray:
    """:func:`dr_scores` with every nuisance model fitted on the other folds.

    ``randomised`` (the known probability of treatment in a trial) replaces the
    estimated propensity.
    """
    X, t, y = _check(X, treatment, y)
    scores = np.empty(y.size)
    split = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    for train, test in split.split(X, t):
        arms = TLearner(outcome, random_state).fit(X[train], t[train], y[train])
        mu0, mu1 = arms.outcomes(X[test])
        if randomised is None:
            e = _propensity_model(propensity).fit(X[train], t[train]).predict_proba(X[test])[:, 1]
        else:
            e = np.full(test.size, randomised)
        scores[test] = dr_scores(y[test], t[test], mu0, mu1, e)
    return scores


class DRLearner(BaseEstimator):
    """The doubly robust learner: cross-fitted AIPW scores regressed on the features.

    Parameters
    ----------
    outcome, propensity : nuisance models (defaults as :class:`XLearner`).
    effect_model : regressor of the scores (default :class:`SelectedModel`).
    folds : cross-fitting folds.
    randomised : known probability of treatment (a trial); None estimates it.
    random_state : seed.
    """

    def __init__(self, outcome: Any = None, effect_model: Any = None, propensity: Any = None,
                 folds: int = 5, randomised: float | None = None, random_state: int = 0) -> None:
        self.outcome = outcome
        self.effect_model = effect_model
        self.propensity = propensity
        self.folds = folds
        self.randomised = randomised
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> DRLearner:
        X, t, y = _check(X, treatment, y)
        self.scores_ = cross_fitted_scores(X, t, y, self.outcome, self.propensity, self.folds,
                                           self.random_state, self.randomised)
        self.model_ = _default(self.effect_model, self.random_state).fit(X, self.scores_)
        return self

    def resample(self, X: Any, treatment: Any, y: Any, rows: np.ndarray) -> DRLearner:
        """A copy whose effect model (same choice) is refitted on ``rows``' doubly robust
        scores; the nuisance models are not refitted (their error is second order)."""
        copy = clone(self)
        copy.scores_ = self.scores_[rows]
        copy.model_ = frozen(self.model_).fit(np.asarray(X, dtype=float)[rows], copy.scores_)
        return copy

    def effect(self, X: Any) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=float))


LEARNERS: dict[str, Callable[..., Any]] = {
    "t_learner": TLearner, "s_learner": SLearner, "x_learner": XLearner, "dr_learner": DRLearner,
}
"""The meta-learners by name."""
