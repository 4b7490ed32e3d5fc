"""Named hybrid and ensemble models, usable in a study spec like any other model.

Every model here takes the raw feature table (``raw_input=True``): members that need
numeric input get their own encoder (median imputation + missing indicators, scaling,
one-hot categories) fitted inside the same training rows. Ensembles use three inner
folds by default (``cv``): the combiner has only a few inputs, and every extra fold
costs one more fit of every member.

============================  ==========================================================
name                          what it is
============================  ==========================================================
``hybrid_ensemble``           default: stacking of L2-LR, LightGBM, random forest and an
                              MLP; non-negative log-linear pooling of their out-of-fold
                              probabilities (which also calibrates)
``stacking``                  stacking of ``members`` (names); pooling, or an L2 logistic
                              meta-learner on log-odds with ``meta="logistic"``
``soft_voting``               weighted soft voting of ``members``; weights minimise the
                              out-of-fold log loss
``stacking_deep_head``        classical members' out-of-fold log-odds -> MLP meta-learner
``bagged_mlp``                bagging of MLPs (5 networks on 80 % subsamples)
``deep_boosted_lightgbm``     LightGBM boosting the residual of an MLP's out-of-fold
                              log-odds
``deep_features_lr`` /        trained MLP's penultimate layer -> logistic regression /
``_svm`` / ``_lightgbm``      RBF SVM / LightGBM
``autoencoder_lr`` /          denoising autoencoder code + raw features -> logistic
``autoencoder_lightgbm``      regression / LightGBM
``leaf_embedding_mlp``        LightGBM leaf assignments -> MLP with leaf embeddings
``calibrated``                any ``base`` model with ``method`` = platt, isotonic or
                              temperature, cross-fitted inside the training rows
============================  ==========================================================

Examples
--------
>>> from medpredict.models import make_model
>>> type(make_model("hybrid_ensemble", seed=0)).__name__
'StackingEnsemble'
>>> make_model("soft_voting", members=["logistic_regression", "lightgbm"]).weights
'auto'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightgbm import LGBMClassifier
from sklearn.ensemble import BaggingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from medpredict.models.calibration import CalibratedModel
from medpredict.models.deep import TabularAutoencoder, TabularEncoder, TabularMLPClassifier
from medpredict.models.ensembles import SoftVotingEnsemble, StackingEnsemble
from medpredict.models.feature_hybrids import (
    DeepFeatureClassifier,
    LeafEmbeddingClassifier,
    ResidualBoostingClassifier,
    leaf_booster,
)
from medpredict.models.registry import raw_member, register_model

DEFAULT_MEMBERS = ("logistic_regression", "lightgbm", "random_forest", "deep_mlp")
CLASSICAL_MEMBERS = ("logistic_regression", "lightgbm", "random_forest")
# inside an ensemble, 100 trees give the forest's probabilities enough resolution
MEMBER_PARAMS: dict[str, dict[str, Any]] = {"random_forest": {"n_estimators": 100}}


def _members(
    names: Sequence[str], seed: int, class_weight: str | None, n_samples: int | None
) -> list[tuple[str, Any]]:
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"members must be distinct model names, got {list(names)}")
    return [
        (name, raw_member(name, seed, class_weight, n_samples, None, **MEMBER_PARAMS.get(name, {})))
        for name in names
    ]


def _mlp(seed: int, class_weight: str | None, **params: Any) -> TabularMLPClassifier:
    return TabularMLPClassifier(random_state=seed, class_weight=class_weight, **params)


def _head_lightgbm(seed: int, class_weight: str | None) -> LGBMClassifier:
    return LGBMClassifier(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=7,
        min_child_samples=10,
        n_jobs=1,
        deterministic=True,
        verbose=-1,
        random_state=seed,
        class_weight=class_weight,
    )


@register_model(
    "hybrid_ensemble",
    "stacking of L2-LR, LightGBM, random forest and an MLP (non-negative pooling)",
    raw_input=True,
)
def hybrid_ensemble(
    seed: int, class_weight: str | None, n_samples: int | None = None, cv: int = 3
) -> StackingEnsemble:
    """Stacking of L2-LR, LightGBM, random forest and an MLP; non-negative pooling."""
    return StackingEnsemble(
        _members(DEFAULT_MEMBERS, seed, class_weight, n_samples), cv=cv, random_state=seed
    )


@register_model("stacking", "stacking of the named members, logistic meta-learner", raw_input=True)
def stacking(
    seed: int,
    class_weight: str | None,
    n_samples: int | None = None,
    members: Sequence[str] = DEFAULT_MEMBERS,
    cv: int = 3,
    meta: str = "pool",
    alpha: float = 0.01,
    meta_C: float = 1.0,
) -> StackingEnsemble:
    """Stacking of ``members``: non-negative pooling (L2 penalty ``alpha``) or, with
    ``meta="logistic"``, an L2 logistic meta-learner on log-odds (strength ``meta_C``)."""
    if meta not in ("pool", "logistic"):
        raise ValueError(f"meta must be 'pool' or 'logistic', got {meta!r}")
    final = LogisticRegression(C=meta_C, max_iter=1000) if meta == "logistic" else None
    return StackingEnsemble(
        _members(members, seed, class_weight, n_samples),
        final_estimator=final,
        alpha=alpha,
        cv=cv,
        random_state=seed,
    )


@register_model(
    "soft_voting", "weighted soft voting, weights from out-of-fold log loss", raw_input=True
)
def soft_voting(
    seed: int,
    class_weight: str | None,
    n_samples: int | None = None,
    members: Sequence[str] = DEFAULT_MEMBERS,
    weights: str | Sequence[float] | None = "auto",
    cv: int = 3,
) -> SoftVotingEnsemble:
    """Soft voting of ``members``; ``weights="auto"`` learns them on inner folds."""
    return SoftVotingEnsemble(
        _members(members, seed, class_weight, n_samples), weights=weights, cv=cv, random_state=seed
    )


@register_model(
    "stacking_deep_head", "classical models' out-of-fold log-odds -> MLP", raw_input=True
)
def stacking_deep_head(
    seed: int, class_weight: str | None, n_samples: int | None = None, cv: int = 3
) -> StackingEnsemble:
    """Classical members' out-of-fold log-odds feeding a small MLP meta-learner."""
    head = _mlp(seed, class_weight, hidden_layer_sizes=(16,), dropout=0.1, numeric="standard")
    return StackingEnsemble(
        _members(CLASSICAL_MEMBERS, seed, class_weight, n_samples),
        final_estimator=head,
        cv=cv,
        random_state=seed,
    )


