"""Survival models by name, under scikit-survival's conventions.

Every model takes the structured outcome of
:meth:`~medpredict.survival.outcome.SurvivalOutcome.structured` as ``y``; ``predict``
gives a risk score (higher: earlier event) and
``predict_survival_function(X, return_array=True)`` the survival probability at the
model's ``unique_times_``. :func:`survival_curves` reads any of them (alone or behind
the standard preprocessor) at any times, and :func:`~medpredict.survival.scoring.risk_scores`
turns curves into the one risk score a study compares across folds and models.

Examples
--------
>>> import numpy as np
>>> from medpredict.models import make_model
>>> from medpredict.survival.outcome import SURVIVAL_DTYPE
>>> rng = np.random.default_rng(0); X = rng.normal(size=(200, 3))
>>> y = np.empty(200, dtype=SURVIVAL_DTYPE)
>>> y["time"] = rng.exponential(np.exp(-X[:, 0])); y["event"] = rng.random(200) < 0.7
>>> model = make_model("cox").fit(X, y)
>>> curves = survival_curves(model, X[:2], np.array([0.5, 1.0]))
>>> curves.shape, bool(np.all(curves[:, 0] >= curves[:, 1]))
((2, 2), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sksurv.ensemble import RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

from medpredict.evaluation.survival import harrell_c
from medpredict.models.registry import make_model, register_model
from medpredict.survival.baseline import BreslowCurves
from medpredict.survival.outcome import from_structured
from medpredict.survival.scoring import risk_scores

CHUNK_ROWS = 4096
"""Rows whose full curves are held at once (a forest's curves have a value per event time)."""


def survival_curves(model: Any, X: Any, times: np.ndarray) -> np.ndarray:
    """Survival probability of each row of ``X`` at each of ``times`` (rows x times).

    Curves are step functions: 1 before the model's first time, its last value after
    its last time. Rows are predicted in chunks, so memory stays bounded however many
    rows are asked for.
    """
    times = np.asarray(times, dtype=float)
    if isinstance(model, Pipeline):
        X = model[:-1].transform(X)
        model = model[-1]
    index = np.searchsorted(model.unique_times_, times, side="right") - 1
    n_rows = X.shape[0]
    curves = np.empty((n_rows, times.size))
    for start in range(0, n_rows, CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, n_rows))
        chunk = X.iloc[rows] if hasattr(X, "iloc") else X[rows]
        values = model.predict_survival_function(chunk, return_array=True)
        curves[rows] = values[:, np.maximum(index, 0)]
    curves[:, index < 0] = 1.0
    return np.clip(curves, 0.0, 1.0)


@register_model("cox", "Cox proportional hazards (Breslow ties, a small ridge for stability)",
                survival=True)
def _cox(seed: int = 0, class_weight: str | None = None, alpha: float = 0.01,
         **params: Any) -> CoxPHSurvivalAnalysis:
    return CoxPHSurvivalAnalysis(alpha=alpha, ties="breslow", **params)


