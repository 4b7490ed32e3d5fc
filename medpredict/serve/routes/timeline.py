"""Timeline models: patients' events in, one prediction per subject and index time out.

A timeline model (a study with a ``timeline:`` section) reads events, not rows of
features, so its clients send what was measured and the service featurises it with
the study's own code (:mod:`medpredict.timeline.scoring`):

``POST /v1/models/{name}/timeline``
    ``{"events": [MEDS rows], "index_time": optional}``: one JSON object per event
    (``subject_id``, ``time`` in ISO 8601 or null for a static measurement, ``code``,
    ``numeric_value``, optionally ``text_value`` and ``unit``);
``POST /fhir/RiskAssessment/$timeline``
    a FHIR R4 Bundle (Patient, Encounter, Observation, Condition, MedicationRequest),
    read by the FHIR timeline reader; the answer is a Bundle of RiskAssessments.

Each subject is scored at its anchor event + the model's index offset(s), or at the
``index_time`` given (an index time after the last event predicts "now"). Events are
screened as the study's readers screen theirs; if any is refused, nothing is scored
and the answer (422) gives the count per reason and the first refused events' line,
code and reason, never a value. Every answer is audited like ``/predict``: the caller,
the model, a hash of the request and the risks.

Examples
--------
>>> [route.path for route in router.routes]
['/v1/models/{name}/timeline', '/fhir/RiskAssessment/$timeline']
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from medpredict.data.errors import DataError
from medpredict.serve.audit import input_hash
from medpredict.serve.fhir import (
    ExtractedRow,
    FhirInputError,
    FhirMapping,
    operation_outcome,
    risk_assessment,
)
from medpredict.serve.models import ModelStore, RowPrediction, ServedModel
from medpredict.serve.responses import FHIR_JSON, JSONAnswer
from medpredict.serve.routes.predict import ModelIdentity, PredictionOut
from medpredict.serve.rows import ValidatedRows
from medpredict.serve.state import Clinician, Predictions, Queue, Store
from medpredict.timeline.readers.fhir import events_from_bundle
from medpredict.timeline.scoring import (
    prediction_samples,
    screen_events,
    timeline_features,
    timeline_of,
)
from medpredict.timeline.spec import TimelineSpec, duration
from medpredict.timeline.table import KEY_COLUMNS
from medpredict.timeline.validate import REASONS, ReadResult, load_ranges

router = APIRouter()
MAX_EVENTS = 100_000
"""Most events in one request (the body size limit usually binds first)."""
SHOWN_ROWS = 20
"""Refused events listed in a 422 answer (all are counted)."""


class EventIn(BaseModel):
    """One event in the MEDS layout."""

    model_config = ConfigDict(extra="forbid")

    subject_id: StrictInt | None = Field(description="The patient (a whole number).")
    time: str | None = Field(
        None, max_length=64,
        description="When it happened, ISO 8601 (an offset is converted to UTC); null for a "
        "static measurement such as age.",
    )
    code: str = Field(min_length=1, max_length=200, description="What happened, e.g. HR.")
    numeric_value: float | str | None = Field(None, description="Its value, if a number.")
    text_value: str | None = Field(None, max_length=10_000, description="A text value.")
    unit: str | None = Field(None, max_length=64, description="The unit as recorded.")


class TimelineRequest(BaseModel):
    """Events of one or more patients, and optionally the moment to predict at."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)
    index_time: str | None = Field(
        None, max_length=64,
        description="ISO 8601 time at which every subject is scored; default each subject's "
        "anchor event + the model's index offset(s).",
    )
    purpose: Literal["care", "what-if", "test"] = Field(
        "care", description="Why the prediction is asked; recorded in the audit log."
    )


class TimelinePredictionOut(PredictionOut):
    """The answer for one subject at one index time."""

    sample_id: str = Field(description="<subject_id>@<hours after the anchor>h")
    subject_id: int
    index_time: str = Field(description="The moment of prediction (ISO 8601).")


class TimelineResponse(BaseModel):
    """Predictions by subject, then index time."""

    model: ModelIdentity
    audit_seq: int = Field(description="Row of the audit log recording this answer.")
    events: int = Field(description="Events read.")
    predictions: list[TimelinePredictionOut]


