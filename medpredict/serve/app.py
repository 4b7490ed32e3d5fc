"""The FastAPI application: JSON predictions, FHIR R4, CDS Hooks, admin and web page.

Examples
--------
>>> app = create_app(["runs/pima/model"], ServeSettings(keys_file="keys.json"))  # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""


import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from os import PathLike
from typing import Annotated, Any, Literal

import yaml
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from medpredict import __version__
from medpredict.artifact import ArtifactError
from medpredict.serve import cds_hooks
from medpredict.serve.audit import AuditLog, AuditUnavailableError, input_hash
from medpredict.serve.auth import Principal
from medpredict.serve.batching import PredictionQueue
from medpredict.serve.config import ServeSettings
from medpredict.serve.fhir import (
    FhirInputError,
    FhirMapping,
    extract_row,
    invalid_values,
    load_mappings,
    operation_outcome,
    parse_bundle,
    risk_assessment,
)
from medpredict.serve.middleware import BodyLimit, RequestLog
from medpredict.serve.models import ModelStore, RowPrediction, ServedModel, UnknownModelError
from medpredict.serve.package import MAPPING_FILE, listed_files
from medpredict.serve.rows import RowValidationError
from medpredict.serve.security import Authenticator, require

logger = logging.getLogger("medpredict.serve")
FHIR_JSON = "application/fhir+json"
Clinician = Annotated[Principal, Depends(require("clinician"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require("clinician", "admin"))]
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                405: "not-supported", 409: "conflict", 413: "too-costly", 422: "processing",
                429: "throttled"}


class JSONAnswer(JSONResponse):
    """JSON escaped to ASCII, so text that is not valid Unicode cannot break an answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


def _printable(value: Any) -> Any:
    """``value`` with lone surrogates (undecodable input) replaced by '?'."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir/")


def _fhir_error(status: int, text: str) -> JSONAnswer:
    outcome = operation_outcome([(_ISSUE_CODES.get(status, "exception"), text, None)])
    return JSONAnswer(outcome, status_code=status, media_type=FHIR_JSON)


def check_settings(settings: ServeSettings) -> None:
    """Refuse settings unsafe in production; warn about open CORS elsewhere.

    Raises
    ------
    ValueError
        In production mode, with anonymous callers allowed or CORS open to every origin.
    """
    if settings.production and settings.allow_anonymous:
        raise ValueError("production mode refuses allow_anonymous: every caller must "
                         "authenticate (API key or bearer JWT)")
    if "*" in settings.cors_origins:
        if settings.production:
            raise ValueError("production mode refuses MEDPREDICT_CORS_ORIGINS='*': "
                             "list the browser origins allowed to call the API")
        logger.warning("CORS is open to every origin ('*'): any web page a user visits "
                       "may call this service from their browser")


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


class PredictionOut(BaseModel):
    """The answer for one patient row."""

    risk: float | None = Field(description="Calibrated probability of the positive class.")
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


class PredictResponse(BaseModel):
    """Predictions in the order of the request rows."""

    model: ModelIdentity
    audit_seq: int = Field(description="Row of the audit log recording this answer.")
    predictions: list[PredictionOut]


def _model_mappings(store: ModelStore, settings: ServeSettings) -> dict[str, FhirMapping]:
    """Mappings saved in model directories, overridden by the settings' mapping file."""
    mappings: dict[str, FhirMapping] = {}
    for model in store.all():
        if MAPPING_FILE in listed_files(model.loaded.path):
            path = model.loaded.path / MAPPING_FILE
            mappings[model.name] = FhirMapping.from_dict(
                yaml.safe_load(path.read_text()), str(path)
            )
    if settings.fhir_mapping_file is not None:
        for name, mapping in load_mappings(settings.fhir_mapping_file).items():
            if name in store.names():
                mappings[name] = mapping
    for name, mapping in mappings.items():
        mapping.check_covers(store.get(name))
    return mappings


