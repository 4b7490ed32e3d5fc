"""Feature kinds: inferred from data, enforced on every table a model sees.

The schema saved with a model is what a prediction input must match: the same
columns, numbers that parse, values within each feature's physical limits,
categories the model knows (unknown categories are allowed, and reported, because
the encoder ignores them safely).

Physical limits say which values are impossible, not unusual: a study declares
them (``limits:`` in the spec) and a few well-known features have them built in
(:data:`BUILTIN_LIMITS`, applied only when the training data respect them, so an
``age`` recorded in months keeps no limit in years). Training, hold-out and
prediction rows outside them are refused.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"age": [50, 61], "sex": ["F", "M"]})
>>> schema = Schema.infer(frame)
>>> [(f.name, f.kind) for f in schema.features]
[('age', 'numeric'), ('sex', 'categorical')]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.checks import (
    Limits,
    LimitViolation,
    check_limit_columns,
    check_limits,
    check_numeric,
    check_prediction_columns,
    limit_violations,
)
from medpredict.data.errors import describe_limits

_MAX_CATEGORIES = 50
_TEXT_MIN_MEAN_LENGTH = 40
BUILTIN_LIMITS: dict[str, tuple[float, float]] = {"age": (0.0, 130.0)}
"""Limits of numeric features known by name (lower case): age in years."""


@dataclass
class Feature:
    """One predictor column."""

    name: str
    kind: str
    dtype: str = ""
    categories: list[Any] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    inferred: bool = True
    limit_min: float | None = None
    limit_max: float | None = None

    def limit_text(self) -> str:
        """The physical limits in words, e.g. ``"0 to 130"``."""
        return describe_limits(self.limit_min, self.limit_max)


def infer_kind(column: pd.Series) -> str:
    """Guess a column's kind: boolean, numeric, categorical or text."""
    values = column.dropna()
    if pd.api.types.is_bool_dtype(column) or (
        len(values) and set(values.unique()) <= {True, False} and column.dtype == object
    ):
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    parsed = pd.to_numeric(values, errors="coerce")
    if len(values) and parsed.notna().mean() >= 0.9:
        return "numeric"
    as_text = values.astype(str)
    if as_text.nunique() > _MAX_CATEGORIES and as_text.str.len().mean() >= _TEXT_MIN_MEAN_LENGTH:
        return "text"
    return "categorical"


@dataclass
class Schema:
    """The predictor columns a model was trained on, in order."""

    features: list[Feature]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def kinds(self) -> dict[str, list[str]]:
        """Column names grouped by kind, in schema order."""
        grouped: dict[str, list[str]] = {}
        for f in self.features:
            grouped.setdefault(f.kind, []).append(f.name)
        return grouped

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        declared: dict[str, str] | None = None,
        limits: dict[str, dict[str, float]] | None = None,
    ) -> Schema:
        """Build a schema from ``frame``; ``declared`` kinds override inference.

        Parameters
        ----------
        frame : the training features.
        declared : kinds by column name, overriding inference.
        limits : physical limits by column name, ``{"min": .., "max": ..}`` (either may
            be left out); they replace built-in limits.

        Raises
        ------
        DataError
            If a declared limit names no numeric column, or training rows lie outside it.
        """
        declared = declared or {}
        features = []
        for name in frame.columns:
            kind = declared.get(name) or infer_kind(frame[name])
            features.append(Feature(name=name, kind=kind, inferred=name not in declared))
        schema = cls(features)
        coerced = schema.coerce(frame)
        for f in schema.features:
            column = coerced[f.name]
            f.dtype = str(column.dtype)
            if f.kind in ("numeric", "boolean") and column.notna().any():
                f.min, f.max = float(column.min()), float(column.max())
            if f.kind == "categorical":
                f.categories = sorted(column.dropna().unique().tolist(), key=str)
        schema._set_limits(coerced, limits or {})
        return schema

    def _set_limits(self, coerced: pd.DataFrame, declared: dict[str, dict[str, float]]) -> None:
        numeric = {f.name: f for f in self.features if f.kind == "numeric"}
        check_limit_columns(declared, list(numeric))
        for name, f in numeric.items():
            if name in declared:
                f.limit_min, f.limit_max = declared[name].get("min"), declared[name].get("max")
            elif name.lower() in BUILTIN_LIMITS:
                low, high = BUILTIN_LIMITS[name.lower()]
                column = coerced[name]
                if not ((column < low) | (column > high)).any():
                    f.limit_min, f.limit_max = low, high
        check_limits(coerced, self._limits(), "training data break the declared limits")

    def _limits(self) -> dict[str, Limits]:
        return {
            f.name: (f.limit_min, f.limit_max)
            for f in self.features
            if f.limit_min is not None or f.limit_max is not None
        }

    def limit_violations(self, coerced: pd.DataFrame) -> list[LimitViolation]:
        """Columns of a coerced frame with values outside their physical limits."""
        return limit_violations(coerced, self._limits())

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return ``frame``'s schema columns with numbers parsed and categories as text."""
        out = {}
        for f in self.features:
            column = frame[f.name]
            if f.kind in ("numeric", "boolean", "sequence"):
                out[f.name] = check_numeric(column)
            elif f.kind == "categorical":
                out[f.name] = column.astype("string").astype(object).where(column.notna(), np.nan)
            else:
                out[f.name] = column
        return pd.DataFrame(out, index=frame.index)

    def validate(self, frame: pd.DataFrame, extra: str = "error") -> pd.DataFrame:
        """Check a prediction input against the schema and coerce it.

        Parameters
        ----------
        frame : the new rows.
        extra : ``"error"`` refuses columns the model does not know; ``"ignore"`` keeps
            them out of the model (e.g. an id column carried through).

        Raises
        ------
        DataError
            Naming every missing column, every unexpected column (with ``extra="error"``),
            any column whose values do not parse and the rows outside physical limits.
        """
        check_prediction_columns(frame, self.names, extra)
        coerced = self.coerce(frame)
        check_limits(coerced, self._limits(), "prediction input holds impossible values")
        return coerced

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved in a model's metadata."""
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Read :meth:`to_dict`'s form; schemas saved before limits existed have none."""
        return cls([Feature(**f) for f in data["features"]])