class QuarantinedEvents(ValueError):
    """Events refused by screening; nothing of the request was scored."""

    def __init__(self, read: ReadResult) -> None:
        self.counts = {str(k): int(v) for k, v in read.quarantine["reason"].value_counts().items()}
        self.rows = [
            {"line": _plain(row["line"]), "code": str(row["code"]), "reason": str(row["reason"])}
            for _, row in read.quarantine.head(SHOWN_ROWS).iterrows()
        ]
        self.total = len(read.quarantine)
        super().__init__(
            f"{self.total} of {read.rows_in} event(s) refused; nothing was scored: "
            + ", ".join(f"{reason}: {count}" for reason, count in self.counts.items())
        )

    def detail(self) -> dict[str, Any]:
        """Counts by reason, what each means and the first refused events (no values)."""
        return {
            "message": str(self),
            "quarantined": self.counts,
            "reasons": {r: REASONS.get(r, r) for r in self.counts},
            "rows": self.rows,
        }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def timeline_model(store: ModelStore, name: str) -> tuple[ServedModel, TimelineSpec]:
    """The served model ``name`` and its timeline section; 400 for other models."""
    model = store.get(name)
    timeline = timeline_of(model.metadata)
    if timeline is None:
        raise HTTPException(
            400, f"model {name!r} is not a timeline model: send rows of patient data to "
            f"/v1/models/{name}/predict"
        )
    return model, timeline


def score_events(
    model: ServedModel,
    timeline: TimelineSpec,
    read: ReadResult,
    index_time: str | None,
    principal: str,
    queue: Predictions,
    action: str,
    digest: str,
) -> tuple[pd.DataFrame, list[RowPrediction], int]:
    """Samples, predictions and audit row of screened events (the shared path).

    Raises
    ------
    QuarantinedEvents
        Some events were refused by screening.
    HTTPException
        422 when no sample can be placed (e.g. no anchor event) or a feature is impossible.
    """
    if len(read.quarantine):
        raise QuarantinedEvents(read)
    try:
        samples = prediction_samples(read.events, timeline, index_time)
        features = timeline_features(model.loaded, read.events, samples)
        checked = model.schema.validate(features.drop(columns=list(KEY_COLUMNS)))
    except DataError as error:
        raise HTTPException(422, str(error)) from None
    warnings = _warnings(read.events, samples, features, timeline)
    future = queue.submit(model, ValidatedRows(checked, warnings), principal, action, digest)
    predictions, seq = queue.run(future)
    return samples, predictions, seq


def _warnings(
    events: pd.DataFrame, samples: pd.DataFrame, features: pd.DataFrame, timeline: TimelineSpec
) -> list[list[str]]:
    """Per sample: no measurement in the observation window; an index time past the data."""
    counts = [c for c in features.columns if "__count__" in c]
    measured = features[counts].sum(axis=1).to_numpy() > 0 if counts else np.zeros(len(samples))
    timed = events.loc[events["time"].notna()]
    last = samples["subject_id"].map(timed.groupby("subject_id")["time"].max())
    gap_h = ((samples["index_time"] - last) / pd.Timedelta(hours=1)).to_numpy()
    step = duration(timeline.step or "1h") / pd.Timedelta(hours=1)
    out = []
    for i in range(len(samples)):
        notes = []
        if not measured[i]:
            notes.append(
                f"no measurement the model reads in the {timeline.observation} before the index "
                "time; the risk rests on static values and imputation"
            )
        if gap_h[i] > step:
            notes.append(
                f"the index time is {gap_h[i]:.1f} h after the subject's last event; the risk "
                "is computed from the events up to then"
            )
        out.append(notes)
    return out


def _iso(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).isoformat()