def create_app(models: list[str | PathLike[str]], settings: ServeSettings | None = None) -> FastAPI:
    """Build the service for the given model directories.

    Parameters
    ----------
    models : model directories (see :mod:`medpredict.artifact`); each is verified
        against its manifest before it is served.
    settings : service settings; default :meth:`ServeSettings.from_env`.
    """
    settings = settings or ServeSettings.from_env()
    check_settings(settings)
    store = ModelStore(list(models), settings)
    mappings = _model_mappings(store, settings)
    auth = Authenticator(settings)
    audit = AuditLog(settings.audit_url, settings.audit_chain_key)
    predictions = PredictionQueue(audit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        predictions.close()

    app = FastAPI(
        lifespan=lifespan,
        title="medpredict",
        version=__version__,
        description="Calibrated disease-risk predictions with explanations, "
        "as JSON, FHIR R4 RiskAssessments and CDS Hooks cards. Every prediction is audited.",
        default_response_class=JSONAnswer,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )
    app.state.store = store
    app.state.mappings = mappings
    app.state.auth = auth
    app.state.audit = audit
    app.state.predictions = predictions
    app.state.settings = settings
    hmac_key = (
        settings.audit_hmac_key.get_secret_value().encode() if settings.audit_hmac_key else None
    )

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog)

    @app.exception_handler(RowValidationError)
    def _rows_invalid(_request: Request, error: RowValidationError) -> JSONResponse:
        errors = [{**e, "loc": [_printable(part) for part in e["loc"]]} for e in error.errors]
        return JSONAnswer({"detail": errors}, status_code=422)

    @app.exception_handler(RequestValidationError)
    def _request_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [_printable(part) for part in e["loc"]], "msg": _printable(e["msg"]),
             "type": e["type"]}
            for e in error.errors()
        ]
        if _fhir(request):
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:20])
            return _fhir_error(400, f"expected a FHIR R4 Bundle (a JSON object): {where}")
        return JSONAnswer({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if _fhir(request):
            answer = _fhir_error(error.status_code, str(error.detail))
            answer.headers.update(error.headers or {})
            return answer
        return JSONAnswer({"detail": error.detail}, status_code=error.status_code,
                          headers=error.headers)

    @app.exception_handler(UnknownModelError)
    def _unknown_model(request: Request, error: UnknownModelError) -> JSONResponse:
        text = f"no model named {error.args[0]!r}; served: {store.names()}"
        if _fhir(request):
            return _fhir_error(404, text)
        return JSONAnswer({"detail": text}, status_code=404)

    @app.exception_handler(FhirInputError)
    def _fhir_invalid(_request: Request, error: FhirInputError) -> JSONResponse:
        return JSONAnswer(error.outcome, status_code=error.status_code, media_type=FHIR_JSON)

    @app.exception_handler(AuditUnavailableError)
    def _audit_unavailable(request: Request, error: AuditUnavailableError) -> JSONResponse:
        logger.warning("prediction withheld: %s", error)
        text = "the audit log cannot be written just now, so no prediction is returned; retry later"
        answer = _fhir_error(503, text) if _fhir(request) else JSONAnswer(
            {"detail": text}, status_code=503
        )
        answer.headers["Retry-After"] = str(error.retry_after)
        return answer

    def audited(
        principal: Principal, action: str, model: ServedModel, rows: list[dict[str, Any]]
    ) -> tuple[list[RowPrediction], int]:
        queue = app.state.predictions
        checked = model.validator.validate(rows)
        return queue.run(
            queue.submit(model, checked, principal.id, action, input_hash(rows, hmac_key))
        )

    @app.get("/health", tags=["service"], summary="Liveness: the service and its models")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(store.names())}

    ModelName = Annotated[
        str, Path(description="Model name", examples=store.names(), max_length=200)
    ]

    @app.get("/v1/models", tags=["admin"], summary="Served models with hashes and metrics")
    def list_models(_: Admin) -> list[dict[str, Any]]:
        return [m.summary() for m in store.all()]

    @app.post(
        "/v1/models/{name}/reload",
        tags=["admin"],
        summary="Reload a model directory",
        responses={409: {"description": "Refused (directory changed or broken); the "
                                        "previous version keeps serving"}},
    )
    def reload_model(name: ModelName, _: Admin) -> dict[str, Any]:
        try:
            return store.reload(name).summary()
        except (ArtifactError, ValueError, OSError) as error:
            logger.warning("reload of model %s refused (%s); still serving version %s",
                           name, type(error).__name__, store.get(name).version)
            raise HTTPException(
                409, f"reload refused, still serving version {store.get(name).version}: {error}"
            ) from None

    @app.get("/v1/schemas", tags=["predict"], summary="What each model needs as input")
    def schemas(_: Reader) -> list[dict[str, Any]]:
        return [m.card() for m in store.all()]

    request_model = create_model(
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
            json_schema_extra={"examples": [{"rows": [store.all()[0].example_row()]}]}
            if store.names() else None
        ),
    )

    @app.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        summary="Risks for rows of patient data",
        response_class=JSONAnswer,
        responses={
            200: {"model": PredictResponse, "description": "One prediction per row"},
            422: {"description": "A field is missing, unknown or has a bad value"},
        },
    )
    async def predict(
        name: ModelName,
        body: Annotated[request_model, Body()],  # type: ignore[valid-type]
        principal: Clinician,
    ) -> JSONResponse:
        model = store.get(name)
        action = "predict" if body.purpose == "care" else f"predict:{body.purpose}"
        queue = app.state.predictions
        predictions, seq = await queue.answer(queue.submit(
            model, model.validator.validate(body.rows), principal.id, action,
            input_hash(body.rows, hmac_key),
        ))
        # built from typed objects already; skipping response re-validation saves time
        return JSONAnswer({
            "model": model.identity,
            "audit_seq": seq,
            "predictions": [p.to_dict() for p in predictions],
        })

    def fhir_model(name: str | None) -> tuple[ServedModel, FhirMapping]:
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

    @app.post(
        "/fhir/RiskAssessment/$predict",
        tags=["fhir"],
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
        model_name: Annotated[str | None, Query(alias="model", description="Model name")] = None,
    ) -> JSONResponse:
        model, mapping = fhir_model(model_name)
        extracted = extract_row(parse_bundle(bundle), mapping)
        try:
            predictions, _ = audited(principal, "fhir", model, [extracted.row])
        except RowValidationError as error:
            raise invalid_values(error) from None
        resource = risk_assessment(model, mapping, extracted, predictions[0])
        return JSONAnswer(resource, media_type=FHIR_JSON)

    @app.get("/cds-services", tags=["cds-hooks"], summary="CDS Hooks discovery")
    def cds_discovery(_: Reader) -> dict[str, Any]:
        return {
            "services": [
                cds_hooks.describe_service(store.get(name), mapping)
                for name, mapping in sorted(mappings.items())
            ]
        }

    @app.post("/cds-services/{service_id}", tags=["cds-hooks"], summary="patient-view service")
    def cds_service(
        service_id: str, request_body: cds_hooks.CdsRequest, principal: Clinician
    ) -> dict[str, Any]:
        by_id = {cds_hooks.service_id(store.get(n)): n for n in mappings}
        if service_id not in by_id:
            raise HTTPException(404, f"no CDS service {service_id!r}")
        if request_body.hook != cds_hooks.HOOK:
            raise HTTPException(400, f"this service answers the {cds_hooks.HOOK!r} hook only")
        model, mapping = store.get(by_id[service_id]), mappings[by_id[service_id]]
        try:
            bundle = parse_bundle(cds_hooks.prefetch_bundle(request_body))
            extracted = extract_row(bundle, mapping)
            predictions, _ = audited(principal, "cds-hooks", model, [extracted.row])
        except (FhirInputError, RowValidationError) as error:
            if isinstance(error, RowValidationError):
                error = invalid_values(error)
            problems = [i["diagnostics"] for i in error.outcome["issue"]]
            return {"cards": [cds_hooks.missing_data_card(model, problems)]}
        return {"cards": [cds_hooks.risk_card(model, mapping, predictions[0])]}

    static = files("medpredict.serve") / "static"
    app.mount("/ui", StaticFiles(directory=str(static), html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app
