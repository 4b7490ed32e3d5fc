"""Multimodal fusion: early (concatenated encodings, one head) and late (stacked models).

A *modality* is a named group of columns of the cohort DataFrame with the estimator
that handles it: ``(name, estimator, columns)``, as in scikit-learn's
ColumnTransformer. For :class:`EarlyFusionClassifier` the estimator is an encoder
(transformer); for :class:`LateFusionClassifier` it is a classifier. A modality is
*missing* for a patient when all its columns are empty (NaN, None or blank text).
Such patients are kept: early fusion gives them a zero encoding and a
``<modality>__missing`` indicator; late fusion gives the stacker a neutral input and
the same indicator. Missing modalities are counted in ``missing_counts_`` and reported
with a :class:`~medpredict.data.errors.DataWarning`; only a row missing every modality
is refused.

:func:`modality_estimator` gives a default encoder per column kind (``tabular``,
``text``, ``genes``, and ``image``/``signal``/``wearable`` for precomputed numeric
features such as CNN embeddings, HRV indices or daily wearable summaries).

Examples
--------
>>> import pandas as pd
>>> from sklearn.datasets import load_breast_cancer
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> mods = [("size", modality_estimator("tabular"), ["mean radius", "mean area"]),
...         ("texture", modality_estimator("tabular"), ["mean texture", "mean smoothness"])]
>>> model = EarlyFusionClassifier(mods).fit(X, y)
>>> model.predict_proba(X.head(2)).shape
(2, 2)
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError, DataWarning, describe_rows
from medpredict.data.schema import Schema
from medpredict.encoders.genes import genes_encoder
from medpredict.encoders.tabular import build_preprocessor
from medpredict.encoders.text import SentenceEncoder, tfidf_pipeline
from medpredict.evaluation.splits import inner_folds
from medpredict.models.registry import register_model

Modality = tuple[str, Any, list[str] | str | None]
NUMERIC_KINDS = ("tabular", "image", "signal", "wearable")


class TabularEncoder(TransformerMixin, BaseEstimator):
    """medpredict's tabular preprocessing for whichever columns it is fitted on.

    Column kinds are inferred in ``fit`` (numeric: median imputation with missing
    indicators and scaling; categorical: one-hot), so it suits any block of
    tabular or precomputed numeric features.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"age": [50.0, None, 70.0], "sex": ["F", "M", "F"]})
    >>> TabularEncoder().fit_transform(frame).shape
    (3, 4)
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularEncoder:
        """Infer the column kinds and fit the preprocessing on ``X``."""
        frame = _as_frame(X)
        self.schema_ = Schema.infer(frame)
        self.preprocessor_ = build_preprocessor(self.schema_).fit(self.schema_.coerce(frame), y)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Preprocessed features."""
        check_is_fitted(self, "preprocessor_")
        return np.asarray(self.preprocessor_.transform(self.schema_.coerce(_as_frame(X))),
                          dtype=float)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names from the fitted preprocessor."""
        check_is_fitted(self, "preprocessor_")
        return self.preprocessor_.get_feature_names_out()


def _as_frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"fusion models take a pandas DataFrame, got {type(X).__name__}")
    return X


def modality_estimator(kind: str, seed: int = 0, columns: list[str] | None = None) -> Any:
    """Default encoder for a column kind: tabular/image/signal/wearable, text or genes.

    Examples
    --------
    >>> type(modality_estimator("text")).__name__
    'SentenceEncoder'
    """
    if kind in NUMERIC_KINDS:
        return TabularEncoder()
    if kind == "text":
        return SentenceEncoder(missing="zero", show_progress=False)
    if kind == "genes":
        return genes_encoder(columns or [], seed)
    raise ValueError(f"unknown modality kind {kind!r}; expected one of "
                     f"{', '.join((*NUMERIC_KINDS, 'text', 'genes'))}")


def modality_present(frame: pd.DataFrame) -> np.ndarray:
    """True for rows where at least one of the modality's columns has a value."""
    empty = frame.isna().to_numpy(copy=True)
    for i, name in enumerate(frame.columns):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            blank = frame[name].map(lambda v: isinstance(v, str) and not v.strip())
            empty[:, i] |= blank.to_numpy(dtype=bool)
    return ~empty.all(axis=1)