class PenalizedCox(BaseEstimator):
    """Elastic-net Cox model whose penalty is chosen by inner cross-validation.

    The regularisation path is fitted on each of ``inner_folds`` training parts; the
    penalty with the best mean Harrell's C on the held-out parts is refitted on all
    rows (scikit-survival's ``CoxnetSurvivalAnalysis``).

    Parameters
    ----------
    l1_ratio : mix of lasso (1) and ridge (0) penalties.
    n_alphas : penalties on the path.
    inner_folds : folds choosing the penalty.
    random_state : seed of the inner folds.

    Examples
    --------
    >>> import numpy as np
    >>> from medpredict.survival.outcome import SURVIVAL_DTYPE
    >>> rng = np.random.default_rng(1); X = rng.normal(size=(300, 5))
    >>> y = np.empty(300, dtype=SURVIVAL_DTYPE)
    >>> y["time"] = rng.exponential(np.exp(-X[:, 0])); y["event"] = True
    >>> model = PenalizedCox().fit(X, y)
    >>> model.alpha_ > 0, bool(abs(model.coef_[0]) > abs(model.coef_[4]))
    (True, True)
    """

    def __init__(
        self, l1_ratio: float = 0.5, n_alphas: int = 30, inner_folds: int = 3,
        random_state: int = 0,
    ) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.inner_folds = inner_folds
        self.random_state = random_state

    def _path(self, alphas: Any = None) -> CoxnetSurvivalAnalysis:
        return CoxnetSurvivalAnalysis(
            l1_ratio=self.l1_ratio, n_alphas=self.n_alphas, alphas=alphas,
            alpha_min_ratio=0.01, fit_baseline_model=True, max_iter=100_000,
        )

    def fit(self, X: Any, y: np.ndarray) -> PenalizedCox:
        X = np.asarray(X, dtype=float)
        time, event = from_structured(y)
        alphas = self._path().fit(X, y).alphas_
        folds = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.random_state)
        scores = np.zeros(alphas.size)
        for train, test in folds.split(X, event):
            path = self._path(alphas).fit(X[train], y[train])
            for k, alpha in enumerate(path.alphas_):
                risk = path.predict(X[test], alpha=alpha)
                scores[k] += np.nan_to_num(harrell_c(time[test], event[test], risk))
        self.alpha_ = float(alphas[int(np.argmax(scores))])
        self.model_ = self._path([self.alpha_]).fit(X, y)
        self.coef_ = self.model_.coef_[:, 0]
        self.unique_times_ = self.model_.unique_times_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=float))

    def predict_survival_function(self, X: Any, return_array: bool = True) -> Any:
        return self.model_.predict_survival_function(
            np.asarray(X, dtype=float), return_array=return_array
        )


@register_model("penalized_cox", "Elastic-net Cox model, penalty chosen by inner CV",
                survival=True)
def _penalized_cox(seed: int = 0, class_weight: str | None = None,
                   **params: Any) -> PenalizedCox:
    return PenalizedCox(random_state=seed, **params)


@register_model("random_survival_forest", "Random survival forest (log-rank splits)",
                survival=True)
def _random_survival_forest(
    seed: int = 0, class_weight: str | None = None, n_samples: int | None = None,
    **params: Any,
) -> RandomSurvivalForest:
    settings = {
        "n_estimators": 100, "min_samples_leaf": 15, "max_features": "sqrt",
        "max_samples": None if (n_samples or 0) <= 3000 else 3000,
        "low_memory": False, "n_jobs": 1, "random_state": seed,
    }
    return RandomSurvivalForest(**{**settings, **params})


