"""Hybrids that pass learned features or scores between deep and classical models.

- :class:`DeepFeatureClassifier`: a network's learned representation (the trained
  classifier's penultimate layer, or an autoencoder's code) feeds a classical head
  (logistic regression, SVM, LightGBM).
- :class:`LeafEmbeddingClassifier`: LightGBM's leaf assignments, one categorical
  column per tree, feed a network that embeds them (gradient-boosted features -> deep head).
- :class:`ResidualBoostingClassifier`: gradient boosting that starts from another
  model's out-of-fold log-odds, so the trees learn what that model missed.

All take the raw feature table and fit everything on the rows given to ``fit``.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> from medpredict.models.deep import TabularAutoencoder
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> model = DeepFeatureClassifier(TabularAutoencoder(code_size=4, max_epochs=5)).fit(X, y)
>>> model.predict_proba(X.iloc[:2]).shape
(2, 2)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from medpredict.evaluation.splits import inner_folds
from medpredict.models.deep import TabularEncoder, TabularMLPClassifier
from medpredict.models.ensembles import fit_member, out_of_fold_proba

_PROBA_FLOOR = 1e-4


def _labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    check_classification_targets(y)
    y = column_or_1d(y, warn=True)
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"needs two or more classes; got {classes}")
    return y, classes


def _log_odds(proba: np.ndarray) -> np.ndarray:
    """Binary: log-odds of class 1, shape (n,). Multi-class: log-probabilities (n, K)."""
    clipped = np.clip(proba, _PROBA_FLOOR, 1 - _PROBA_FLOOR)
    if proba.shape[1] == 2:
        return np.log(clipped[:, 1] / clipped[:, 0])
    return np.log(clipped)


class DeepFeatureClassifier(ClassifierMixin, BaseEstimator):
    """Network-learned features -> classical head.

    Parameters
    ----------
    extractor : a :class:`~medpredict.models.deep.TabularMLPClassifier` or
        :class:`~medpredict.models.deep.TabularResNetClassifier` (its penultimate layer
        is used), or a :class:`~medpredict.models.deep.TabularAutoencoder` (its code).
        Default: an MLP classifier.
    head : classical classifier fitted on the standardised features. Default: L2
        logistic regression.
    passthrough : also give the head the encoded raw features (numbers scaled,
        categories one-hot).

    Attributes
    ----------
    extractor_, head_ : the fitted parts.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(self, extractor: Any = None, head: Any = None, passthrough: bool = False) -> None:
        self.extractor = extractor
        self.head = head
        self.passthrough = passthrough

    def _features(self, X: Any) -> np.ndarray:
        learned = (
            self.extractor_.embed(X)
            if hasattr(self.extractor_, "embed")
            else self.extractor_.transform(X)
        )
        if not self.passthrough:
            return learned
        return np.hstack([learned, self.encoder_.transform(X)])

    def fit(self, X: Any, y: Any, groups: Any = None) -> DeepFeatureClassifier:
        """Fit the extractor on these rows, then the head on its features of them."""
        y, self.classes_ = _labels(y)
        groups = None if groups is None else np.asarray(groups)
        extractor = self.extractor if self.extractor is not None else TabularMLPClassifier()
        self.extractor_ = fit_member(clone(extractor), X, y, groups)
        if self.passthrough:
            self.encoder_ = TabularEncoder(numeric="standard", categorical="onehot").fit(X)
        head = self.head if self.head is not None else LogisticRegression(max_iter=2000)
        self.head_ = make_pipeline(StandardScaler(), clone(head)).fit(self._features(X), y)
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities from the head, columns in the order of ``classes_``."""
        check_is_fitted(self, "head_")
        return self.head_.predict_proba(self._features(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


def leaf_booster(seed: int | None = None, class_weight: str | None = None) -> LGBMClassifier:
    """30 shallow LightGBM trees whose leaves :class:`LeafEmbeddingClassifier` embeds."""
    return LGBMClassifier(
        n_estimators=30,
        num_leaves=8,
        learning_rate=0.1,
        min_child_samples=10,
        n_jobs=1,
        deterministic=True,
        verbose=-1,
        random_state=seed,
        class_weight=class_weight,
    )


class LeafEmbeddingClassifier(ClassifierMixin, BaseEstimator):
    """LightGBM leaf assignments (one categorical column per tree) -> embedding network.

    Parameters
    ----------
    booster : LightGBM classifier producing the leaves. Default: 30 shallow trees.
    head : raw-input network receiving the leaf table. Default: an MLP with
        4-dimensional leaf embeddings.
    passthrough : also give the head the encoded raw features.

    Attributes
    ----------
    encoder_, booster_, head_ : the fitted parts.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(self, booster: Any = None, head: Any = None, passthrough: bool = True) -> None:
        self.booster = booster
        self.head = head
        self.passthrough = passthrough

    def _leaf_table(self, X: Any) -> pd.DataFrame:
        encoded = self.encoder_.transform(X)
        leaves = self.booster_.predict(encoded, pred_leaf=True).reshape(len(encoded), -1)
        table = pd.DataFrame({f"tree{j}": leaves[:, j].astype(str) for j in range(leaves.shape[1])})
        if self.passthrough:
            numeric = pd.DataFrame(encoded, columns=[f"x{j}" for j in range(encoded.shape[1])])
            table = pd.concat([table, numeric], axis=1)
        return table

    def fit(self, X: Any, y: Any, groups: Any = None) -> LeafEmbeddingClassifier:
        """Fit the trees on these rows, then the network on their leaf assignments."""
        y, self.classes_ = _labels(y)
        self.encoder_ = TabularEncoder(numeric="standard", categorical="onehot").fit(X)
        booster = self.booster if self.booster is not None else leaf_booster()
        self.booster_ = clone(booster).fit(self.encoder_.transform(X), y)
        head = self.head if self.head is not None else TabularMLPClassifier(embedding_dim=4)
        table = self._leaf_table(X)
        self.head_ = fit_member(
            clone(head), table, y, None if groups is None else np.asarray(groups)
        )
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities from the network, columns in the order of ``classes_``."""
        check_is_fitted(self, "head_")
        return self.head_.predict_proba(self._leaf_table(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class ResidualBoostingClassifier(ClassifierMixin, BaseEstimator):
    """Boosted trees started from a base model's out-of-fold log-odds.

    The base model (e.g. a network or logistic regression) is cross-fitted on inner
    folds of the training rows; its out-of-fold log-odds are LightGBM's initial score,
    so the trees model only what the base missed, without seeing the base's in-sample
    fit. At prediction the base model refitted on all rows gives the starting score.

    Parameters
    ----------
    base : raw-input classifier. Default: an MLP.
    booster : LightGBM classifier for the residual. Default: 100 small trees, rate 0.05.
    cv : inner folds for the base model's out-of-fold scores.
    random_state : seed of the inner folds.

    Attributes
    ----------
    base_, booster_, encoder_ : the fitted parts.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(
        self, base: Any = None, booster: Any = None, cv: int = 5, random_state: int = 0
    ) -> None:
        self.base = base
        self.booster = booster
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> ResidualBoostingClassifier:
        """Cross-fit the base model, boost its residual, refit the base on all rows."""
        y, self.classes_ = _labels(y)
        groups = None if groups is None else np.asarray(groups)
        base = self.base if self.base is not None else TabularMLPClassifier()
        y_index = np.searchsorted(self.classes_, y)
        folds = inner_folds(y_index, groups, self.cv, self.random_state)
        oof = out_of_fold_proba([("base", base)], X, y, self.classes_, folds, groups)[0]
        self.encoder_ = TabularEncoder(numeric="standard", categorical="onehot").fit(X)
        booster = (
            self.booster
            if self.booster is not None
            else LGBMClassifier(
                n_estimators=100,
                num_leaves=7,
                learning_rate=0.05,
                min_child_samples=20,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                n_jobs=1,
                deterministic=True,
                verbose=-1,
                random_state=self.random_state,
            )
        )
        self.booster_ = clone(booster).fit(self.encoder_.transform(X), y, init_score=_log_odds(oof))
        self.base_ = fit_member(clone(base), X, y, groups)
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: softmax (sigmoid) of base log-odds + boosted correction."""
        check_is_fitted(self, "booster_")
        start = _log_odds(self.base_.predict_proba(X))
        score = start + self.booster_.predict(self.encoder_.transform(X), raw_score=True)
        if score.ndim == 1:
            positive = expit(score)
            return np.column_stack([1 - positive, positive])
        return softmax(score, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
