"""Classical candidate models: L2 logistic regression, random forest, SVM, LightGBM."""

from __future__ import annotations

from typing import Any

from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from medpredict.models.registry import register_model


@register_model("logistic_regression", "L2-penalised logistic regression")
def logistic_regression(seed: int, class_weight: str | None, **params: Any) -> LogisticRegression:
    """L2-penalised logistic regression."""
    defaults = {"C": 1.0, "max_iter": 5000}
    return LogisticRegression(class_weight=class_weight, random_state=seed, **defaults | params)


@register_model("random_forest", "random forest of 300 trees")
def random_forest(seed: int, class_weight: str | None, **params: Any) -> RandomForestClassifier:
    """Random forest of 300 trees."""
    defaults = {"n_estimators": 300, "min_samples_leaf": 2, "n_jobs": 1}
    return RandomForestClassifier(class_weight=class_weight, random_state=seed, **defaults | params)


@register_model("svm", "RBF support-vector machine with Platt-scaled probabilities")
def svm(seed: int, class_weight: str | None, **params: Any) -> CalibratedClassifierCV:
    """RBF support-vector machine; probabilities by Platt scaling on internal 5-fold scores."""
    defaults = {"C": 1.0, "kernel": "rbf"}
    machine = SVC(class_weight=class_weight, random_state=seed, **defaults | params)
    return CalibratedClassifierCV(machine, method="sigmoid", cv=5, ensemble=False)


@register_model("lightgbm", "LightGBM gradient-boosted trees")
def lightgbm(seed: int, class_weight: str | None, **params: Any) -> LGBMClassifier:
    """LightGBM gradient-boosted trees (deterministic, single thread, quiet)."""
    defaults = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 10,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "n_jobs": 1,
        "deterministic": True,
        "verbose": -1,
    }
    return LGBMClassifier(class_weight=class_weight, random_state=seed, **defaults | params)
