"""The ``timeline:`` section of a study spec and the event source of ``data: {events: ...}``.

A timeline study names where its events come from (``data.events``: a reader and its
files) and defines the cohort: the index time of each sample (the moment of
prediction), the observation window before it, the gap and horizon after it, the
outcome, who is included, and how events become features. Durations are written
``90m``, ``48h``, ``30d`` or ``2w``.

Examples
--------
>>> timeline = TimelineSpec.model_validate({
...     "index": {"anchor": "ICU_ADMISSION", "offset": "48h"},
...     "outcome": {"column": "In-hospital_death"}})
>>> timeline.observation, timeline.index.offsets()
('48h', [Timedelta('2 days 00:00:00')])
>>> duration("90m")
Timedelta('0 days 01:30:00')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "min", "h": "h", "d": "D", "w": "W"}
AGGREGATES = ("count", "last", "min", "max", "mean", "std", "slope", "time_since_last")
"""The aggregates of each code over each window (``slope`` per hour, ``time_since_last``
in hours)."""

Reader = Literal["physionet2012", "mimic", "omop", "fhir", "meds"]


def duration(text: str) -> pd.Timedelta:
    """A duration written ``<number><m|h|d|w>`` as a Timedelta; ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit, e.g. 90m, 48h, 30d, 2w"
        )
    return pd.to_timedelta(float(match.group(1)), unit=_UNITS[match.group(2)])


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        duration(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventSource(_Strict):
    """Where a timeline's events come from: a reader and its files."""

    reader: Reader = Field(
        description="physionet2012: challenge record files; mimic: MIMIC-style tables; "
        "omop: OMOP CDM tables; fhir: FHIR R4 Bundles/NDJSON; meds: a MEDS dataset folder."
    )
    path: Path = Field(description="Folder, archive or file of the source (relative to the spec).")
    outcomes: Path | None = Field(
        None, description="Per-subject outcome table shipped with the source (PhysioNet 2012)."
    )
    mapping: str | None = Field(
        None, description="Table-to-event mapping for mimic: mimic3, mimic4 or a YAML path."
    )


class IndexSpec(_Strict):
    """The moment(s) of prediction, relative to an anchor event of each subject."""

    anchor: str = Field(
        "ICU_ADMISSION", description="Code of the anchor event (its first occurrence)."
    )
    offset: str | None = Field("48h", description="One index time: anchor + offset.")
    landmarks: list[str] | None = Field(
        None, description="Several index times per subject (early warning), e.g. [6h, 12h, 24h]."
    )

    _offset = field_validator("offset")(classmethod(lambda cls, v: _check_duration(v)))

    @field_validator("landmarks")
    @classmethod
    def _landmarks(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            duration(item)
        if value is not None and not value:
            raise ValueError("landmarks must list at least one duration")
        return value

    def offsets(self) -> list[pd.Timedelta]:
        """The index offsets after the anchor, in order."""
        if self.landmarks:
            return sorted(duration(v) for v in self.landmarks)
        return [duration(self.offset or "0h")]


class OutcomeSpec(_Strict):
    """The outcome: a column of the source's outcome table, or an event within the horizon."""

    column: str | None = Field(
        None, description="Column of the source's outcome table (e.g. In-hospital_death)."
    )
    code: str | None = Field(
        None, description="Event code that is the outcome when it occurs within the horizon "
        "(e.g. MEDS_DEATH); subjects with it at or before the index time are excluded."
    )

    @model_validator(mode="after")
    def _one(self) -> OutcomeSpec:
        if (self.column is None) == (self.code is None):
            raise ValueError("give exactly one of outcome 'column' or 'code'")
        return self


class InclusionSpec(_Strict):
    """Who enters the cohort (each exclusion is counted in the cohort flow)."""

    min_age: float | None = Field(None, ge=0, description="Youngest age included (years).")
    max_age: float | None = Field(None, ge=0, description="Oldest age included (years).")
    age_code: str = Field("Age", description="Static code holding age, when there is no birth.")
    min_events: int = Field(
        1, ge=0, description="Fewest events in the observation window for a sample to count."
    )


class TimelineSpec(_Strict):
    """A cohort over patient timelines and the features drawn from it."""

    index: IndexSpec = Field(default_factory=IndexSpec, description="Index time(s).")
    observation: str = Field("48h", description="Window before the index time that is read.")
    gap: str = Field("0h", description="Time after the index before the horizon starts.")
    horizon: str | None = Field(
        None, description="Length of the outcome window after the gap (outcome code only)."
    )
    outcome: OutcomeSpec = Field(description="The outcome (see OutcomeSpec).")
    inclusion: InclusionSpec = Field(default_factory=InclusionSpec, description="Inclusion.")
    windows: list[str] = Field(
        default_factory=lambda: ["6h", "24h", "48h"],
        description="Look-back windows ending at the index time (each at most `observation`).",
    )
    aggregates: list[Literal[AGGREGATES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(AGGREGATES), description="Aggregates per code and window."
    )
    step: str | None = Field(
        "1h",
        description="Step of the regular grid read by the sequence models (grud, "
        "timeline_transformer, ...); null leaves the grid out.",
    )
    codes: list[str] | None = Field(
        None, description="Codes used as features (default: every code in the development data)."
    )
    ranges: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Overrides of the physiological range table, e.g. {Temp: {min: 25, max: 45}}.",
    )

    _durations = field_validator("observation", "gap", "horizon", "step")(
        classmethod(lambda cls, v: _check_duration(v))
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("windows must list at least one duration")
        for item in value:
            duration(item)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TimelineSpec:
        longest = max(duration(w) for w in self.windows)
        if longest > duration(self.observation):
            raise ValueError(
                f"window {max(self.windows, key=duration)} is longer than the observation "
                f"window {self.observation}"
            )
        if self.outcome.code is not None and self.horizon is None:
            raise ValueError("an outcome code needs a horizon (e.g. horizon: 30d)")
        return self
