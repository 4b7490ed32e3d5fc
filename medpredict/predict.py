"""Score new patients with a saved model: schema checks first, then risks.

Every row must also stay finite through the model's preprocessing: an infinite
value, or a finite one so extreme that scaling overflows (``1e308``), would give
no meaningful risk, so :func:`predict_proba_checked` refuses it naming the column
and the rows. The service uses the same function.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> from medpredict.study import run_study
>>> from medpredict.artifact import load_model
>>> from medpredict.data.datasets import load_dataset
>>> spec = parse_spec({"name": "doc-predict", "data": {"dataset": "pima_tr"},
...     "target": "type", "positive_class": "Yes", "models": ["logistic_regression"],
...     "bootstrap": 0, "output_dir": "/tmp/medpredict-doc-predict"})
>>> model = load_model(run_study(spec, quiet=True).model_dir)
>>> new = load_dataset("pima_te").drop(columns=["type"]).head(3)
>>> list(predict_frame(model, new).columns)
['risk', 'predicted_class', 'above_sens 0.9']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from medpredict.artifact import LoadedModel
from medpredict.data.checks import check_columns_present, check_has_rows
from medpredict.data.errors import DataError, describe_rows
from medpredict.data.schema import Schema
from medpredict.model_metadata import ModelMetadata


class NonFiniteError(DataError):
    """Rows whose values are, or become in preprocessing, infinite or undefined.

    ``problems`` maps each input column at fault to its 0-based row positions.
    """

    def __init__(self, problems: dict[str, list[int]]) -> None:
        self.problems = problems
        super().__init__(
            "values must stay finite through the model's preprocessing: "
            + "; ".join(
                f"column {column!r} in {describe_rows([r + 1 for r in rows])} "
                "(data row numbers, 1-based) is infinite or too extreme to scale"
                for column, rows in problems.items()
            )
        )


def _non_finite(values: Any) -> np.ndarray | None:
    """Mask of a preprocessed matrix's non-finite cells; None if there are none."""
    if sparse.issparse(values):
        if np.isfinite(values.data).all():
            return None
        values = values.toarray()
    try:
        bad = ~np.isfinite(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        return None
    return bad if bad.any() else None


def _input_problems(X: pd.DataFrame) -> dict[str, list[int]]:
    problems = {}
    for column in X.columns:
        if pd.api.types.is_numeric_dtype(X[column]) and not pd.api.types.is_bool_dtype(X[column]):
            values = X[column].to_numpy(dtype=float, na_value=np.nan)
            bad = np.isinf(values)
            if bad.any():
                problems[str(column)] = np.flatnonzero(bad).tolist()
    return problems


def _output_problems(preprocessor: Any, X: pd.DataFrame, bad: np.ndarray) -> dict[str, list[int]]:
    """Input columns behind the non-finite cells ``bad`` of the preprocessed matrix."""
    if isinstance(preprocessor, ColumnTransformer):
        from medpredict.trust.explanations import column_origins

        try:
            origins = column_origins(preprocessor, list(X.columns))
        except ValueError:
            origins = None
        if origins is not None and len(origins) == bad.shape[1]:
            problems: dict[str, list[int]] = {}
            for column in dict.fromkeys(origins):
                rows = np.flatnonzero(bad[:, [o == column for o in origins]].any(axis=1))
                if len(rows):
                    problems[column] = rows.tolist()
            return problems
    return {"(preprocessed features)": np.flatnonzero(bad.any(axis=1)).tolist()}


def predict_proba_checked(estimator: Any, X: pd.DataFrame) -> np.ndarray:
    """``estimator.predict_proba(X)``, refusing rows that are not finite after preprocessing.

    For a pipeline the preprocessing steps run once and their output is checked
    before the final model sees it; other estimators get their input checked.

    Raises
    ------
    NonFiniteError
        Naming each column at fault and its rows.
    """
    transformed, model = checked_inputs(estimator, X)
    return model.predict_proba(transformed)


def checked_inputs(estimator: Any, X: pd.DataFrame) -> tuple[Any, Any]:
    """The final model's input (``X`` through the preprocessing) and the final model.

    Raises
    ------
    NonFiniteError
        When a value is not finite before or after preprocessing, naming each column
        at fault and its rows.
    """
    problems = _input_problems(X)
    if not (isinstance(estimator, Pipeline) and len(estimator.steps) > 1):
        if problems:
            raise NonFiniteError(problems)
        return X, estimator
    if problems:  # let the preprocessing see the other rows' values, to report them too
        X = X.copy()
        for column, rows in problems.items():
            X.iloc[rows, X.columns.get_loc(column)] = np.nan
    preprocessor = estimator[0] if len(estimator.steps) == 2 else estimator[:-1]
    with np.errstate(over="ignore", invalid="ignore"):
        transformed = preprocessor.transform(X)
    bad = _non_finite(transformed)
    if bad is not None:
        for column, rows in _output_problems(preprocessor, X, bad).items():
            problems[column] = sorted({*problems.get(column, []), *rows})
    if problems:
        raise NonFiniteError(problems)
    return transformed, estimator[-1]


def validate_input(
    frame: pd.DataFrame, schema: Schema | dict, keep: list[str] | None = None
) -> pd.DataFrame:
    """Check ``frame`` against the model's schema and return the coerced feature columns.

    Columns named in ``keep`` (e.g. a patient id) are allowed and left out of the model;
    any other column the model does not know is an error, as is any missing column.
    """
    if isinstance(schema, dict):
        schema = Schema.from_dict(schema)
    keep = keep or []
    check_columns_present(frame, keep, role="keep", where="the prediction input")
    return schema.validate(frame.drop(columns=keep))


def predict_frame(
    loaded: LoadedModel, frame: pd.DataFrame, keep: list[str] | None = None
) -> pd.DataFrame:
    """Risks for each row of ``frame``, in the same order.

    Returns the ``keep`` columns, then for binary models ``risk`` (probability of the
    positive class), ``predicted_class`` and one ``above_<threshold>`` flag per operating
    point saved with the model; for multi-class models one ``proba_<class>`` column per
    class and ``predicted_class``; for survival models :func:`survival_columns`; for
    treatment-effect models :func:`effect_columns`. Columns the study spec gave a role (outcome, id,
    patient, time, site, sensitive attributes) are accepted in ``frame`` and passed
    through after the ``keep`` columns, so the training table's own layout can be scored.
    """
    metadata = loaded.metadata
    keep = [*(keep or []), *(c for c in role_columns(metadata, frame) if c not in (keep or []))]
    if metadata.data_schema is None:
        raise DataError(f"{loaded.path} has no data schema in its metadata; rerun the study")
    X = validate_input(frame, metadata.data_schema, keep)
    check_has_rows(X, "prediction input")
    out = frame[keep or []].reset_index(drop=True).copy()
    if metadata.treatment:
        return pd.concat([out, effect_columns(loaded, X)], axis=1)
    if metadata.task == "survival":
        return pd.concat([out, survival_columns(loaded, X)], axis=1)
    proba = predict_proba_checked(loaded.estimator, X)
    classes = metadata.classes
    if metadata.task == "binary":
        out["risk"] = proba[:, 1]
        out["predicted_class"] = predicted_classes(proba, classes)
        for label, threshold in metadata.thresholds.items():
            out[f"above_{label}"] = proba[:, 1] >= threshold
    else:
        for k, name in enumerate(classes):
            out[f"proba_{name}"] = proba[:, k]
        out["predicted_class"] = predicted_classes(proba, classes)
    return out


def survival_columns(loaded: LoadedModel, X: pd.DataFrame) -> pd.DataFrame:
    """A survival model's ``risk_<horizon>`` columns and ``median_survival`` for ``X``.

    A model whose metadata holds a calibrated ``lower_bound`` adds
    ``survival_lower_bound``: a time before which, at the stated confidence, the event
    does not come (:mod:`medpredict.survival.conformal`). Where the predicted curve never
    falls far enough, it is the model's last time and means "at least" that long. Models
    saved without one get no such column.

    Raises
    ------
    NonFiniteError
        When a value is not finite before or after preprocessing.
    """
    from medpredict.survival.models import survival_curves

    out = pd.DataFrame(index=range(len(X)))
    transformed, model = checked_inputs(loaded.estimator, X)
    horizons = loaded.metadata.horizons
    times = np.unique(np.concatenate([model.unique_times_, horizons]))
    curves = survival_curves(model, transformed, times)
    for h in horizons:
        out[f"risk_{h:g}"] = 1.0 - curves[:, np.searchsorted(times, h)]
    below = curves <= 0.5
    reached = below.any(axis=1)
    out["median_survival"] = np.where(reached, times[np.argmax(below, axis=1)], np.nan)
    if loaded.metadata.lower_bound:
        from medpredict.survival.conformal import LowerBound, lower_bounds

        bound = LowerBound.from_dict(loaded.metadata.lower_bound)
        out["survival_lower_bound"] = lower_bounds(curves, times, bound.quantile)
    return out


def effect_columns(loaded: LoadedModel, X: pd.DataFrame) -> pd.DataFrame:
    """A treatment-effect model's ``benefit`` of treatment for each row of ``X``.

    ``benefit`` is signed so that positive means the treatment helps: the reduction in
    the risk of the event (by the horizon, for a survival outcome), or its increase when
    the event is the hoped-for response (the metadata's ``treatment`` section says which).
    A model saved with bootstrap refits adds ``benefit_low`` and ``benefit_high``, the
    95% interval.

    Raises
    ------
    NonFiniteError
        When a value is not finite before or after preprocessing.
    """
    model = loaded.estimator
    features, _ = checked_inputs(Pipeline([("preprocess", model.preprocessor_),
                                           ("effect", model)]), X)
    out = pd.DataFrame({"benefit": model.benefit_of(np.asarray(features, dtype=float))})
    if model.intervals:
        out["benefit_low"], out["benefit_high"] = model.interval_of(
            np.asarray(features, dtype=float))
    return out


def role_columns(metadata: ModelMetadata, frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` that the model's study spec named for a role, not as features.

    Examples
    --------
    >>> meta = ModelMetadata(name="demo", spec={"target": "type", "id_column": "record"},
    ...     schema={"features": [{"name": "glu", "kind": "numeric"}]})
    >>> role_columns(meta, pd.DataFrame(columns=["record", "glu", "type", "note"]))
    ['record', 'type']
    """
    features = set(metadata.feature_names)
    return [c for c in metadata.role_columns if c in frame.columns and c not in features]


def predicted_classes(proba: np.ndarray, classes: list[Any]) -> np.ndarray:
    """The class each row is assigned: binary, the event from risk 0.5; else the likeliest."""
    labels = np.asarray(classes, dtype=object)
    if proba.shape[1] == 2:
        return labels[(proba[:, 1] >= 0.5).astype(int)]
    return labels[proba.argmax(axis=1)]
