"""Classical candidate models: L2 logistic regression, random forest, SVM, LightGBM.

Defaults suit small clinical tables. On large tables (``n_samples`` above
``LARGE_TABLE`` rows) the random forest grows 100 trees, each on a subsample of
about 10,000 rows (a fraction of the training rows, so smaller fits such as a learning
curve's scale with it; on that much data more trees change the risks very little), and
the SVM uses a Nystroem approximation of the RBF kernel with a linear SVM, which keeps
training time roughly linear in the number of rows.
"""

from __future__ import annotations

from typing import Any

from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from medpredict.models.registry import register_model

LARGE_TABLE = 20_000


@register_model("logistic_regression", "L2-penalised logistic regression")
def logistic_regression(seed: int, class_weight: str | None, **params: Any) -> LogisticRegression:
    """L2-penalised logistic regression."""
    defaults = {"C": 1.0, "max_iter": 5000}
    return LogisticRegression(class_weight=class_weight, random_state=seed, **defaults | params)


@register_model("random_forest", "random forest of 300 trees (100 on large tables)")
def random_forest(
    seed: int, class_weight: str | None, n_samples: int | None = None, **params: Any
) -> RandomForestClassifier:
    """Random forest of 300 trees (100, each on a 10,000-row subsample, for large tables).

    Trees are grown on all cores; each tree has its own seed, so results do not depend
    on the number of cores.
    """
    defaults: dict[str, Any] = {"n_estimators": 300, "min_samples_leaf": 2, "n_jobs": -1}
    if n_samples and n_samples > LARGE_TABLE:
        defaults |= {"n_estimators": 100, "max_samples": 10_000 / n_samples}
    return RandomForestClassifier(class_weight=class_weight, random_state=seed, **defaults | params)


@register_model("svm", "RBF support-vector machine with Platt-scaled probabilities")
def svm(
    seed: int, class_weight: str | None, n_samples: int | None = None, **params: Any
) -> CalibratedClassifierCV:
    """RBF support-vector machine; probabilities by Platt scaling on internal 5-fold scores."""
    if n_samples and n_samples > LARGE_TABLE:
        machine = Pipeline(
            [
                (
                    "kernel",
                    Nystroem(gamma=params.pop("gamma", None), n_components=300, random_state=seed),
                ),
                (
                    "svm",
                    SGDClassifier(
                        loss="hinge",
                        alpha=1e-4,
                        class_weight=class_weight,
                        random_state=seed,
                        **params,
                    ),
                ),
            ]
        )
        return CalibratedClassifierCV(machine, method="sigmoid", cv=3, ensemble=False)
    defaults = {"C": 1.0, "kernel": "rbf"}
    machine = SVC(class_weight=class_weight, random_state=seed, **defaults | params)
    return CalibratedClassifierCV(machine, method="sigmoid", cv=5, ensemble=False)


@register_model("lightgbm", "LightGBM gradient-boosted trees")
def lightgbm(seed: int, class_weight: str | None, **params: Any) -> LGBMClassifier:
    """LightGBM gradient-boosted trees, regularised for small clinical tables.

    Small leaves count and at least 20 rows per leaf keep probabilities from becoming
    overconfident on a few hundred patients; deterministic, single thread, quiet.
    """
    defaults = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 7,
        "min_child_samples": 20,
        "reg_lambda": 1.0,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "n_jobs": 1,
        "deterministic": True,
        "verbose": -1,
    }
    return LGBMClassifier(class_weight=class_weight, random_state=seed, **defaults | params)
