"""What a model directory's ``metadata.json`` says, typed: :class:`ModelMetadata`.

Every study, tabular, image or signal (:func:`medpredict.study.outputs.model_metadata`),
describes its model with a :class:`ModelMetadata`; :func:`medpredict.artifact.load_model`
reads it back. Readers use its attributes and the accessors derived from the stored study spec
(:attr:`ModelMetadata.role_columns`, :attr:`ModelMetadata.conformal_group`) instead of
digging through nested dictionaries.

The ``format`` key versions the file:

1
    directories saved before the key existed: no ``format``; image studies wrote
    ``class_names``, ``validation_metrics`` and an image schema and no spec; optional
    keys may be absent. They load and are normalised into the current model.
2
    the current format (:data:`FORMAT`).

Keys this version does not know (written by a newer medpredict of the same format)
are kept and written back unchanged; a newer ``format`` is refused, since its meaning
may have changed.

Examples
--------
>>> meta = ModelMetadata.read({"name": "demo", "classes": [0, 1], "positive_class": 1,
...     "spec": {"target": "y", "id_column": "record", "trust": {"conformal_group": "sex"}}})
>>> meta.format, meta.classes, meta.positive_class
(2, ['0', '1'], '1')
>>> meta.role_columns, meta.conformal_group
(['record', 'y'], 'sex')
>>> ModelMetadata.read({"name": "demo", "format": 9})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: metadata: format 9 is newer than this medpredict reads (up to 2); ...
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medpredict import __version__
from medpredict.versions import library_versions

FORMAT = 2


class _Stored(BaseModel):
    """Part of the metadata: known fields typed, unknown keys kept as they are."""

    model_config = ConfigDict(extra="allow")


class MetricEstimate(_Stored):
    """A metric with its bootstrap 95% interval; all None with a reason when not meaningful.

    Examples
    --------
    >>> MetricEstimate(value=0.81, low=0.76, high=0.85).to_dict()
    {'value': 0.81, 'low': 0.76, 'high': 0.85}
    """

    value: float | None = None
    low: float | None = None
    high: float | None = None
    not_meaningful: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form it was stored in (``value``, ``low``, ``high``; the reason, if any)."""
        return self.model_dump(exclude_unset=True)


class PeriodSummary(_Stored):
    """One side of a temporal split: its rows and first and last timestamps (ISO).

    Examples
    --------
    >>> PeriodSummary(rows=140, first="2019-01-02", last="2019-12-30").rows
    140
    """

    rows: int | None = None
    first: str | None = None
    last: str | None = None


class TemporalValidation(_Stored):
    """The temporal cut-off and the development and validation periods it separates.

    Examples
    --------
    >>> TemporalValidation(cutoff="2020-01-01", temporal={"rows": 60}).temporal.rows
    60
    """

    cutoff: str | None = None
    development: PeriodSummary | None = None
    temporal: PeriodSummary | None = None


class FailedCandidate(_Stored):
    """A candidate model the study could not evaluate: why, and the table rows at fault.

    Examples
    --------
    >>> FailedCandidate(reason="did not converge").rows
    []
    """

    reason: str
    rows: list[int] = Field(default_factory=list)


class StoredTrust(_Stored):
    """The ``trust:`` block of the stored study spec, as far as prediction needs it.

    Examples
    --------
    >>> StoredTrust().conformal_group is None
    True
    """

    conformal_group: str | None = None


class StoredSurvival(_Stored):
    """The stored survival section as prediction reads it: the follow-up time column."""

    duration_column: str | None = None


class StoredTreatment(_Stored):
    """The stored treatment section as prediction reads it: the treatment column."""

    column: str | None = None


class StoredSpec(_Stored):
    """The stored study spec as prediction reads it: the columns it gave a role, typed.

    Every other setting is left as stored (a spec written by another medpredict version
    need not match today's :class:`medpredict.spec.StudySpec`).

    Examples
    --------
    >>> StoredSpec(target="type", sensitive_attributes=["sex"]).sensitive_attributes
    ['sex']
    """

    target: str | None = None
    id_column: str | None = None
    patient_column: str | None = None
    time_column: str | None = None
    site_column: str | None = None
    sensitive_attributes: list[str] = Field(default_factory=list)
    survival: StoredSurvival | None = None
    treatment: StoredTreatment | None = None
    trust: StoredTrust = Field(default_factory=StoredTrust)


def _label(value: Any) -> Any:
    """Class labels are stored as text, however the outcome column encoded them."""
    return str(value) if isinstance(value, int | float | bool) else value


