"""How the service answers errors: JSON ``detail`` bodies, or OperationOutcomes on FHIR paths.

Field errors echo the offending location and message with undecodable text
replaced, so an answer is always valid JSON. A prediction whose audit row cannot
be written is withheld with 503 and ``Retry-After``.

Examples
--------
>>> import json
>>> answer = fhir_error(404, "no model named 'x'")
>>> answer.status_code, answer.media_type
(404, 'application/fhir+json')
>>> json.loads(answer.body)["issue"][0]["code"]
'not-found'
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medpredict.serve.audit import AuditUnavailableError
from medpredict.serve.fhir import FhirInputError, operation_outcome
from medpredict.serve.models import UnknownModelError
from medpredict.serve.responses import FHIR_JSON, JSONAnswer
from medpredict.serve.rows import RowValidationError

logger = logging.getLogger("medpredict.serve")
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 409: "conflict", 413: "too-costly", 422: "processing",
               429: "throttled"}


def fhir_error(status: int, text: str) -> JSONAnswer:
    """An OperationOutcome answer whose issue code matches the HTTP ``status``."""
    outcome = operation_outcome([(ISSUE_CODES.get(status, "exception"), text, None)])
    return JSONAnswer(outcome, status_code=status, media_type=FHIR_JSON)


def _printable(value: Any) -> Any:
    """``value`` with lone surrogates (undecodable input) replaced by '?'."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir/")


def _rows_invalid(_request: Request, error: RowValidationError) -> JSONResponse:
    errors = [{**e, "loc": [_printable(part) for part in e["loc"]]} for e in error.errors]
    return JSONAnswer({"detail": errors}, status_code=422)


def _request_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": [_printable(part) for part in e["loc"]], "msg": _printable(e["msg"]),
         "type": e["type"]}
        for e in error.errors()
    ]
    if _fhir(request):
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:20])
        return fhir_error(400, f"expected a FHIR R4 Bundle (a JSON object): {where}")
    return JSONAnswer({"detail": errors}, status_code=422)


def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if _fhir(request):
        answer = fhir_error(error.status_code, str(error.detail))
        answer.headers.update(error.headers or {})
        return answer
    return JSONAnswer({"detail": error.detail}, status_code=error.status_code,
                      headers=error.headers)


def _unknown_model(request: Request, error: UnknownModelError) -> JSONResponse:
    text = f"no model named {error.args[0]!r}; served: {request.app.state.store.names()}"
    if _fhir(request):
        return fhir_error(404, text)
    return JSONAnswer({"detail": text}, status_code=404)


def _fhir_invalid(_request: Request, error: FhirInputError) -> JSONResponse:
    return JSONAnswer(error.outcome, status_code=error.status_code, media_type=FHIR_JSON)


def _audit_unavailable(request: Request, error: AuditUnavailableError) -> JSONResponse:
    logger.warning("prediction withheld: %s", error)
    text = "the audit log cannot be written just now, so no prediction is returned; retry later"
    answer = fhir_error(503, text) if _fhir(request) else JSONAnswer(
        {"detail": text}, status_code=503
    )
    answer.headers["Retry-After"] = str(error.retry_after)
    return answer


def add_error_handlers(app: FastAPI) -> None:
    """Register the service's exception handlers on ``app``.

    Examples
    --------
    >>> app = FastAPI()
    >>> add_error_handlers(app)
    >>> UnknownModelError in app.exception_handlers
    True
    """
    app.add_exception_handler(RowValidationError, _rows_invalid)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(UnknownModelError, _unknown_model)
    app.add_exception_handler(FhirInputError, _fhir_invalid)
    app.add_exception_handler(AuditUnavailableError, _audit_unavailable)
