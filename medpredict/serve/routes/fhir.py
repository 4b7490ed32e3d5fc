"""FHIR R4: a Bundle of Patient + Observations in, a RiskAssessment out.

Every error on these paths is answered as an OperationOutcome (see
:mod:`medpredict.serve.errors`).

Examples
--------
>>> [route.path for route in router.routes]
['/fhir/RiskAssessment/$predict']
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import JSONResponse

from medpredict.serve.fhir import (
    FhirMapping,
    extract_row,
    invalid_values,
    parse_bundle,
    risk_assessment,
)
from medpredict.serve.models import ModelStore, ServedModel
from medpredict.serve.responses import FHIR_JSON, JSONAnswer
from medpredict.serve.rows import RowValidationError
from medpredict.serve.state import Clinician, Mappings, Queue, Store

router = APIRouter(tags=["fhir"])


def fhir_model(
    store: ModelStore, mappings: dict[str, FhirMapping], name: str | None
) -> tuple[ServedModel, FhirMapping]:
    """The model named ``name`` and its mapping; with no name, the one FHIR-enabled model."""
    if name is None:
        if len(mappings) != 1:
            raise HTTPException(
                400, f"name the model with ?model=; FHIR-enabled: {sorted(mappings)}"
            )
        name = next(iter(mappings))
    model = store.get(name)
    if name not in mappings:
        raise HTTPException(400, f"model {name!r} has no FHIR mapping")
    return model, mappings[name]


@router.post(
    "/fhir/RiskAssessment/$predict",
    summary="FHIR R4: Bundle of Patient + Observations -> RiskAssessment",
    responses={
        200: {"content": {FHIR_JSON: {}}, "description": "A RiskAssessment"},
        400: {"content": {FHIR_JSON: {}}, "description": "OperationOutcome: bad Bundle"},
        422: {"content": {FHIR_JSON: {}}, "description": "OperationOutcome: data missing"},
    },
)
def fhir_predict(
    bundle: Annotated[dict[str, Any], Body(description="A FHIR R4 Bundle")],
    principal: Clinician,
    store: Store,
    mappings: Mappings,
    queue: Queue,
    model_name: Annotated[str | None, Query(alias="model", description="Model name")] = None,
) -> JSONResponse:
    model, mapping = fhir_model(store, mappings, model_name)
    extracted = extract_row(parse_bundle(bundle), mapping)
    try:
        predictions, _ = queue.run(queue.submit_rows(model, [extracted.row], principal, "fhir"))
    except RowValidationError as error:
        raise invalid_values(error) from None
    resource = risk_assessment(model, mapping, extracted, predictions[0])
    return JSONAnswer(resource, media_type=FHIR_JSON)
