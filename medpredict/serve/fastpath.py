"""A NumPy fast path for medpredict's standard preprocessing, for one patient at a time.

scikit-learn's ``ColumnTransformer`` spends several milliseconds per call on input
validation and DataFrame indexing, which is most of the time a single-patient request
takes. :func:`fast_pipeline` swaps the fitted standard preprocessor (median imputation
with missing indicators and scaling for numbers; most-frequent imputation and one-hot
encoding for categories; see :mod:`medpredict.encoders.tabular`) for a copy that
applies the same fitted statistics directly with NumPy. The output is identical (the
tests compare both on real data with missing values and unseen categories); any other
preprocessing is served unchanged.

Examples
--------
>>> import pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import Pipeline
>>> from medpredict.data.schema import Schema
>>> from medpredict.encoders import build_preprocessor
>>> frame = pd.DataFrame({"age": [50.0, None, 70.0, 60.0], "sex": ["F", "M", "F", "M"]})
>>> fitted = Pipeline([("preprocess", build_preprocessor(Schema.infer(frame))),
...                    ("model", LogisticRegression())]).fit(frame, [0, 1, 1, 0])
>>> fast = fast_pipeline(fitted)
>>> bool((fast.predict_proba(frame) == fitted.predict_proba(frame)).all())
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from medpredict.encoders.tabular import standard_parts

Block = Callable[[pd.DataFrame], np.ndarray]


def _numeric_block(columns: list[str], imputer: SimpleImputer, scaler: StandardScaler) -> Block:
    statistics = imputer.statistics_
    indicated = imputer.indicator_.features_ if imputer.add_indicator else np.array([], int)
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def transform(frame: pd.DataFrame) -> np.ndarray:
        values = np.column_stack(
            [frame[c].to_numpy(dtype=float, na_value=np.nan) for c in columns]
        )
        missing = np.isnan(values)
        out = np.hstack([np.where(missing, statistics, values), missing[:, indicated]])
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return transform


def _categorical_block(
    columns: list[str], imputer: SimpleImputer, encoder: OneHotEncoder
) -> Block:
    fills = list(imputer.statistics_)
    lookups = [{value: k for k, value in enumerate(c)} for c in encoder.categories_]
    offsets = np.cumsum([0] + [len(c) for c in encoder.categories_])

    def transform(frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), offsets[-1]))
        for j, column in enumerate(columns):
            values = frame[column].to_numpy(dtype=object)
            for i, value in enumerate(values):
                if isinstance(value, float) and value != value:  # NaN, as SimpleImputer sees it
                    value = fills[j]
                k = lookups[j].get(value)
                if k is not None:
                    out[i, offsets[j] + k] = 1.0
        return out

    return transform


def _block(transformer: Any, columns: list[str]) -> Block | None:
    """The NumPy equivalent of one fitted standard encoder, or None if it is not one."""
    if not isinstance(transformer, Pipeline) or len(transformer.steps) != 2:
        return None
    first, second = transformer[0], transformer[1]
    if not isinstance(first, SimpleImputer) or not (
        isinstance(first.missing_values, float) and np.isnan(first.missing_values)
    ):
        return None
    if (
        first.strategy == "median"
        and first.keep_empty_features
        and type(second) is StandardScaler
    ):
        return _numeric_block(columns, first, second)
    if (
        first.strategy == "most_frequent"
        and not first.add_indicator
        and type(second) is OneHotEncoder
        and second.handle_unknown == "ignore"
        and second.drop is None
        and second.min_frequency is None
        and second.max_categories is None
        and not second.sparse_output
    ):
        return _categorical_block(columns, first, second)
    return None


class FastColumnTransformer(ColumnTransformer):
    """A fitted standard ``ColumnTransformer`` whose ``transform`` runs in NumPy.

    Built by :func:`fast_pipeline`; every fitted attribute is the original's, so feature
    names and explanations are unchanged. Input whose columns differ from those seen in
    fitting goes through scikit-learn's own checks and errors.
    """

    _blocks: list[Block]

    def transform(self, X: Any, **params: Any) -> np.ndarray:
        if not isinstance(X, pd.DataFrame) or list(X.columns) != list(self.feature_names_in_):
            return super().transform(X, **params)
        return np.hstack([block(X) for block in self._blocks])


def fast_preprocessor(preprocessor: ColumnTransformer) -> FastColumnTransformer | None:
    """A fast copy of a fitted standard preprocessor, or None when it is not one."""
    if getattr(preprocessor, "sparse_output_", False):
        return None
    blocks = []
    for _, transformer, columns in preprocessor.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        block = _block(transformer, list(columns))
        if block is None:
            return None
        blocks.append(block)
    fast = copy.copy(preprocessor)
    fast.__class__ = FastColumnTransformer
    fast._blocks = blocks
    return fast


def fast_pipeline(estimator: Any) -> Any:
    """``estimator`` with its standard preprocessor on the fast path (else unchanged)."""
    parts = standard_parts(estimator)
    if parts is None or type(parts[0]) is not ColumnTransformer:
        return estimator
    fast = fast_preprocessor(parts[0])
    if fast is None:
        return estimator
    (name, _), (model_name, model) = estimator.steps
    return Pipeline([(name, fast), (model_name, model)])
