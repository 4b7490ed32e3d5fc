"""The ``survival:`` section of a study spec: a time-to-event outcome.

With ``task: survival`` the study's ``target`` is the event column and
``positive_class`` the code of the event; this section names the follow-up time, the
code of censored patients, any competing events and the horizons at which risk is
predicted and evaluated.

Examples
--------
>>> section = SurvivalSpec.model_validate({"duration_column": "days", "horizons": [365, 730]})
>>> section.horizons, section.censored_value, section.time_unit
([365.0, 730.0], 0, 'days')
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SURVIVAL_MODELS = [
    "cox",
    "penalized_cox",
    "random_survival_forest",
    "gradient_boosted_survival",
    "deepsurv",
    "survival_ensemble",
]
"""The default candidates of a survival study."""

SURVIVAL_METRICS = ("harrell_c", "uno_c", "integrated_brier")
"""Metrics a survival study can select by."""


class SurvivalSpec(BaseModel):
    """A time-to-event outcome: follow-up time, event codes and prediction horizons."""

    model_config = ConfigDict(extra="forbid")

    duration_column: str = Field(
        description="Follow-up time of each row: from the time of prediction to the event, "
        "the competing event or the end of follow-up (censoring); positive numbers."
    )
    horizons: list[float] = Field(
        min_length=1,
        description="Times (in time_unit) at which risk is predicted, evaluated (AUC, "
        "Brier, calibration, decision curve) and served.",
    )
    censored_value: str | int | float | bool = Field(
        0, description="Code in the event column (target) of patients censored: event-free "
        "when follow-up ended."
    )
    competing_values: list[str | int | float | bool] = Field(
        default_factory=list,
        description="Codes of competing events (e.g. transplant when death is predicted). "
        "Follow-up ends there: models are cause-specific and predicted risks are those "
        "without the competing event, which overstate cumulative incidence when it is common.",
    )
    time_unit: str = Field("days", description="Unit of the durations and horizons (labels).")
    calibration_groups: int = Field(
        5, ge=2, le=20, description="Risk groups of the calibration table at each horizon."
    )
    lower_bound_level: float = Field(
        0.9, gt=0.5, le=0.99,
        description="Confidence of each patient's lower bound on the time to the event "
        "(predict: survival_lower_bound): the share of patients whose event comes after "
        "their bound, calibrated on the selected model's out-of-fold curves with "
        "censoring weights (conformalized survival analysis). Valid as the cohort grows "
        "when censoring is independent of the features; competing events count as "
        "censoring.",
    )

    @field_validator("horizons")
    @classmethod
    def _positive_increasing(cls, value: list[float]) -> list[float]:
        if any(h <= 0 for h in value):
            raise ValueError("horizons must be positive")
        if sorted(set(value)) != list(value):
            raise ValueError("horizons must be distinct and increasing")
        return value

    def codes(self, positive_class: Any) -> dict[str, Any]:
        """The event codes as ``check_event_codes`` takes them."""
        return {
            "event_value": positive_class,
            "censored_value": self.censored_value,
            "competing_values": self.competing_values,
        }