def _check_modalities(modalities: list[Modality], frame: pd.DataFrame) -> list[Modality]:
    if not modalities:
        raise ValueError("at least one modality (name, estimator, columns) is needed")
    names = [m[0] for m in modalities]
    if len(set(names)) != len(names):
        raise ValueError(f"modality names must be unique, got {names}")
    out = []
    for name, estimator, columns in modalities:
        if columns is None:
            columns = list(frame.columns)
        columns = [columns] if isinstance(columns, str) else list(columns)
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise DataError(f"modality {name!r} needs column(s) {absent}, not in the data")
        out.append((name, estimator, columns))
    return out


def _presence(modalities: list[Modality], frame: pd.DataFrame, stage: str) -> dict[str, np.ndarray]:
    present = {name: modality_present(frame[cols]) for name, _, cols in modalities}
    stacked = np.column_stack(list(present.values()))
    none = np.flatnonzero(~stacked.any(axis=1))
    if none.size:
        raise DataError(
            f"no value in any modality ({', '.join(present)}) in "
            f"{describe_rows((none + 1).tolist())} (1-based); at least one is needed"
        )
    unused = [name for name, mask in present.items() if not mask.any()]
    if stage == "training" and unused:
        raise DataError(f"modality {unused[0]!r} has no value in any training row")
    counts = {name: int((~mask).sum()) for name, mask in present.items() if (~mask).any()}
    if counts:
        detail = ", ".join(f"{name}: {n} of {len(frame)} rows" for name, n in counts.items())
        warnings.warn(f"{stage}: missing modality ({detail}); those rows use the others",
                      DataWarning, stacklevel=3)
    return present