@router.post(
    "/v1/models/{name}/timeline",
    tags=["predict"],
    summary="Risks of a timeline model from patients' events (MEDS rows)",
    response_class=JSONAnswer,
    responses={
        200: {"model": TimelineResponse, "description": "One prediction per sample"},
        400: {"description": "The model is not a timeline model"},
        422: {"description": "Events refused (counts by reason, first rows), or no anchor event"},
    },
)
def timeline_predict(
    name: Annotated[str, PathParam(description="Model name", max_length=200)],
    body: Annotated[TimelineRequest, Body()],
    principal: Clinician,
    store: Store,
    queue: Queue,
) -> JSONResponse:
    model, timeline = timeline_model(store, name)
    frame = pd.DataFrame(
        [e.model_dump() for e in body.events],
        columns=["subject_id", "time", "code", "numeric_value", "text_value", "unit"],
    ).astype({"subject_id": "Int64", "time": object, "numeric_value": object})
    read = screen_events(frame, "request", timeline, first_line=1)
    action = "timeline" if body.purpose == "care" else f"timeline:{body.purpose}"
    digest = input_hash(body.model_dump(mode="json"), queue.input_key)
    try:
        samples, predictions, seq = score_events(
            model, timeline, read, body.index_time, principal.id, queue, action, digest
        )
    except QuarantinedEvents as refused:
        return JSONAnswer({"detail": refused.detail()}, status_code=422)
    return JSONAnswer({
        "model": model.identity,
        "audit_seq": seq,
        "events": len(read.events),
        "predictions": [
            {**p.to_dict(), "sample_id": str(s.sample_id), "subject_id": int(s.subject_id),
             "index_time": _iso(s.index_time)}
            for p, s in zip(predictions, samples.itertuples(index=False), strict=True)
        ],
    })


def _fhir_timeline_model(store: ModelStore, name: str | None) -> tuple[ServedModel, TimelineSpec]:
    if name is None:
        names = [m.name for m in store.all() if timeline_of(m.metadata) is not None]
        if len(names) != 1:
            raise HTTPException(400, f"name the model with ?model=; timeline models: {names}")
        name = names[0]
    return timeline_model(store, name)


@router.post(
    "/fhir/RiskAssessment/$timeline",
    tags=["fhir"],
    summary="FHIR R4: Bundle of patients' resources -> RiskAssessments of a timeline model",
    responses={
        200: {"content": {FHIR_JSON: {}}, "description": "A Bundle of RiskAssessments"},
        400: {"content": {FHIR_JSON: {}}, "description": "OperationOutcome: bad Bundle"},
        422: {"content": {FHIR_JSON: {}}, "description": "OperationOutcome: events refused"},
    },
)
def fhir_timeline(
    bundle: Annotated[dict[str, Any], Body(description="A FHIR R4 Bundle")],
    principal: Clinician,
    store: Store,
    queue: Queue,
    model_name: Annotated[str | None, Query(alias="model", description="Model name")] = None,
    index_time: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 time to score every patient at")
    ] = None,
) -> JSONResponse:
    model, timeline = _fhir_timeline_model(store, model_name)
    try:  # the reader validates each resource; one that fails is refused with its reason
        read = events_from_bundle(bundle, load_ranges(timeline.ranges))
    except DataError as error:
        raise FhirInputError(operation_outcome([("invalid", str(error), None)]), 400) from None
    digest = input_hash({"bundle": bundle, "index_time": index_time}, queue.input_key)
    try:
        samples, predictions, _ = score_events(
            model, timeline, read, index_time, principal.id, queue, "fhir:timeline", digest
        )
    except QuarantinedEvents as refused:
        issues = [
            ("value", f"{count} event(s) refused: {reason} ({REASONS.get(reason, reason)})", None)
            for reason, count in refused.counts.items()
        ] + [
            ("value", f"line {row['line']}, code {row['code']}: {row['reason']}", None)
            for row in refused.rows
        ]
        raise FhirInputError(operation_outcome(issues), 422) from None
    references = _patient_references(read)
    mapping = FhirMapping(features={})
    entries = []
    for prediction, sample in zip(predictions, samples.itertuples(index=False), strict=True):
        reference = references.get(int(sample.subject_id), f"Patient/{sample.subject_id}")
        resource = risk_assessment(
            model, mapping, ExtractedRow({}, reference, []), prediction
        )
        resource["note"].insert(
            1, {"text": f"Index time {_iso(sample.index_time)} (sample {sample.sample_id})."}
        )
        entries.append({"resource": resource})
    answer = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return JSONAnswer(answer, media_type=FHIR_JSON)


def _patient_references(read: ReadResult) -> dict[int, str]:
    """``subject_id -> Patient/<id>``, as the FHIR reader numbered the Bundle's patients."""
    subjects = read.subjects
    if subjects is None or subjects.empty:
        return {}
    return {int(n): f"Patient/{fhir_id}"
            for fhir_id, n in zip(subjects["fhir_id"], subjects["subject_id"], strict=True)}
