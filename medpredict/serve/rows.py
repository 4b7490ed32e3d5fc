"""Field-level validation of prediction rows against a model's saved data schema.

Each model gets a pydantic model built from its schema, so a bad request is
answered with one error per field, located as ``["body", "rows", i, "glu"]``,
the same shape FastAPI uses for its own 422 responses.

Every schema column must be present in every row. ``null`` is accepted (the
model's preprocessing imputes it) and reported back as a warning, so a missing
measurement is never hidden. Numbers must be finite and within the feature's
physical limits (see :mod:`medpredict.data.schema`); text must be valid Unicode.

Examples
--------
>>> schema = {"features": [{"name": "glu", "kind": "numeric", "min": 56, "max": 199}]}
>>> validator = RowValidator(schema)
>>> validator.validate([{"glu": "148"}]).frame["glu"].tolist()
[148.0]
>>> validator.validate([{"glu": 250}]).warnings[0][0]
'glu = 250.0 is outside the training range 56–199; the risk is an extrapolation'
>>> try:
...     RowValidator({"features": [{"name": "age", "kind": "numeric", "limit_min": 0}]}
...                  ).validate([{"age": -5}])
... except RowValidationError as error:
...     error.errors[0]["msg"]
'age = -5 is impossible: it must be at least 0 (physical limit)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, create_model
from pydantic import ValidationError as PydanticValidationError

from medpredict.data.schema import Schema


def _category_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _unicode_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got true/false")
    return value


_NUMBER = Annotated[float, BeforeValidator(_not_boolean), Field(allow_inf_nan=False)]
_CATEGORY = Annotated[
    str, BeforeValidator(_unicode_text), BeforeValidator(_category_text), Field(max_length=200)
]
_TEXT = Annotated[str, BeforeValidator(_unicode_text), Field(max_length=100_000)]
_PYTHON_TYPES: dict[str, Any] = {"numeric": _NUMBER, "boolean": bool, "categorical": _CATEGORY}


class RowValidationError(ValueError):
    """Rows that do not match the schema; ``errors`` lists them FastAPI-style."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors


@dataclass
class ValidatedRows:
    """A frame of schema columns (in schema order, coerced as the model's schema does:
    :meth:`medpredict.data.schema.Schema.coerce`) and per-row warnings."""

    frame: pd.DataFrame
    warnings: list[list[str]]


class RowValidator:
    """Validate JSON rows against a model schema (``{"features": [...]}``)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.features = schema["features"]
        self.names = [f["name"] for f in self.features]
        self.schema = Schema.from_dict(schema)
        fields = {
            f"f{i}": (
                _PYTHON_TYPES.get(f["kind"], _TEXT) | None,
                Field(alias=f["name"], description=_describe(f)),
            )
            for i, f in enumerate(self.features)
        }
        self.row_model: type[BaseModel] = create_model(
            "PatientRow", __config__=ConfigDict(extra="forbid"), **fields
        )
        self._adapter = TypeAdapter(list[self.row_model])

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of one row, for documentation and web forms."""
        return self.row_model.model_json_schema(by_alias=True)

    def validate(self, rows: list[dict[str, Any]]) -> ValidatedRows:
        """Check and coerce ``rows``; raise :class:`RowValidationError` naming each field."""
        try:
            parsed = self._adapter.validate_python(rows)
        except PydanticValidationError as error:
            raise RowValidationError(
                [
                    {"loc": ["body", "rows", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in error.errors(include_url=False, include_context=False)
                ]
            ) from None
        records = [row.model_dump(by_alias=True) for row in parsed]
        frame = pd.DataFrame(
            {f["name"]: _column(f["kind"], [r[f["name"]] for r in records]) for f in self.features}
        )
        impossible = [
            {
                "loc": ["body", "rows", row, v.column],
                "msg": f"{v.column} = {_num(frame[v.column].iat[row])} is impossible: "
                f"it must be {v.limits} (physical limit)",
                "type": "physical_limit",
            }
            for v in self.schema.limit_violations(frame)
            for row in v.rows
        ]
        if impossible:
            raise RowValidationError(sorted(impossible, key=lambda e: e["loc"][2]))
        return ValidatedRows(frame, [self._warnings(r) for r in records])

    def _warnings(self, record: dict[str, Any]) -> list[str]:
        out = []
        for f in self.features:
            value = record[f["name"]]
            if value is None:
                out.append(
                    f"{f['name']} is missing; the model imputes it, so the risk is less certain"
                )
            elif f["kind"] == "numeric" and _outside(value, f.get("min"), f.get("max")):
                out.append(
                    f"{f['name']} = {value} is outside the training range "
                    f"{_num(f['min'])}–{_num(f['max'])}; the risk is an extrapolation"
                )
            elif f["kind"] == "categorical" and f.get("categories") and value not in {
                str(c) for c in f["categories"]
            }:
                out.append(
                    f"{f['name']} = {value!r} was not seen in training; the model ignores it"
                )
        return out


def _column(kind: str, values: list[Any]) -> Any:
    """One column as the model's schema coerces it: numbers as floats, missing as NaN."""
    if kind in ("numeric", "boolean"):
        return np.array([np.nan if v is None else float(v) for v in values])
    if kind == "categorical":
        return pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.Series(values, dtype=object)


def _outside(value: float, low: float | None, high: float | None) -> bool:
    return (low is not None and value < low) or (high is not None and value > high)


def _num(value: float) -> str:
    return f"{value:g}"


def _describe(feature: dict[str, Any]) -> str:
    kind = feature["kind"]
    low, high = feature.get("limit_min"), feature.get("limit_max")
    limits = "" if low is None and high is None else (
        f"; physical limits {'' if low is None else _num(low)}–{'' if high is None else _num(high)}"
    )
    if kind == "numeric" and feature.get("min") is not None:
        return f"numeric; training range {_num(feature['min'])}–{_num(feature['max'])}{limits}"
    if kind == "numeric":
        return f"numeric{limits}"
    if kind == "categorical" and feature.get("categories"):
        return "one of: " + ", ".join(map(str, feature["categories"]))
    return kind