def cox_gradient(log_hazard: np.ndarray, time: np.ndarray, event: np.ndarray,
                 order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian diagonal of the negative Cox partial log-likelihood (Breslow).

    ``order`` sorts the rows by time; the sums over risk sets are suffix sums over it.
    """
    f = log_hazard - np.max(log_hazard)
    risk = np.exp(f)
    t = time[order]
    unique, first = np.unique(t, return_index=True)
    at_risk = np.cumsum(risk[order][::-1])[::-1][first]
    deaths = np.bincount(np.searchsorted(unique, time[event]), minlength=unique.size)
    a = np.cumsum(deaths / at_risk)
    b = np.cumsum(deaths / at_risk**2)
    position = np.searchsorted(unique, time)
    gradient = risk * a[position] - event
    hessian = risk * a[position] - risk**2 * b[position]
    return gradient, np.maximum(hessian, 1e-12)


class GradientBoostedCox(BreslowCurves, BaseEstimator):
    """LightGBM trees boosted on the Cox partial likelihood, with Breslow curves.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample,
    colsample_bytree, reg_lambda : LightGBM settings.
    n_threads : LightGBM threads.
    random_state : seed of the row and column sampling.

    Examples
    --------
    >>> import numpy as np
    >>> from medpredict.survival.outcome import SURVIVAL_DTYPE
    >>> rng = np.random.default_rng(2); X = rng.normal(size=(500, 4))
    >>> y = np.empty(500, dtype=SURVIVAL_DTYPE)
    >>> y["time"] = rng.exponential(np.exp(-np.abs(X[:, 0]))); y["event"] = True
    >>> model = GradientBoostedCox(n_estimators=50).fit(X, y)
    >>> harrell_c(y["time"], y["event"], model.predict(X)) > 0.6
    True
    """

    def __init__(
        self, n_estimators: int = 200, learning_rate: float = 0.03, num_leaves: int = 8,
        min_child_samples: int = 20, subsample: float = 0.8, colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0, n_threads: int = 1, random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_threads = n_threads
        self.random_state = random_state

    def fit(self, X: Any, y: np.ndarray) -> GradientBoostedCox:
        import lightgbm

        X = np.asarray(X, dtype=float)
        time, event = from_structured(y)
        order = np.argsort(time, kind="stable")

        def objective(scores: np.ndarray, data: Any) -> tuple[np.ndarray, np.ndarray]:
            return cox_gradient(scores, time, event, order)

        params = {
            "objective": objective, "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample, "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree, "lambda_l2": self.reg_lambda,
            "num_threads": self.n_threads, "seed": self.random_state, "verbosity": -1,
            "deterministic": True,
        }
        booster = lightgbm.train(params, lightgbm.Dataset(X, free_raw_data=False),
                                 num_boost_round=self.n_estimators)
        booster.params.pop("objective", None)  # a function is never stored with the model
        self.booster_ = booster
        self.n_features_in_ = X.shape[1]
        self._fit_baseline(self.predict(X), time, event)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Log hazard ratio of each row (the risk score)."""
        return self.booster_.predict(np.asarray(X, dtype=float), raw_score=True)


@register_model("gradient_boosted_survival",
                "LightGBM gradient boosting under the Cox partial likelihood", survival=True)
def _gradient_boosted_survival(
    seed: int = 0, class_weight: str | None = None, **params: Any
) -> GradientBoostedCox:
    return GradientBoostedCox(random_state=seed, **params)


class SurvivalEnsemble(BaseEstimator):
    """Averaged survival curves of several survival models (on the same inputs).

    Parameters
    ----------
    members : registered survival model names.
    random_state : seed passed to every member.

    Attributes
    ----------
    members_ : the fitted members.
    unique_times_ : the union of the members' times (at most 400, by quantile).
    """

    def __init__(
        self,
        members: tuple[str, ...] = (
            "gradient_boosted_survival", "random_survival_forest", "logistic_hazard",
        ),
        random_state: int = 0,
    ) -> None:
        self.members = members
        self.random_state = random_state

    def fit(self, X: Any, y: np.ndarray) -> SurvivalEnsemble:
        self.members_ = [
            make_model(name, seed=self.random_state, n_samples=len(y)).fit(X, y)
            for name in self.members
        ]
        times = np.unique(np.concatenate([m.unique_times_ for m in self.members_]))
        if times.size > 400:
            times = np.unique(np.quantile(times, np.linspace(0, 1, 400)))
        self.unique_times_ = times
        return self

    def predict_survival_function(self, X: Any, return_array: bool = True) -> np.ndarray:
        if not return_array:
            raise ValueError("SurvivalEnsemble gives survival curves as arrays only")
        return np.mean(
            [survival_curves(m, X, self.unique_times_) for m in self.members_], axis=0
        )

    def predict(self, X: Any) -> np.ndarray:
        return risk_scores(self.predict_survival_function(X), self.unique_times_)


@register_model("survival_ensemble",
                "Average of the survival curves of boosted Cox, random survival forest and "
                "logistic hazard",
                survival=True)
def _survival_ensemble(seed: int = 0, class_weight: str | None = None,
                       **params: Any) -> SurvivalEnsemble:
    return SurvivalEnsemble(random_state=seed, **params)