class EarlyFusionClassifier(ClassifierMixin, BaseEstimator):
    """Concatenate per-modality encodings and fit one head.

    Parameters
    ----------
    modalities : list of (name, transformer, columns)
        Each transformer is fitted on the rows where its modality is present;
        ``columns`` None means every column.
    head : classifier, optional
        Fitted on the concatenated encodings (default: standardisation + L2 logistic
        regression).

    Attributes
    ----------
    encoders_ : dict
        Fitted encoder per modality.
    missing_counts_ : dict
        Training rows missing each modality.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> X.loc[:99, ["mean texture"]] = None
    >>> mods = [("size", TabularEncoder(), ["mean radius"]),
    ...         ("texture", TabularEncoder(), ["mean texture"])]
    >>> import warnings; warnings.simplefilter("ignore")
    >>> EarlyFusionClassifier(mods).fit(X, y).missing_counts_
    {'size': 0, 'texture': 100}
    """

    def __init__(self, modalities: list[Modality], head: Any = None) -> None:
        self.modalities = modalities
        self.head = head

    def _encode(self, frame: pd.DataFrame, present: dict[str, np.ndarray]) -> np.ndarray:
        blocks = []
        for name, _, columns in self.modalities_:
            mask = present[name]
            encoder = self.encoders_[name]
            block = np.zeros((len(frame), self.widths_[name]), dtype=float)
            if mask.any():
                block[mask] = encoder.transform(frame.loc[mask, columns])
            blocks += [block, (~mask).astype(float)[:, None]]
        return np.hstack(blocks)

    def fit(self, X: pd.DataFrame, y: Any) -> EarlyFusionClassifier:
        """Fit every encoder on its present rows, then the head on all rows."""
        frame = _as_frame(X)
        y = np.asarray(y)
        self.modalities_ = _check_modalities(self.modalities, frame)
        present = _presence(self.modalities_, frame, "training")
        self.encoders_, self.widths_ = {}, {}
        for name, encoder, columns in self.modalities_:
            mask = present[name]
            fitted = clone(encoder).fit(frame.loc[mask, columns], y[mask])
            self.encoders_[name] = fitted
            self.widths_[name] = fitted.transform(frame.loc[mask, columns].head(1)).shape[1]
        self.missing_counts_ = {name: int((~m).sum()) for name, m in present.items()}
        head = self.head if self.head is not None else _default_head()
        self.head_ = clone(head).fit(self._encode(frame, present), y)
        self.classes_ = self.head_.classes_
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities; rows missing a modality are predicted from the others."""
        check_is_fitted(self, "head_")
        frame = _as_frame(X)
        present = _presence(self.modalities_, frame, "prediction")
        return self.head_.predict_proba(self._encode(frame, present))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _default_head(C: float = 1.0, class_weight: str | None = None, seed: int = 0) -> Pipeline:
    return Pipeline([("scale", StandardScaler()),
                     ("model", LogisticRegression(C=C, class_weight=class_weight,
                                                  max_iter=5000, random_state=seed))])


class LateFusionClassifier(ClassifierMixin, BaseEstimator):
    """One model per modality, stacked by a meta-model on out-of-fold predictions.

    Parameters
    ----------
    modalities : list of (name, classifier, columns)
        Each classifier is cross-validated and refitted on the rows where its modality
        is present; ``columns`` None means every column (e.g. two models of one text).
    meta : classifier, optional
        Stacker over the per-modality log-probabilities and missing indicators
        (default: L2 logistic regression).
    cv : int
        Folds for the out-of-fold predictions the stacker learns from (fewer when the
        rarest class or the number of patients is smaller; see
        :func:`~medpredict.evaluation.splits.inner_folds`).
    seed : int
        Shuffling seed of those folds.

    Attributes
    ----------
    models_ : dict
        Per-modality models refitted on all their present rows.
    missing_counts_ : dict
        Training rows missing each modality.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> lr = _default_head()
    >>> mods = [("size", lr, ["mean radius", "mean area"]), ("shape", lr, ["mean concavity"])]
    >>> model = LateFusionClassifier(mods, cv=3).fit(X, y)
    >>> sorted(model.models_)
    ['shape', 'size']
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(self, modalities: list[Modality], meta: Any = None, cv: int = 5,
                 seed: int = 0) -> None:
        self.modalities = modalities
        self.meta = meta
        self.cv = cv
        self.seed = seed

    def _meta_features(self, outputs: dict[str, np.ndarray], present: dict[str, np.ndarray],
                       n_rows: int) -> np.ndarray:
        blocks = []
        width = len(self.classes_) if len(self.classes_) > 2 else 1
        for name, _, _ in self.modalities_:
            block = np.zeros((n_rows, width))
            mask = present[name]
            if mask.any():
                logp = np.log(np.clip(outputs[name], 1e-6, 1.0))
                block[mask] = logp[:, 1:] - logp[:, :1] if width == 1 else logp
            blocks += [block, (~mask).astype(float)[:, None]]
        return np.hstack(blocks)

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> LateFusionClassifier:
        """Out-of-fold predictions per modality, then the stacker; then refit each model.

        ``groups`` (patient ids) keeps a patient's rows in one inner fold.
        """
        frame = _as_frame(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.modalities_ = _check_modalities(self.modalities, frame)
        present = _presence(self.modalities_, frame, "training")
        groups = None if groups is None else np.asarray(groups)
        oof, self.models_ = {}, {}
        for name, model, columns in self.modalities_:
            mask = present[name]
            rows, labels = frame.loc[mask, columns], y[mask]
            missing_classes = set(self.classes_) - set(labels)
            if missing_classes:
                raise DataError(f"modality {name!r} has no training rows of class(es) "
                                f"{sorted(missing_classes)}; it cannot be stacked")
            folds = inner_folds(
                labels, None if groups is None else groups[mask], self.cv, self.seed
            )
            oof[name] = cross_val_predict(clone(model), rows, labels, cv=folds,
                                          method="predict_proba")
            self.models_[name] = clone(model).fit(rows, labels)
        self.missing_counts_ = {name: int((~m).sum()) for name, m in present.items()}
        meta = self.meta if self.meta is not None else LogisticRegression(max_iter=5000)
        self.meta_ = clone(meta).fit(self._meta_features(oof, present, len(frame)), y)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Stacked class probabilities; rows missing a modality use the others."""
        check_is_fitted(self, "meta_")
        frame = _as_frame(X)
        present = _presence(self.modalities_, frame, "prediction")
        outputs = {
            name: self.models_[name].predict_proba(frame.loc[present[name], columns])
            for name, _, columns in self.modalities_ if present[name].any()
        }
        return self.meta_.predict_proba(self._meta_features(outputs, present, len(frame)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def modality_weights(self) -> pd.Series:
        """Stacker coefficient of each modality's log-odds (binary outcomes)."""
        check_is_fitted(self, "meta_")
        if len(self.classes_) != 2:
            raise ValueError("modality weights are reported for binary outcomes only")
        coef = self.meta_.coef_[0]
        return pd.Series(coef[0::2], index=[m[0] for m in self.modalities_], name="weight")


def _spec_modalities(
    modalities: dict[str, dict[str, Any]], seed: int, class_weight: str | None, head: bool
) -> list[Modality]:
    """``{name: {"kind": ..., "columns": [...]}}`` from a study spec -> modality list."""
    if not isinstance(modalities, dict) or not modalities:
        raise ValueError("fusion models need modalities={name: {kind, columns}}")
    out = []
    for name, entry in modalities.items():
        if not isinstance(entry, dict) or {"kind", "columns"} - set(entry):
            raise ValueError(f"modality {name!r} needs 'kind' and 'columns', got {entry!r}")
        encoder = modality_estimator(entry["kind"], seed, list(entry["columns"]))
        if head:
            encoder = Pipeline([("encode", encoder),
                                ("head", _default_head(class_weight=class_weight, seed=seed))])
        out.append((name, encoder, list(entry["columns"])))
    return out


@register_model("early_fusion", "per-modality encoders concatenated, one logistic head",
                raw_input=True)
def early_fusion(seed: int, class_weight: str | None, modalities: dict[str, dict[str, Any]],
                 C: float = 1.0) -> EarlyFusionClassifier:
    """Early fusion of the spec's modalities ``{name: {kind, columns}}``."""
    return EarlyFusionClassifier(
        _spec_modalities(modalities, seed, class_weight, head=False),
        head=_default_head(C=C, class_weight=class_weight, seed=seed),
    )


@register_model("late_fusion", "one model per modality, stacked on out-of-fold predictions",
                raw_input=True)
def late_fusion(seed: int, class_weight: str | None, modalities: dict[str, dict[str, Any]],
                cv: int = 5) -> LateFusionClassifier:
    """Late fusion of the spec's modalities ``{name: {kind, columns}}``."""
    return LateFusionClassifier(
        _spec_modalities(modalities, seed, class_weight, head=True),
        meta=LogisticRegression(class_weight=class_weight, max_iter=5000, random_state=seed),
        cv=cv, seed=seed,
    )


@register_model("text_tfidf_logistic", "TF-IDF (1-2 grams) + logistic regression on text",
                raw_input=True)
def text_tfidf_logistic(seed: int, class_weight: str | None, C: float = 10.0) -> Pipeline:
    """The text baseline on every (text) column of the input."""
    return tfidf_pipeline(C=C, seed=seed, class_weight=class_weight)


def _embedding_logistic(seed: int, class_weight: str | None, C: float) -> Pipeline:
    head = LogisticRegression(C=C, class_weight=class_weight, max_iter=5000, random_state=seed)
    return Pipeline([("encode", SentenceEncoder(missing="zero", show_progress=False)),
                     ("head", head)])


@register_model("text_embedding_logistic",
                "sentence-encoder embeddings + logistic regression on text", raw_input=True)
def text_embedding_logistic(seed: int, class_weight: str | None, C: float = 1.0) -> Pipeline:
    """MiniLM embeddings (unit length) of every (text) column, then L2 logistic regression."""
    return _embedding_logistic(seed, class_weight, C)


@register_model("text_stacked", "embedding and TF-IDF text models stacked", raw_input=True)
def text_stacked(seed: int, class_weight: str | None, C_embedding: float = 1.0,
                 C_tfidf: float = 10.0, cv: int = 5) -> LateFusionClassifier:
    """Embedding + logistic and TF-IDF + logistic on the same text, stacked."""
    return LateFusionClassifier(
        [("embedding", _embedding_logistic(seed, class_weight, C_embedding), None),
         ("tfidf", tfidf_pipeline(C=C_tfidf, seed=seed, class_weight=class_weight), None)],
        meta=LogisticRegression(class_weight=class_weight, max_iter=5000, random_state=seed),
        cv=cv, seed=seed,
    )
