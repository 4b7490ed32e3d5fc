"""The FastAPI application: JSON predictions, FHIR R4, CDS Hooks, admin and web page.

The routes live in :mod:`medpredict.serve.routes`, the shared state and the
dependencies that reach it in :mod:`medpredict.serve.state`, the error answers in
:mod:`medpredict.serve.errors`.

Examples
--------
>>> app = create_app(["runs/pima/model"], ServeSettings(keys_file="keys.json"))  # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from os import PathLike

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from medpredict import __version__
from medpredict.serve.config import ServeSettings
from medpredict.serve.errors import add_error_handlers
from medpredict.serve.middleware import BodyLimit, RequestLog
from medpredict.serve.responses import JSONAnswer
from medpredict.serve.routes import admin, cds, fhir, page, predict, service, timeline
from medpredict.serve.routes import forecasts as forecast_routes
from medpredict.serve.state import open_state

logger = logging.getLogger("medpredict.serve")


def check_settings(settings: ServeSettings) -> None:
    """Refuse settings unsafe in production; warn about open CORS elsewhere.

    Raises
    ------
    ValueError
        In production mode, with anonymous callers allowed or CORS open to every origin.

    Examples
    --------
    >>> check_settings(ServeSettings(production=True, allow_anonymous=True))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: production mode refuses allow_anonymous: every caller must authenticate ...
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


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.predictions.close()


def create_app(
    models: list[str | PathLike[str]],
    settings: ServeSettings | None = None,
    forecasts: list[str | PathLike[str]] | None = None,
) -> FastAPI:
    """Build the service for the given model directories.

    Parameters
    ----------
    models : model directories (see :mod:`medpredict.artifact`); each is verified
        against its manifest before it is served.
    settings : service settings; default :meth:`ServeSettings.from_env`.
    forecasts : forecast directories (``medpredict forecast`` writes them), verified the
        same way; their latest forecasts are served at ``/v1/forecasts``.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> demo = create_app([], ServeSettings(allow_anonymous=True, audit_url="sqlite://"))
    >>> TestClient(demo).get("/health").json()
    {'status': 'ok', 'models': 0}
    """
    settings = settings or ServeSettings.from_env()
    check_settings(settings)
    app = FastAPI(
        lifespan=_lifespan,
        title="medpredict",
        version=__version__,
        description="Calibrated disease-risk predictions with explanations, "
        "as JSON, FHIR R4 RiskAssessments and CDS Hooks cards. Every prediction is audited.",
        default_response_class=JSONAnswer,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.production else "/openapi.json",
    )
    open_state(app.state, models, settings, forecasts or [])
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog)
    app.include_router(service.router)
    app.include_router(admin.admin_router(app.state.store))
    app.include_router(predict.predict_router(app.state.store, settings))
    app.include_router(fhir.router)
    app.include_router(timeline.router)
    app.include_router(forecast_routes.router)
    app.include_router(cds.router)
    app.include_router(page.router)
    add_error_handlers(app)
    return app