@register_model("bagged_mlp", "bagging of 5 MLPs on 80% subsamples", raw_input=True)
def bagged_mlp(
    seed: int, class_weight: str | None, n_estimators: int = 5, **params: Any
) -> Pipeline:
    """Bagging of MLPs, each on an 80% subsample without replacement."""
    bag = BaggingClassifier(
        _mlp(seed, class_weight, **params),
        n_estimators=n_estimators,
        max_samples=0.8,
        bootstrap=False,
        random_state=seed,
    )
    return Pipeline(
        [("encode", TabularEncoder(numeric="standard", categorical="onehot")), ("bag", bag)]
    )


@register_model(
    "deep_boosted_lightgbm", "LightGBM boosting an MLP's out-of-fold log-odds", raw_input=True
)
def deep_boosted_lightgbm(
    seed: int, class_weight: str | None, cv: int = 3
) -> ResidualBoostingClassifier:
    """LightGBM trees fitted to the residual of an MLP's out-of-fold log-odds."""
    return ResidualBoostingClassifier(base=_mlp(seed, class_weight), cv=cv, random_state=seed)


def _deep_features(seed: int, class_weight: str | None, head: Any) -> DeepFeatureClassifier:
    return DeepFeatureClassifier(extractor=_mlp(seed, class_weight), head=head)


@register_model("deep_features_lr", "MLP penultimate layer -> logistic regression", raw_input=True)
def deep_features_lr(seed: int, class_weight: str | None, C: float = 0.1) -> DeepFeatureClassifier:
    """Trained MLP's penultimate layer -> L2 logistic regression."""
    head = LogisticRegression(C=C, max_iter=2000, class_weight=class_weight)
    return _deep_features(seed, class_weight, head)


@register_model("deep_features_svm", "MLP penultimate layer -> RBF SVM", raw_input=True)
def deep_features_svm(seed: int, class_weight: str | None, C: float = 1.0) -> DeepFeatureClassifier:
    """Trained MLP's penultimate layer -> RBF SVM with Platt probabilities."""
    head = SVC(C=C, probability=True, random_state=seed, class_weight=class_weight)
    return _deep_features(seed, class_weight, head)


@register_model("deep_features_lightgbm", "MLP penultimate layer -> LightGBM", raw_input=True)
def deep_features_lightgbm(seed: int, class_weight: str | None) -> DeepFeatureClassifier:
    """Trained MLP's penultimate layer -> LightGBM."""
    return _deep_features(seed, class_weight, _head_lightgbm(seed, class_weight))


def _autoencoder(seed: int, head: Any) -> DeepFeatureClassifier:
    return DeepFeatureClassifier(
        extractor=TabularAutoencoder(random_state=seed), head=head, passthrough=True
    )


@register_model(
    "autoencoder_lr", "autoencoder code + raw features -> logistic regression", raw_input=True
)
def autoencoder_lr(seed: int, class_weight: str | None, C: float = 0.1) -> DeepFeatureClassifier:
    """Denoising autoencoder code plus raw features -> L2 logistic regression."""
    head = LogisticRegression(C=C, max_iter=2000, class_weight=class_weight)
    return _autoencoder(seed, head)


@register_model(
    "autoencoder_lightgbm", "autoencoder code + raw features -> LightGBM", raw_input=True
)
def autoencoder_lightgbm(seed: int, class_weight: str | None) -> DeepFeatureClassifier:
    """Denoising autoencoder code plus raw features -> LightGBM."""
    return _autoencoder(seed, _head_lightgbm(seed, class_weight))


@register_model(
    "leaf_embedding_mlp", "LightGBM leaf assignments -> MLP with leaf embeddings", raw_input=True
)
def leaf_embedding_mlp(seed: int, class_weight: str | None) -> LeafEmbeddingClassifier:
    """LightGBM leaves (one categorical per tree) -> MLP with 4-d leaf embeddings."""
    return LeafEmbeddingClassifier(
        booster=leaf_booster(seed, class_weight), head=_mlp(seed, class_weight, embedding_dim=4)
    )


@register_model(
    "calibrated", "any base model recalibrated (platt, isotonic, temperature)", raw_input=True
)
def calibrated(
    seed: int,
    class_weight: str | None,
    n_samples: int | None = None,
    base: str = "deep_mlp",
    method: str = "temperature",
    cv: int = 5,
    base_params: dict[str, Any] | None = None,
) -> CalibratedModel:
    """``base`` model with cross-fitted Platt, isotonic or temperature calibration."""
    model = raw_member(base, seed, class_weight, n_samples, None, **(base_params or {}))
    return CalibratedModel(model, method=method, cv=cv, random_state=seed)
