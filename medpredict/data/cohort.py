"""From a raw table and a study spec to a checked Cohort: features, outcome, roles.

Every check (:mod:`medpredict.data.checks`) names the column or rows at fault.
Rows are never dropped silently:
rows without an outcome are excluded from modelling and listed in the cohort's
data-quality record, which the report shows.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "pima", "data": {"dataset": "pima_tr"},
...                    "target": "type", "positive_class": "Yes"})
>>> cohort = build_cohort(load_table(spec), spec)
>>> cohort.X.shape, int(cohort.y.sum())
((200, 7), 68)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.checks import (
    check_binary_outcome,
    check_columns_present,
    check_dates,
    check_event_codes,
    check_feature_columns,
    check_informative,
    check_known_classes,
    check_multiclass_outcome,
    check_no_missing,
    check_unique_ids,
    date_shapes,
    uninformative_reason,
)
from medpredict.data.errors import DataWarning, describe_rows
from medpredict.data.loading import read_table
from medpredict.data.schema import Schema
from medpredict.evaluation.metrics import auroc
from medpredict.spec import StudySpec


@dataclass
class DataQuality:
    """What happened to the rows and columns on the way in."""

    rows_in: int
    rows_used: int
    excluded_rows: dict[str, list[int]] = field(default_factory=dict)
    excluded_columns: dict[str, str] = field(default_factory=dict)
    missingness: dict[str, float] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    events_per_variable: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    leaky_columns: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Cohort:
    """One row per sample with typed features and the columns' roles."""

    X: pd.DataFrame
    y: np.ndarray
    classes: list[Any]
    schema: Schema
    quality: DataQuality
    groups: np.ndarray | None = None
    times: pd.Series | None = None
    sites: pd.Series | None = None
    sensitive: pd.DataFrame | None = None
    row_numbers: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))

    @property
    def positive_class(self) -> Any:
        return self.classes[-1]


def load_table(spec: StudySpec) -> pd.DataFrame:
    """The development table named by ``spec.data``."""
    return read_table(spec.data)


def _require_columns(frame: pd.DataFrame, spec: StudySpec) -> None:
    roles = {
        "target": [spec.target],
        "survival.duration_column": [spec.survival.duration_column] if spec.survival else [],
        "treatment.column": [spec.treatment.column] if spec.treatment else [],
        "treatment.subgroups": spec.treatment.subgroups if spec.treatment else [],
        "id_column": [spec.id_column],
        "patient_column": [spec.patient_column],
        "time_column": [spec.time_column],
        "site_column": [spec.site_column],
        "sensitive_attributes": spec.sensitive_attributes,
        "features": list(spec.features or {}),
    }
    for role, names in roles.items():
        check_columns_present(frame, [n for n in names if n is not None], role)


def _encode_target(
    target: pd.Series, spec: StudySpec, classes: list[Any] | None = None
) -> tuple[np.ndarray, list[Any]]:
    if spec.task == "survival":  # competing events end follow-up: cause-specific
        codes = check_event_codes(target, **spec.survival.codes(spec.positive_class))
        return (codes == 1).astype(int), ["no event", spec.positive_class]
    values = target.unique().tolist()
    if classes is not None:
        check_known_classes(target, classes)
    elif spec.task == "binary":
        positive = check_binary_outcome(target, spec.positive_class)
        classes = [v for v in values if v != positive] + [positive]
    else:
        check_multiclass_outcome(target)
        classes = sorted(values, key=str)
    index = {c: i for i, c in enumerate(classes)}
    return target.map(index).to_numpy(dtype=int), classes


def _feature_columns(frame: pd.DataFrame, spec: StudySpec) -> list[str]:
    if spec.features:
        return list(spec.features)
    reserved = {
        spec.target,
        spec.id_column,
        spec.patient_column,
        spec.time_column,
        spec.site_column,
    }
    if spec.survival is not None:
        reserved.add(spec.survival.duration_column)
    if spec.treatment is not None:
        reserved.add(spec.treatment.column)
    reserved |= set(spec.exclude)
    if not spec.use_sensitive_as_features:
        reserved |= set(spec.sensitive_attributes)
    return [c for c in frame.columns if c not in reserved]


def _drop_uninformative(X: pd.DataFrame, schema: Schema, quality: DataQuality) -> list[str]:
    """Drop all-missing or constant inferred columns (reported); refuse declared ones."""
    check_informative(X, [f.name for f in schema.features if not f.inferred])
    keep = []
    for f in schema.features:
        problem = uninformative_reason(X[f.name])
        if problem is None:
            keep.append(f.name)
        else:
            quality.excluded_columns[f.name] = problem
            quality.warnings.append(f"column {f.name!r} left out: {problem}")
    return keep


def _check_leakage(
    X: pd.DataFrame, y: np.ndarray, schema: Schema, spec: StudySpec, quality: DataQuality
) -> None:
    """Record (and warn about) single features that separate the outcome almost perfectly."""
    if len(np.unique(y)) != 2:
        return
    for f in schema.features:
        column = X[f.name]
        if f.kind in ("numeric", "boolean"):
            score = column.fillna(column.median()).to_numpy(dtype=float)
        elif f.kind == "categorical":
            rate = pd.Series(y).groupby(column.fillna("<missing>").to_numpy()).mean()
            score = column.fillna("<missing>").map(rate).to_numpy(dtype=float)
        else:
            continue
        value = auroc(y.astype(float), score)
        value = max(value, 1 - value)
        if value >= spec.leakage_auroc:
            message = (
                f"column {f.name!r} alone predicts the target with AUROC {value:.3f}: "
                "check that it is not recorded after, or derived from, the outcome (leakage)"
            )
            if f.name in spec.keep_leaky_columns:
                message += "; kept as listed in keep_leaky_columns"
            warnings.warn(message, DataWarning, stacklevel=3)
            quality.warnings.append(message)
            quality.leaky_columns[f.name] = float(value)


