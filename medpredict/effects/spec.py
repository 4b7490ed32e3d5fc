"""The ``treatment:`` section of a study spec: whose outcome a treatment changes, and how much.

A study with this section estimates each patient's effect of one treatment against
its control on the study's outcome: the risk of the event (``task: binary``) or the
risk of the event by a horizon (``task: survival``). The features are everything but
the outcome, the treatment and the other roles, measured before the treatment was
chosen.

Examples
--------
>>> section = TreatmentSpec.model_validate({"column": "arm", "treated_value": "drug",
...                                         "control_value": "placebo", "randomised": True})
>>> section.learners, section.benefit, section.intervals
(['t_learner', 'x_learner'], 'fewer_events', 50)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EffectLearner = Literal["t_learner", "s_learner", "x_learner", "dr_learner"]


class TreatmentSpec(BaseModel):
    """A binary treatment whose individual effects on the outcome are estimated."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="Column of the treatment each patient received.")
    treated_value: str | int | float | bool = Field(1, description="Code of the treated arm.")
    control_value: str | int | float | bool = Field(
        0, description="Code of the control arm (usual care, placebo or the other treatment)."
    )
    randomised: bool = Field(
        False,
        description="Treatment was assigned at random (a trial). Otherwise the propensity "
        "to be treated is modelled and effects are refused where the arms do not overlap.",
    )
    assignment_probability: float | None = Field(
        None, gt=0, lt=1,
        description="A trial's known probability of treatment (default: the treated share).",
    )
    learners: list[EffectLearner] = Field(
        default_factory=lambda: ["t_learner", "x_learner"],
        min_length=1,
        description="Candidate effect learners, compared on held-out patients (the one whose "
        "effects best match held-out doubly robust scores is kept).",
    )
    outcome_model: str = Field(
        "selected",
        description="Outcome model of the learners: 'selected' (per arm, the lowest "
        "cross-validated error among ridge, quadratic_ridge, kernel_ridge, lightgbm and "
        "lightgbm_linear), one of those (which then also models the effects of the X- and "
        "DR-learners) or a registered classifier (binary task only).",
    )
    benefit: Literal["fewer_events", "more_events"] = Field(
        "fewer_events",
        description="What helps the patient: fewer events (the event is harm, e.g. death) "
        "or more (the event is the hoped-for response).",
    )
    horizon: float | None = Field(
        None, gt=0,
        description="Survival task: the effect on the risk of the event by this time "
        "(default: the first of survival.horizons).",
    )
    subgroups: list[str] = Field(
        default_factory=list,
        description="Columns whose groups get their own effect estimate with a CI (a "
        "numeric column is split at its median).",
    )
    intervals: int = Field(
        50, ge=0, le=1000,
        description="Bootstrap refits of the selected learner behind each patient's 95% "
        "interval of benefit (0: no intervals).",
    )
    overlap_bounds: tuple[float, float] = Field(
        (0.05, 0.95),
        description="Propensities within which both treatments were realistic.",
    )
    trim_outside_overlap: bool = Field(
        False,
        description="Observational data: leave out (and list) the patients whose propensity "
        "is outside overlap_bounds, instead of refusing when there are too many.",
    )
    max_outside_overlap: float = Field(
        0.1, ge=0, le=1,
        description="Effects are refused when more patients than this share have a "
        "propensity outside overlap_bounds.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TreatmentSpec:
        if str(self.treated_value) == str(self.control_value):
            raise ValueError("treatment: treated_value and control_value must differ")
        if self.assignment_probability is not None and not self.randomised:
            raise ValueError("treatment.assignment_probability needs randomised: true")
        low, high = self.overlap_bounds
        if not 0 < low < high < 1:
            raise ValueError("treatment.overlap_bounds must be 0 < low < high < 1")
        if len(set(self.learners)) != len(self.learners):
            raise ValueError("treatment.learners lists a learner twice")
        return self
