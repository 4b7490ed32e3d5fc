"""Score new patients with a saved model: schema checks first, then risks.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> from medpredict.study import run_study
>>> from medpredict.registry import load_model
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

from medpredict.data.errors import DataError
from medpredict.data.schema import Schema
from medpredict.registry import LoadedModel


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
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        raise DataError(f"column(s) to keep not found in the input: {', '.join(absent)}")
    return schema.validate(frame.drop(columns=keep))


def predict_frame(
    loaded: LoadedModel, frame: pd.DataFrame, keep: list[str] | None = None
) -> pd.DataFrame:
    """Risks for each row of ``frame``, in the same order.

    Returns the ``keep`` columns, then for binary models ``risk`` (probability of the
    positive class), ``predicted_class`` and one ``above_<threshold>`` flag per operating
    point saved with the model; for multi-class models one ``proba_<class>`` column per
    class and ``predicted_class``.
    """
    metadata = loaded.metadata
    X = validate_input(frame, metadata["schema"], keep)
    if len(X) == 0:
        raise DataError("prediction input has no rows")
    proba = loaded.estimator.predict_proba(X)
    classes = metadata["classes"]
    out = frame[keep or []].reset_index(drop=True).copy()
    if metadata["task"] == "binary":
        out["risk"] = proba[:, 1]
        out["predicted_class"] = predicted_classes(proba, classes)
        for label, threshold in metadata.get("thresholds", {}).items():
            out[f"above_{label}"] = proba[:, 1] >= threshold
    else:
        for k, name in enumerate(classes):
            out[f"proba_{name}"] = proba[:, k]
        out["predicted_class"] = predicted_classes(proba, classes)
    return out


def predicted_classes(proba: np.ndarray, classes: list[Any]) -> np.ndarray:
    """The class each row is assigned: binary, the event from risk 0.5; else the likeliest."""
    labels = np.asarray(classes, dtype=object)
    if proba.shape[1] == 2:
        return labels[(proba[:, 1] >= 0.5).astype(int)]
    return labels[proba.argmax(axis=1)]
