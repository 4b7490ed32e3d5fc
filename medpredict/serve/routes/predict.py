"""JSON predictions: what each model needs as input, and risks for rows of patient data.

Examples
--------
>>> from medpredict.serve.config import ServeSettings
>>> from medpredict.serve.models import ModelStore
>>> settings = ServeSettings()
>>> [route.path for route in predict_router(ModelStore([], settings), settings).routes]
['/v1/schemas', '/v1/models/{name}/predict']
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from medpredict.serve.config import ServeSettings
from medpredict.serve.models import ModelStore
from medpredict.serve.responses import JSONAnswer
from medpredict.serve.state import Clinician, Queue, Reader, Store, model_name
from medpredict.timeline.scoring import is_timeline


class ModelIdentity(BaseModel):
    """Exactly which model answered."""

    name: str
    version: str
    sha256: str


class Factor(BaseModel):
    """One feature's contribution to a prediction."""

    feature: str
    value: Any = None
    contribution: float = Field(description="Positive raises the risk.")
    space: str = Field(description="Scale of the contribution, e.g. log-odds.")


class BandOut(BaseModel):
    """A risk band and the interval it covers."""

    label: str
    lower: float
    upper: float
    opened_by: str | None


class HorizonRisk(BaseModel):
    """A survival model's risk of the event by one horizon."""

    horizon: float
    unit: str
    risk: float


class PredictionOut(BaseModel):
    """The answer for one patient row."""

    risk: float | None = Field(
        description="Calibrated probability of the positive class (survival models: of the "
        "event by the first horizon)."
    )
    risk_band: BandOut | None
    probabilities: dict[str, float]
    prediction: str
    conformal_set: list[str] | None = Field(
        description="Classes not excluded at the model's conformal level; null if unavailable."
    )
    conformal_status: str | None = Field(
        description="confident (one class), uncertain — refer (several), atypical — refer (none)."
    )
    top_factors: list[Factor] | None
    warnings: list[str]
    horizon_risks: list[HorizonRisk] | None = Field(
        None, description="Survival models: probability of the event by each horizon."
    )
    median_survival: float | None = Field(
        None, description="Survival models: predicted median survival time (null where the "
        "curve stays above 0.5 within the model's follow-up)."
    )
    survival_lower_bound: float | None = Field(
        None, description="Survival models: the time after which the event comes, at the "
        "model's stated confidence (conformal lower bound); null without one."
    )
    assured_event_free_to_first_horizon: bool | None = Field(
        None, description="Survival models: whether the lower bound reaches the first horizon "
        "(false: refer, the model cannot assure the patient stays event-free to it)."
    )
    benefit: dict[str, Any] | None = Field(
        None, description="Treatment-effect models: the estimated benefit of treatment "
        "(value; low and high, the 95% interval; meaning; the study's average)."
    )


class PredictResponse(BaseModel):
    """Predictions in the order of the request rows."""

    model: ModelIdentity
    audit_seq: int = Field(description="Row of the audit log recording this answer.")
    predictions: list[PredictionOut]


def request_model(served: ModelStore, settings: ServeSettings) -> type[BaseModel]:
    """The request body: 1 to ``settings.max_batch_rows`` rows, with an example row."""
    return create_model(
        "PredictRequest",
        rows=(
            list[dict[str, Any]],
            Field(min_length=1, max_length=settings.max_batch_rows,
                  description="Patients, one object per row: feature name -> value."),
        ),
        purpose=(
            Literal["care", "what-if", "test"],
            Field("care", description="Why the prediction is asked; recorded in the audit log."),
        ),
        __config__=ConfigDict(
            json_schema_extra={"examples": [{"rows": [served.all()[0].example_row()]}]}
            if served.names() else None
        ),
    )


def predict_router(served: ModelStore, settings: ServeSettings) -> APIRouter:
    """The prediction routes, documenting the models ``served`` holds."""
    router = APIRouter(tags=["predict"])
    ModelName = model_name(served)
    PredictRequest = request_model(served, settings)

    @router.get("/v1/schemas", summary="What each model needs as input")
    def schemas(_: Reader, store: Store) -> list[dict[str, Any]]:
        return [m.card() for m in store.all()]

    @router.post(
        "/v1/models/{name}/predict",
        summary="Risks for rows of patient data",
        response_class=JSONAnswer,
        responses={
            200: {"model": PredictResponse, "description": "One prediction per row"},
            422: {"description": "A field is missing, unknown or has a bad value"},
        },
    )
    async def predict(
        name: ModelName,
        body: Annotated[PredictRequest, Body()],  # type: ignore[valid-type]
        principal: Clinician,
        store: Store,
        queue: Queue,
    ) -> JSONResponse:
        model = store.get(name)
        if is_timeline(model.metadata):
            raise HTTPException(
                400, f"model {name!r} is a timeline model: it reads patients' events, not rows "
                f"of features; POST them to /v1/models/{name}/timeline"
            )
        action = "predict" if body.purpose == "care" else f"predict:{body.purpose}"
        predictions, seq = await queue.answer(
            queue.submit_rows(model, body.rows, principal, action)
        )
        # built from typed objects already; skipping response re-validation saves time
        return JSONAnswer({
            "model": model.identity,
            "audit_seq": seq,
            "predictions": [p.to_dict() for p in predictions],
        })

    return router
