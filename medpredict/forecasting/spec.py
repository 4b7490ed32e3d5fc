"""The forecast spec: which counts, which horizons and quantiles, which models, how to score.

A forecast spec is YAML validated by pydantic, like a study spec; unknown keys are
errors. ``docs/study-spec.md`` lists every field and ``docs/forecasting.md`` explains them.

Examples
--------
>>> spec = ForecastSpec.model_validate({"name": "flu", "data": {"dataset": "flusight"}})
>>> spec.horizons, len(spec.quantiles), spec.models[0].name
([0, 1, 2, 3], 23, 'flusight_baseline')
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medpredict.data.errors import SpecError
from medpredict.evaluation.quantile_scores import FLUSIGHT_LEVELS, check_levels
from medpredict.spec_io import field_problems, read_mapping

DEFAULT_MODELS = ("flusight_baseline", "ets", "theta", "lightgbm", "ensemble")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountsSource(_Strict):
    """A table of counts per location and period: a CSV/Parquet file or a bundled dataset."""

    path: Path | None = Field(None, description="CSV or Parquet file, relative to the spec file.")
    dataset: str | None = Field(
        None, description="Bundled dataset: `flusight` (CDC FluSight weekly flu admissions)."
    )
    location: str | None = Field(
        "location",
        description="Column naming the location (state, ward); null for a single series.",
    )
    date: str = Field("date", description="Column with the end date of each period.")
    value: str = Field("value", description="Column with the count in that period.")
    location_name: str | None = Field(
        "location_name", description="Optional column with a readable location name."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CountsSource:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'path' or 'dataset'")
        return self


class ForecastModel(_Strict):
    """A forecaster by registered name, with optional parameters."""

    name: str = Field(description="Registered forecaster (`flusight_baseline`, `ets`, ...).")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")


class Season(_Strict):
    """One block of forecast (reference) dates scored together, e.g. an influenza season."""

    name: str = Field(description="Label in tables and plots, e.g. `2023-24`.")
    start: dt.date = Field(description="First forecast date scored.")
    end: dt.date = Field(description="Last forecast date scored.")

    @model_validator(mode="after")
    def _ordered(self) -> Season:
        if self.end < self.start:
            raise ValueError(f"season {self.name!r} ends before it starts")
        return self


class Hierarchy(_Strict):
    """A total that is the sum of other locations (states → nation)."""

    total: str = Field(description="Location code of the total, e.g. `US`.")
    method: Literal["bottom_up", "independent"] = Field(
        "bottom_up",
        description="`bottom_up`: the total's quantiles are the sums of its members' "
        "(coherent; exact when members move together); `independent`: forecast it alone.",
    )


class Evaluation(_Strict):
    """Rolling-origin evaluation: each forecast date sees only data up to that date."""

    seasons: list[Season] = Field(
        default_factory=list,
        description="Blocks of forecast dates to score; empty = the last 26 periods.",
    )
    baseline: str = Field("flusight_baseline", description="Model that relative WIS divides by.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of forecast dates.")
    score_total: bool = Field(
        False, description="Also score the hierarchy's total (FluSight scores states only)."
    )


class Recalibration(_Strict):
    """Conformal widening of each model's intervals from its own past errors."""

    method: Literal["conformal", "none"] = Field(
        "conformal",
        description="`conformal`: per horizon and interval, widen or narrow by the "
        "empirical quantile of past non-conformity on the log scale (CQR).",
    )
    window: int = Field(
        20, ge=4, description="Past forecast dates (with observed targets) used to calibrate."
    )


class ForecastSpec(_Strict):
    """A forecast spec (`medpredict forecast`): counts per location and period, horizons,
    quantiles, models and the rolling-origin evaluation."""

    name: str = Field(description="Name of the forecast; used for output files and serving.")
    data: CountsSource = Field(description="Where the counts come from.")
    period: Literal["week", "day"] = Field("week", description="Length of one period.")
    horizons: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3],
        description="Periods after the forecast date; 0 is the period ending on it.",
    )
    lag: int = Field(
        1,
        ge=0,
        description="Periods between the last data and the forecast date (FluSight: 1, the "
        "week before the reference date is the latest reported).",
    )
    quantiles: list[float] = Field(
        default_factory=lambda: list(FLUSIGHT_LEVELS),
        description="Quantile levels, symmetric around 0.5 (FluSight's 23 by default).",
    )
    locations: list[str] | None = Field(None, description="Forecast only these locations.")
    hierarchy: Hierarchy | None = Field(None, description="A total made of the others.")
    min_history: int = Field(
        12, ge=3, description="Observed periods a location needs before it is forecast."
    )
    season_length: int | None = Field(
        None, ge=2, description="Periods per seasonal cycle (default 52 weeks or 7 days)."
    )
    models: list[ForecastModel] = Field(
        default_factory=lambda: [ForecastModel(name=n) for n in DEFAULT_MODELS],
        description="Forecasters to evaluate; the one with the lowest relative WIS over the "
        "scored seasons makes the latest forecast.",
    )
    evaluation: Evaluation = Field(default_factory=Evaluation)
    recalibration: Recalibration = Field(default_factory=Recalibration)
    seed: int = Field(0, description="Random seed (baseline simulation, LightGBM).")

    @field_validator("models", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        import numpy as np

        check_levels(np.asarray(value))
        return value

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: list[int]) -> list[int]:
        if not value or any(h < 0 for h in value) or len(set(value)) != len(value):
            raise ValueError("horizons must be distinct non-negative integers")
        return sorted(value)

    @property
    def period_days(self) -> int:
        return 7 if self.period == "week" else 1

    @property
    def cycle(self) -> int:
        """Periods per seasonal cycle."""
        return self.season_length or (52 if self.period == "week" else 7)

    def steps(self) -> list[int]:
        """Steps ahead of the last observed period, one per horizon."""
        return [h + self.lag for h in self.horizons]


def load_forecast_spec(path: str | Path) -> ForecastSpec:
    """Read and validate a forecast spec; a :class:`SpecError` names each bad field."""
    path = Path(path)
    try:
        spec = ForecastSpec.model_validate(read_mapping(path))
    except ValidationError as err:
        raise SpecError(f"{path}: {field_problems(err)}") from None
    if spec.data.path is not None and not spec.data.path.is_absolute():
        spec.data.path = (path.parent / spec.data.path).resolve()
    return spec