class ModelMetadata(_Stored):
    """Everything ``metadata.json`` records about a saved model.

    Only ``name`` is required; studies write every field that applies to them. The
    data schema is kept in the form :meth:`medpredict.data.schema.Schema.to_dict`
    gives (image models: one ``image`` feature with its ``shape``) and is stored under
    the key ``schema``.

    Examples
    --------
    >>> meta = ModelMetadata(name="pima", task="binary", classes=["No", "Yes"],
    ...     schema={"features": [{"name": "glu", "kind": "numeric"}]})
    >>> meta.feature_names, meta.thresholds
    (['glu'], {})
    >>> meta.to_json_dict()["schema"]
    {'features': [{'name': 'glu', 'kind': 'numeric'}]}
    """

    model_config = ConfigDict(
        extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    format: int = FORMAT
    name: str
    version: str | None = None
    created: str | None = None
    task: Literal["binary", "multiclass", "survival"] | None = None
    target: str | None = None
    positive_class: str | None = None
    classes: list[str] = Field(default_factory=list)
    class_names: dict[str, str] = Field(default_factory=dict)
    model: str | None = None
    data_schema: dict[str, Any] | None = Field(None, alias="schema")
    thresholds: dict[str, float] = Field(default_factory=dict)
    horizons: list[float] = Field(default_factory=list)
    time_unit: str | None = None
    lower_bound: dict[str, float] | None = None
    treatment: dict[str, Any] | None = None
    metrics: dict[str, MetricEstimate] = Field(default_factory=dict)
    validation_metrics: dict[str, MetricEstimate] = Field(default_factory=dict)
    holdouts: dict[str, dict[str, MetricEstimate]] = Field(default_factory=dict)
    training_rows: int | None = None
    temporal_validation: TemporalValidation | None = None
    failed_candidates: dict[str, FailedCandidate] = Field(default_factory=dict)
    training_data_sha256: str | None = None
    intended_use: str | None = None
    modifiable: list[str] | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """Check the stored format and bring older metadata to the current one."""
        if not isinstance(data, Mapping):
            return data
        stored = data.get("format", 1)
        if isinstance(stored, bool) or not isinstance(stored, int) or stored < 1:
            raise ValueError(f"format must be a whole number from 1, not {stored!r}")
        if stored > FORMAT:
            raise ValueError(
                f"format {stored} is newer than this medpredict reads (up to {FORMAT}); "
                "upgrade medpredict to load it"
            )
        return {**data, "format": FORMAT}

    @field_validator("positive_class", mode="before")
    @classmethod
    def _positive_as_text(cls, value: Any) -> Any:
        return _label(value)

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value: Any) -> Any:
        return [_label(v) for v in value] if isinstance(value, list | tuple) else value

    @field_validator("spec")
    @classmethod
    def _spec_roles_are_typed(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                StoredSpec.model_validate(value)
            except ValidationError as error:
                raise ValueError(_problems(error)) from None
        return value

    @field_validator("data_schema")
    @classmethod
    def _schema_has_named_features(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        features = value.get("features")
        if not isinstance(features, list):
            raise ValueError("needs a 'features' list")
        for position, feature in enumerate(features):
            if not (isinstance(feature, dict) and isinstance(feature.get("name"), str)):
                raise ValueError(f"feature {position} needs a 'name' (text)")
            if not isinstance(feature.get("kind"), str):
                raise ValueError(f"feature {feature['name']!r} needs a 'kind' (text)")
        return value

    @classmethod
    def read(cls, data: Any, source: str = "metadata") -> ModelMetadata:
        """Validate stored or user-given metadata, naming ``source`` and each bad field.

        Raises
        ------
        ValueError
            If ``data`` is not an object, its format is newer than :data:`FORMAT`, or
            a field has the wrong type.
        """
        if isinstance(data, ModelMetadata):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{source} must be a JSON object, not {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"{source}: {_problems(error)}") from None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object ``metadata.json`` holds: the keys given, any unknown ones, and
        ``format``; defaults that were never set are left out."""
        return self.model_dump(exclude_unset=True)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns, in schema order (empty without a schema)."""
        return [f["name"] for f in (self.data_schema or {}).get("features", [])]

    @property
    def study(self) -> StoredSpec:
        """The stored study spec's role columns and trust settings (all unset without one)."""
        return StoredSpec.model_validate(self.spec or {})

    @property
    def conformal_group(self) -> str | None:
        """The column whose groups the conformal sets were calibrated in separately."""
        return self.study.trust.conformal_group

    @property
    def role_columns(self) -> list[str]:
        """Columns the study spec named for a role (id, patient, time, site, outcome,
        follow-up time, treatment, sensitive attributes), in that order, without repeats."""
        spec = self.study
        duration = spec.survival.duration_column if spec.survival else None
        treatment = spec.treatment.column if spec.treatment else None
        named = [spec.id_column, spec.patient_column, spec.time_column, spec.site_column,
                 spec.target, duration, treatment, *spec.sensitive_attributes]
        return [c for c in dict.fromkeys(named) if c]


def study_metadata(spec: Any, **fields: Any) -> ModelMetadata:
    """The metadata of a model a study saves: what every study records (name, medpredict
    version, creation time, target, intended use, library versions, the whole spec),
    then the study's own ``fields``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> spec = SimpleNamespace(name="demo", target="y", intended_use="", model_dump=dict)
    >>> study_metadata(spec, task="binary", model="lightgbm").model
    'lightgbm'
    """
    return ModelMetadata(
        name=spec.name,
        version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        target=spec.target,
        intended_use=spec.intended_use,
        versions=library_versions(),
        spec=spec.model_dump(mode="json"),
        **fields,
    )


def _problems(error: ValidationError) -> str:
    """Pydantic's errors as ``field: message``, one after the other."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
