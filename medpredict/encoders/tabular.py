"""The preprocessing pipeline placed in front of every model, fitted inside each fold.

Numeric and boolean columns: median imputation with missing-value indicators, then
standard scaling. Categorical columns: most-frequent imputation, then one-hot encoding
that ignores categories unseen in training. Other kinds (text, images, genes, ...)
use the encoder registered for that kind with :func:`register_encoder`.

Examples
--------
>>> import pandas as pd
>>> from medpredict.data.schema import Schema
>>> frame = pd.DataFrame({"age": [50.0, None, 70.0], "sex": ["F", "M", "F"]})
>>> pre = build_preprocessor(Schema.infer(frame)).fit(frame)
>>> list(pre.get_feature_names_out())
['numeric__age', 'numeric__missingindicator_age', 'categorical__sex_F', 'categorical__sex_M']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sklearn.base import TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from medpredict.data.schema import Schema

EncoderFactory = Callable[[list[str], int], TransformerMixin]
_ENCODERS: dict[str, EncoderFactory] = {}
_KIND_MODULES = {
    "text": "medpredict.encoders.text",
    "genes": "medpredict.encoders.genes",
    "image": "medpredict.imaging.models",
    "signal": "medpredict.signals.models",
}


def register_encoder(kind: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Register ``factory(columns, seed) -> transformer`` for a column kind."""

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        _ENCODERS[kind] = factory
        return factory

    return decorate


@register_encoder("numeric")
def numeric_encoder(columns: list[str], seed: int = 0) -> Pipeline:
    """Median imputation with missing indicators, then standard scaling."""
    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )


@register_encoder("categorical")
def categorical_encoder(columns: list[str], seed: int = 0) -> Pipeline:
    """Most-frequent imputation, then one-hot encoding ignoring unseen categories."""
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


@register_encoder("sequence")
def sequence_encoder(columns: list[str], seed: int = 0) -> str:
    """Leave out: a timeline's grid columns are read by the sequence models only."""
    return "drop"


def _encoder_for(kind: str) -> EncoderFactory:
    if kind == "boolean":
        kind = "numeric"
    if kind not in _ENCODERS and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])
    if kind not in _ENCODERS:
        raise ValueError(
            f"no encoder for column kind {kind!r}; known kinds: {', '.join(sorted(_ENCODERS))}"
        )
    return _ENCODERS[kind]


def build_preprocessor(schema: Schema, seed: int = 0) -> ColumnTransformer:
    """A ColumnTransformer with one encoder per column kind present in ``schema``."""
    grouped: dict[str, list[str]] = {}
    for kind, names in schema.kinds().items():
        grouped.setdefault("numeric" if kind == "boolean" else kind, []).extend(names)
    steps = [(kind, _encoder_for(kind)(names, seed), names) for kind, names in grouped.items()]
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=True)


def standard_pipeline(schema: Schema, model: Any, seed: int = 0) -> Pipeline:
    """The standard pipeline: :func:`build_preprocessor` for ``schema``, then ``model``.

    Explanations, the serving fast path and the model card recognise it with
    :func:`standard_parts`.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medpredict.data.schema import Schema
    >>> frame = pd.DataFrame({"age": [50.0, 60.0, 70.0, 80.0], "sex": ["F", "M", "F", "M"]})
    >>> pipeline = standard_pipeline(Schema.infer(frame), LogisticRegression())
    >>> [type(part).__name__ for part in standard_parts(pipeline)]
    ['ColumnTransformer', 'LogisticRegression']
    """
    return Pipeline([("preprocess", build_preprocessor(schema, seed)), ("model", model)])


def standard_parts(estimator: Any) -> tuple[ColumnTransformer, Any] | None:
    """``(preprocessor, model)`` of a standard pipeline; None for any other estimator."""
    if (
        isinstance(estimator, Pipeline)
        and len(estimator.steps) == 2
        and isinstance(estimator[0], ColumnTransformer)
    ):
        return estimator[0], estimator[-1]
    return None
