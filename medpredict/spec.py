"""The study spec: what to predict, from what, how to validate, which models to try.

A spec is data (YAML), validated by pydantic. Unknown keys are errors, so a typo
never silently changes a study. Every field is documented below and in
``docs/study-spec.md``.

Examples
--------
>>> spec = StudySpec.model_validate({
...     "name": "pima", "data": {"dataset": "pima_tr"}, "target": "type",
...     "positive_class": "Yes"})
>>> spec.validation.scheme, spec.models[-1]
('kfold', 'hybrid_ensemble')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medpredict.cluster import check_address
from medpredict.data.errors import SpecError
from medpredict.effects.spec import TreatmentSpec
from medpredict.spec_io import field_problems, read_mapping
from medpredict.survival.spec import SURVIVAL_METRICS, SURVIVAL_MODELS, SurvivalSpec
from medpredict.timeline.spec import EventSource, TimelineSpec

FeatureKind = Literal[
    "numeric", "categorical", "boolean", "text", "image", "signal", "genes", "sequence"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Strict):
    """Where a table comes from: a file (CSV or Parquet), a bundled dataset, or events."""

    path: Path | None = Field(None, description="CSV or Parquet file, relative to the spec file.")
    dataset: str | None = Field(
        None, description="Name of a bundled dataset (`medpredict datasets` lists them)."
    )
    events: EventSource | None = Field(
        None,
        description="Patient timelines read by a reader (see EventSource); the study's "
        "`timeline:` section turns them into the table.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if sum(x is not None for x in (self.path, self.dataset, self.events)) != 1:
            raise ValueError("give exactly one of 'path', 'dataset' or 'events'")
        return self


class ModelSpec(_Strict):
    """A candidate model by registered name, with optional parameters."""

    name: str = Field(description="Registered model name (`medpredict models` lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")


class Threshold(_Strict):
    """An operating point: a fixed risk, or the risk giving a target sensitivity/specificity."""

    risk: float | None = Field(None, gt=0, lt=1, description="Fixed risk threshold.")
    sensitivity: float | None = Field(
        None, gt=0, le=1, description="Lowest risk reaching this sensitivity on development data."
    )
    specificity: float | None = Field(
        None, gt=0, le=1, description="Risk reaching this specificity on development data."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Threshold:
        given = [v for v in (self.risk, self.sensitivity, self.specificity) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'risk', 'sensitivity' or 'specificity'")
        return self

    @property
    def label(self) -> str:
        if self.risk is not None:
            return f"risk {self.risk:g}"
        if self.sensitivity is not None:
            return f"sens {self.sensitivity:g}"
        return f"spec {self.specificity:g}"


class Validation(_Strict):
    """How performance is estimated."""

    scheme: Literal["kfold", "temporal", "site", "leave_one_patient_out", "fixed"] = Field(
        "kfold",
        description=(
            "kfold: stratified (group) k-fold by patient; temporal: develop on rows before "
            "the cut-off, validate on later rows; site: leave one site out; "
            "leave_one_patient_out: one fold per patient (needs patient_column); fixed: "
            "given splits (split_column): fit on train rows, select and calibrate on "
            "validation rows, refit on both, score the test rows once."
        ),
    )
    folds: int = Field(5, ge=2, le=20, description="Number of folds for kfold.")
    nested: Literal["auto"] | bool = Field(
        "auto",
        description=(
            "Estimate the whole procedure (selection, search, thresholds) by nested "
            "cross-validation on the study's folds. auto: when the estimated time fits "
            "max(60 s, 2 x the measured model comparison); true: always; false: never."
        ),
    )
    inner_folds: int | None = Field(
        None,
        ge=2,
        le=20,
        description="Inner folds of nested cross-validation (patient-grouped stratified "
        "k-fold of each outer-training part); default min(folds, 3).",
    )
    temporal_cutoff: str | None = Field(
        None,
        description="Date/time cut-off for temporal validation (ISO format); rows on or "
        "after it are held out. When omitted it is resolved from temporal_fraction and "
        "written into the resolved spec.",
    )
    temporal_fraction: float = Field(
        0.25, gt=0, lt=1, description="Latest fraction held out when no cut-off is given."
    )
    external: DataSource | None = Field(
        None, description="An independent table scored by the final model (external validation)."
    )
    split_column: str | None = Field(
        None, description="Column naming each row's split for the fixed scheme (never a feature)."
    )
    train_value: str = Field("train", description="split_column value of training rows.")
    validation_value: str = Field(
        "validation", description="split_column value of validation rows."
    )
    test_value: str = Field(
        "test", description="split_column value of test rows (a hold-out; may be absent)."
    )


class TrustSpec(_Strict):
    """Settings of the trust layer (the ``trust:`` block of a study spec)."""

    fairness_tolerance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Flag a group when the 95% CI of its difference from all other patients "
        "lies beyond this (same scale for every metric).",
    )
    fairness_min_group_size: int = Field(
        30, ge=1, description="Smaller groups are reported as too small, never flagged."
    )
    fairness_min_events: int = Field(
        5, ge=1, description="Groups with fewer events or non-events are reported as too small."
    )
    fairness_intersections: int = Field(
        2, ge=1, le=4, description="Largest intersection of sensitive attributes audited."
    )
    fairness_mitigation: Literal[
        "none",
        "true_positive_rate_parity",
        "false_positive_rate_parity",
        "equalized_odds",
        "demographic_parity",
    ] = Field("none", description="Show the trade-off of group-aware thresholds for this goal.")
    conformal_alpha: float = Field(
        0.1, gt=0, lt=0.5, description="Conformal miscoverage: sets cover 1 - alpha of patients."
    )
    conformal_conditional: Literal["class", "marginal"] = Field(
        "class", description="Calibrate conformal sets per outcome class or over everyone."
    )
    conformal_group: str | None = Field(
        None, description="Sensitive attribute whose groups are calibrated separately."
    )
    explain_rows: int = Field(
        500,
        ge=1,
        description="Development rows explained for the report (at most 30, with "
        "sampled coalitions beyond 11 columns, when the model needs the model-agnostic "
        "kernel explainer).",
    )
    explain_background: int = Field(
        100, ge=10, description="Rows in the stored explanation background."
    )
    learning_curve: bool = Field(True, description="Compute a learning curve (refits the model).")
    max_gap: float = Field(
        0.05, gt=0, description="Warn when apparent minus cross-validated AUROC exceeds this."
    )
    min_events_per_variable: float = Field(
        10, gt=0, description="Warn below this many events per candidate parameter."
    )
    data_source: str = Field("", description="Model card: where the data come from.")
    participants: str = Field("", description="Model card: setting and eligibility.")
    outcome_definition: str = Field("", description="Model card: how the outcome was assessed.")
    limitations: list[str] = Field(default_factory=list, description="Model card: known limits.")


class StudySpec(_Strict):
    """A complete disease-risk study."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Study name (used in paths).")
    description: str = Field("", description="Free text shown in the report.")
    intended_use: str = Field(
        "", description="Who uses the prediction, for whom, and for which decision."
    )
    data: DataSource = Field(description="The development table (see DataSource).")
    target: str = Field(description="Outcome column (the event column of a survival task).")
    task: Literal["binary", "multiclass", "survival"] = Field(
        "binary",
        description="Outcome type; survival: time to event with censoring (see SurvivalSpec).",
    )
    positive_class: str | int | float | bool | None = Field(
        None, description="Value of the target that counts as the event (binary, survival)."
    )
    survival: SurvivalSpec | None = Field(
        None, description="Follow-up time, event codes and horizons of a survival task."
    )
    treatment: TreatmentSpec | None = Field(
        None,
        description="Estimate each patient's effect of a treatment on the outcome instead "
        "of predicting the outcome (see TreatmentSpec).",
    )
    id_column: str | None = Field(None, description="Row identifier; must be unique.")
    patient_column: str | None = Field(
        None, description="Patient identifier; splits keep a patient's rows together."
    )
    time_column: str | None = Field(None, description="Date/time column for temporal validation.")
    site_column: str | None = Field(None, description="Site/hospital column.")
    sensitive_attributes: list[str] = Field(
        default_factory=list, description="Columns kept for fairness audits."
    )
    use_sensitive_as_features: bool = Field(
        False, description="Also use the sensitive attributes as predictors."
    )
    features: dict[str, FeatureKind] | None = Field(
        None, description="Feature columns and their kinds; inferred from the data when omitted."
    )
    exclude: list[str] = Field(default_factory=list, description="Columns never used as features.")
    limits: dict[str, dict[Literal["min", "max"], float]] | None = Field(
        None,
        description=(
            "Physical limits of numeric features, e.g. {sbp: {min: 40, max: 300}}: values "
            "outside are impossible and refused in training, hold-out and prediction rows. "
            "Replaces the built-in limit of a feature (age: 0 to 130 years)."
        ),
    )
    validation: Validation = Field(
        default_factory=Validation, description="How performance is estimated (see Validation)."
    )
    models: list[str | ModelSpec] = Field(
        default_factory=lambda: [
            "logistic_regression",
            "random_forest",
            "svm",
            "lightgbm",
            "hybrid_ensemble",
        ],
        description="Candidate models (names or {name, params}); a survival task's default "
        f"is {', '.join(SURVIVAL_MODELS)}.",
    )
    budget: str | None = Field(
        None,
        pattern=r"^\s*(\d+(\.\d+)?\s*[smh]\s*)+$",
        description=(
            "Wall time for hyperparameter search across the candidates, e.g. '10m' or '90s'; "
            "omitted: each candidate runs with its defaults."
        ),
    )
    class_weight: Literal["balanced", "none"] = Field(
        "none", description="Reweight classes during training (imbalance)."
    )
    selection_metric: Literal[
        "auroc", "auprc", "brier", "log_loss", "macro_f1", "harrell_c", "uno_c",
        "integrated_brier",
    ] = Field(
        "auroc",
        description="Metric used to choose the final model from out-of-fold predictions "
        "(a survival task's default: harrell_c).",
    )
    thresholds: list[Threshold] = Field(
        default_factory=lambda: [Threshold(sensitivity=0.9)],
        description="Operating points reported with sensitivity, specificity, PPV, NPV.",
    )
    decision_curve: tuple[float, float] = Field(
        (0.01, 0.6), description="Risk-threshold range of the decision curve."
    )
    leakage_auroc: float = Field(
        0.99,
        gt=0.5,
        le=1,
        description="A feature that alone reaches this AUROC is treated as likely leakage: "
        "the study stops with an error naming it, unless keep_leaky_columns lists it.",
    )
    keep_leaky_columns: list[str] = Field(
        default_factory=list,
        description="Columns kept as features although they alone reach leakage_auroc "
        "(a deliberate choice, e.g. a known strong predictor); calibration intercept and "
        "slope are then marked as not meaningful instead of reported.",
    )
    seed: int = Field(0, description="Random seed: same spec + data + seed gives same results.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for confidence intervals.")
    timeline: TimelineSpec | None = Field(
        None,
        description="Cohort over patient timelines (index time, windows, outcome, features); "
        "needs data.events (see TimelineSpec).",
    )
    trust: TrustSpec = Field(
        default_factory=TrustSpec,
        description="Explanations, fairness audit, conformal sets, overfitting checks, model card.",
    )
    output_dir: Path | None = Field(
        None,
        description="The folder results go to (report.html, metrics.json, model/); default "
        "runs/<name> under the working directory. `medpredict run --output-dir D` writes to "
        "D/<name> instead.",
    )
    cluster: str | None = Field(
        None,
        description="Run the cross-validation fits (candidate x fold) and bootstrap "
        "resamples on a Dask cluster: local:N starts N worker processes on this machine for "
        "the run, an address (tcp://host:8786) uses a running scheduler. Results equal "
        "those of the same spec run without it. `medpredict run --cluster` overrides it; "
        "needs the cluster extra (docs/scale.md).",
    )

    @field_validator("cluster")
    @classmethod
    def _cluster_address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        if self.validation.scheme == "temporal" and not self.time_column:
            raise ValueError("validation.scheme 'temporal' needs time_column")
        if self.validation.scheme == "site" and not self.site_column:
            raise ValueError("validation.scheme 'site' needs site_column")
        if self.validation.scheme == "leave_one_patient_out" and not self.patient_column:
            raise ValueError("validation.scheme 'leave_one_patient_out' needs patient_column")
        if self.validation.scheme == "fixed":
            self._check_fixed()
        self._check_timeline()
        self._check_survival()
        self._check_treatment()
        if self.task == "multiclass" and self.selection_metric in ("auprc",):
            raise ValueError("selection_metric 'auprc' is for binary tasks")
        if self.budget and self.selection_metric not in ("auroc", "brier", "log_loss"):
            raise ValueError("a search budget needs selection_metric auroc, brier or log_loss")
        return self

    def _check_survival(self) -> None:
        if self.task != "survival":
            if self.survival is not None:
                raise ValueError("a survival: section needs task: survival")
            if self.selection_metric in SURVIVAL_METRICS:
                raise ValueError(
                    f"selection_metric {self.selection_metric!r} is for survival tasks"
                )
            return
        if self.survival is None:
            raise ValueError(
                "task: survival needs a survival: section (duration_column, horizons)"
            )
        if self.positive_class is None:
            raise ValueError("task: survival needs positive_class: the code of the event")
        if "models" not in self.model_fields_set:
            self.models = list(SURVIVAL_MODELS)
        if "selection_metric" not in self.model_fields_set:
            self.selection_metric = "harrell_c"
        elif self.selection_metric not in SURVIVAL_METRICS:
            raise ValueError(
                f"selection_metric {self.selection_metric!r} is not a survival metric; "
                f"expected one of: {', '.join(SURVIVAL_METRICS)}"
            )
        self._refuse("task: survival", {
            "validation.scheme": self.validation.scheme not in ("kfold", "temporal", "site"),
        }, "validation schemes kfold, temporal and site, with an external table, are supported")

    def _check_treatment(self) -> None:
        treatment = self.treatment
        if treatment is None:
            return
        if self.task == "multiclass":
            raise ValueError("treatment effects need task: binary or survival")
        if treatment.horizon is not None and self.task != "survival":
            raise ValueError("treatment.horizon is for task: survival")
        roles = {"target": self.target, "id_column": self.id_column,
                 "patient_column": self.patient_column, "time_column": self.time_column,
                 "site_column": self.site_column,
                 "survival.duration_column": self.survival.duration_column
                 if self.survival else None}
        taken = [role for role, column in roles.items() if column == treatment.column]
        if taken:
            raise ValueError(f"treatment.column {treatment.column!r} is also the {taken[0]}")
        if self.features is not None and treatment.column in self.features:
            raise ValueError(
                f"treatment.column {treatment.column!r} is listed in features; the treatment "
                "is compared, not used as a predictor"
            )
        self._refuse("a treatment: study", {
            "validation.scheme": self.validation.scheme != "kfold",
            "validation.external": self.validation.external is not None,
        }, "effects are estimated and tested with k-fold cross-fitting")

    def _refuse(self, study: str, unsupported: dict[str, bool], supported: str) -> None:
        """Refuse, by name, the settings ``study`` does not support (search budgets, nested
        validation and timelines never; ``unsupported`` the rest)."""
        unsupported = {
            **unsupported,
            "budget": self.budget is not None,
            "validation.nested: true": self.validation.nested is True,
            "timeline": self.timeline is not None,
        }
        refused = [name for name, bad in unsupported.items() if bad]
        if refused:
            raise ValueError(f"{study} does not support {', '.join(refused)} yet ({supported})")

    def _check_timeline(self) -> None:
        sources = [s for s in (self.data, self.validation.external) if s is not None]
        if self.timeline is None:
            if any(s.events is not None for s in sources):
                raise ValueError("data from events needs a timeline: section")
            return
        if any(s.events is None for s in sources):
            raise ValueError(
                "a timeline: study reads its development and external data from events "
                "(data: {events: ...}; validation.external: {events: ...})"
            )
        if self.features is not None:
            raise ValueError(
                "features of a timeline study come from its timeline: section (codes, "
                "windows, aggregates); leave features out"
            )
        if self.id_column is None:
            self.id_column = "sample_id"
        if self.patient_column is None:
            self.patient_column = "subject_id"

    def _check_fixed(self) -> None:
        v = self.validation
        if not v.split_column:
            raise ValueError("validation.scheme 'fixed' needs validation.split_column")
        if v.nested is True:
            raise ValueError(
                "validation.nested: true does not apply to scheme 'fixed' (one validation "
                "split, no folds to nest); use nested: auto or false"
            )
        if self.budget:
            raise ValueError("a search budget needs cross-validation folds, not scheme 'fixed'")
        values = [v.train_value, v.validation_value, v.test_value]
        if len(set(values)) < 3:
            raise ValueError(f"validation: train, validation and test values {values} must differ")
        roles = {
            "target": [self.target],
            "id_column": [self.id_column],
            "patient_column": [self.patient_column],
            "time_column": [self.time_column],
            "site_column": [self.site_column],
            "sensitive_attributes": self.sensitive_attributes,
            "features": list(self.features or {}),
        }
        taken = [role for role, names in roles.items() if v.split_column in names]
        if taken:
            raise ValueError(
                f"validation.split_column {v.split_column!r} is also the {taken[0]}; the split "
                "column only assigns rows to splits"
            )

    @property
    def model_specs(self) -> list[ModelSpec]:
        return [m if isinstance(m, ModelSpec) else ModelSpec(name=m) for m in self.models]

    @property
    def run_dir(self) -> Path:
        return self.output_dir or Path("runs") / self.name


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a YAML study spec; relative data paths resolve from its folder."""
    path = Path(path)
    return parse_spec(read_mapping(path), base_dir=path.parent)


def parse_spec(raw: dict[str, Any], base_dir: Path | None = None) -> StudySpec:
    """Validate a spec given as a dict; errors list every bad field with its location."""
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(f"invalid study spec: {field_problems(err)}") from None
    if base_dir is not None:
        for source in (spec.data, spec.validation.external):
            if source is not None and source.path is not None and not source.path.is_absolute():
                source.path = base_dir / source.path
            if source is not None and source.events is not None:
                _resolve_event_paths(source.events, base_dir)
    return spec


def _resolve_event_paths(events: EventSource, base_dir: Path) -> None:
    """Event source paths relative to the spec's folder; reference data by their layout."""
    from medpredict.data.reference import dataset_holding
    from medpredict.settings import fetched_data_dir, find_data

    for name in ("path", "outcomes"):
        value = getattr(events, name)
        if value is None or value.is_absolute():
            continue
        local = base_dir / value
        if local.exists():
            setattr(events, name, local)
        elif (found := find_data(value.as_posix())) is not None:
            setattr(events, name, found)
        elif dataset_holding(value.as_posix()) is not None:
            setattr(events, name, fetched_data_dir() / value)  # fetched when first read
        else:
            setattr(events, name, local)
    if events.mapping and events.mapping.endswith((".yaml", ".yml")):
        mapping = Path(events.mapping)
        if not mapping.is_absolute():
            events.mapping = str(base_dir / mapping)


def spec_reference() -> str:
    """Markdown reference of every study-spec field, generated from the models above."""
    lines = ["# Study spec reference", "", "Generated by `medpredict spec-reference`.", ""]
    from medpredict.forecasting import spec as forecast
    from medpredict.timeline.spec import InclusionSpec, IndexSpec, OutcomeSpec

    models = (StudySpec, Validation, TrustSpec, SurvivalSpec, DataSource, ModelSpec, Threshold,
              EventSource, TimelineSpec, IndexSpec, OutcomeSpec, InclusionSpec,
              forecast.ForecastSpec, forecast.CountsSource, forecast.ForecastModel,
              forecast.Season, forecast.Hierarchy, forecast.Evaluation, forecast.Recalibration)
    for model in models:
        lines += [f"## {model.__name__}", "", (model.__doc__ or "").strip(), ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            annotation = str(info.annotation).replace("typing.", "").replace("|", "or")
            annotation = annotation.replace("<class '", "").replace("'>", "")
            default = (
                "required"
                if info.is_required()
                else repr(info.get_default(call_default_factory=True))
            )
            default = default.replace("|", "/")
            lines.append(f"| `{name}` | {annotation} | {default} | {info.description or ''} |")
        lines.append("")
    return "\n".join(lines)