def _warn_about_dates(
    raw: pd.Series, times: pd.Series, column: str, quality: DataQuality
) -> None:
    """Warn about dates whose century or order may be read wrongly."""
    found = []
    shapes = date_shapes(raw)
    text = raw[shapes.index].astype(str)
    two_digit = text[~shapes.str.contains("YYYY")]
    if len(two_digit):
        found.append(
            f"time column {column!r} has 2-digit years in {len(two_digit)} row(s) (e.g. "
            f"{two_digit.iloc[0]!r} read as {times[two_digit.index[0]].date()}); the century is "
            "guessed, which can scramble the time order: write 4-digit (ISO) dates"
        )
    if shapes.nunique() > 1:
        examples = text.groupby(shapes.to_numpy()).first()
        found.append(
            f"time column {column!r} mixes date formats "
            f"({', '.join(f'{shape} e.g. {value!r}' for shape, value in examples.items())}); "
            "check that day, month and year are read consistently"
        )
    span = times.max() - times.min()
    if span > pd.Timedelta(days=round(50 * 365.25)):
        found.append(
            f"time column {column!r} spans {span.days / 365.25:.0f} years "
            f"({times.min().date()} to {times.max().date()}); check the dates' centuries"
        )
    for message in found:
        warnings.warn(message, DataWarning, stacklevel=3)
        quality.warnings.append(message)


def build_cohort(frame: pd.DataFrame, spec: StudySpec) -> Cohort:
    """Check ``frame`` against ``spec`` and split it into features, outcome and roles."""
    _require_columns(frame, spec)
    quality = DataQuality(rows_in=len(frame), rows_used=len(frame))

    missing_target = np.flatnonzero(frame[spec.target].isna().to_numpy())
    if missing_target.size:
        rows = (missing_target + 1).tolist()
        quality.excluded_rows["target missing"] = rows
        quality.warnings.append(
            f"{len(rows)} row(s) have no value for target {spec.target!r} and are excluded "
            f"from modelling: {describe_rows(rows)}"
        )
    kept = frame.drop(index=frame.index[missing_target])
    quality.rows_used = len(kept)

    if spec.id_column:
        check_unique_ids(kept[spec.id_column], hint="use patient_column for repeated patients")
    for role in ("patient_column", "site_column"):
        column = getattr(spec, role)
        if column:
            check_no_missing(kept[column], role)

    y, classes = _encode_target(kept[spec.target], spec)
    columns = _feature_columns(kept, spec)
    check_feature_columns(columns)
    schema = Schema.infer(kept[columns], declared=spec.features, limits=spec.limits)
    X = schema.coerce(kept[columns])
    keep = _drop_uninformative(X, schema, quality)
    schema = Schema([f for f in schema.features if f.name in keep])
    X = X[keep]
    _check_leakage(X, y, schema, spec, quality)

    times = None
    if spec.time_column:
        times = check_dates(kept[spec.time_column])
        _warn_about_dates(kept[spec.time_column], times, spec.time_column, quality)

    counts = np.bincount(y, minlength=len(classes))
    quality.class_counts = {str(c): int(n) for c, n in zip(classes, counts, strict=True)}
    quality.missingness = {c: float(X[c].isna().mean()) for c in X.columns}
    parameters = sum(
        len(f.categories) - 1 if f.kind == "categorical" else 1 for f in schema.features
    )
    quality.events_per_variable = float(counts.min() / max(parameters, 1))

    return Cohort(
        X=X.reset_index(drop=True),
        y=y,
        classes=classes,
        schema=schema,
        quality=quality,
        groups=kept[spec.patient_column].to_numpy() if spec.patient_column else None,
        times=times.reset_index(drop=True) if times is not None else None,
        sites=kept[spec.site_column].reset_index(drop=True) if spec.site_column else None,
        sensitive=kept[spec.sensitive_attributes].reset_index(drop=True)
        if spec.sensitive_attributes
        else None,
        row_numbers=kept.index.to_numpy() + 1,
    )


def build_external(frame: pd.DataFrame, spec: StudySpec, cohort: Cohort) -> Cohort:
    """Check an external validation table against the development cohort's schema."""
    _require_columns(frame, spec.model_copy(update={"features": None}))
    missing = np.flatnonzero(frame[spec.target].isna().to_numpy())
    quality = DataQuality(rows_in=len(frame), rows_used=len(frame) - missing.size)
    if missing.size:
        quality.excluded_rows["target missing"] = (missing + 1).tolist()
    kept = frame.drop(index=frame.index[missing])
    y, _ = _encode_target(kept[spec.target], spec, classes=cohort.classes)
    X = cohort.schema.validate(kept, extra="ignore")
    return Cohort(
        X=X.reset_index(drop=True),
        y=y,
        classes=cohort.classes,
        schema=cohort.schema,
        quality=quality,
        sensitive=kept[spec.sensitive_attributes].reset_index(drop=True)
        if spec.sensitive_attributes
        else None,
        row_numbers=kept.index.to_numpy() + 1,
    )
