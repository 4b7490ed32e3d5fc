"""The service's shared state, and the dependencies that hand it and the caller to routes.

:func:`open_state` puts one of each object on ``app.state``: the model ``store``,
the latest population ``forecasts``, the FHIR ``mappings``, the ``auth`` checks, the
``audit`` log, the ``predictions`` queue and the ``settings``. A route asks for what it
needs by annotation (``store: Store``, ``principal: Clinician``); every dependency here
runs on the event loop, so none costs a worker thread.

Examples
--------
>>> from fastapi import FastAPI
>>> from fastapi.testclient import TestClient
>>> from medpredict.serve.config import ServeSettings
>>> app = FastAPI()
>>> open_state(app.state, [], ServeSettings(allow_anonymous=True, audit_url="sqlite://"))
>>> @app.get("/count")
... def count(store: Store) -> int:
...     return len(store.names())
>>> TestClient(app).get("/count").json()
0
"""

from collections.abc import Sequence
from concurrent.futures import Future
from os import PathLike
from typing import Annotated, Any

import yaml
from fastapi import Depends, Path, Request
from starlette.datastructures import State

from medpredict.artifact import MAPPING_FILE, ArtifactError
from medpredict.forecasting.outputs import read_latest
from medpredict.serve.audit import AuditLog, input_hash
from medpredict.serve.auth import Principal
from medpredict.serve.batching import PredictionQueue
from medpredict.serve.config import ServeSettings
from medpredict.serve.fhir import FhirMapping, load_mappings
from medpredict.serve.models import ModelStore, ServedModel
from medpredict.serve.security import Authenticator, require

Clinician = Annotated[Principal, Depends(require("clinician"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require("clinician", "admin"))]


class Predictions(PredictionQueue):
    """The prediction queue, fed raw rows: it validates them and keys their audit hash.

    Parameters
    ----------
    audit : the audit log every answer is written to before it is released.
    input_key : HMAC key for the audited input hashes; None for plain SHA-256.
    """

    def __init__(self, audit: AuditLog, input_key: bytes | None) -> None:
        super().__init__(audit)
        self.input_key = input_key

    def submit_rows(
        self, model: ServedModel, rows: list[dict[str, Any]], principal: Principal, action: str
    ) -> Future:
        """Validate ``rows`` (raises ``RowValidationError``) and queue them for ``model``."""
        checked = model.validator.validate(rows)
        return self.submit(model, checked, principal.id, action, input_hash(rows, self.input_key))


def fhir_mappings(store: ModelStore, settings: ServeSettings) -> dict[str, FhirMapping]:
    """Mappings saved in model directories, overridden by the settings' mapping file.

    Raises
    ------
    ValueError
        When a mapping leaves a model feature without a source, or names an unknown one.
    """
    mappings: dict[str, FhirMapping] = {}
    for model in store.all():
        if model.loaded.has_file(MAPPING_FILE):
            mappings[model.name] = FhirMapping.from_dict(
                yaml.safe_load(model.loaded.read_file(MAPPING_FILE).decode()),
                str(model.loaded.path / MAPPING_FILE),
            )
    if settings.fhir_mapping_file is not None:
        for name, mapping in load_mappings(settings.fhir_mapping_file).items():
            if name in store.names():
                mappings[name] = mapping
    for name, mapping in mappings.items():
        mapping.check_covers(store.get(name))
    return mappings


def load_forecasts(folders: Sequence[str | PathLike[str]]) -> dict[str, dict[str, Any]]:
    """The latest forecast of each directory by name, each checked against its manifest.

    Raises
    ------
    ValueError
        When a directory fails its manifest check or two hold forecasts of one name.
    """
    documents: dict[str, dict[str, Any]] = {}
    for folder in folders:
        try:
            document = read_latest(folder)
        except (ArtifactError, FileNotFoundError) as err:
            raise ValueError(f"forecast directory {folder}: {err}") from None
        if document["name"] in documents:
            raise ValueError(f"two forecast directories are named {document['name']!r}")
        documents[document["name"]] = document
    return documents


def open_state(
    state: State,
    models: Sequence[str | PathLike[str]],
    settings: ServeSettings,
    forecasts: Sequence[str | PathLike[str]] = (),
) -> None:
    """Load and verify ``models`` and ``forecasts``, then open the credentials and audit
    log, into ``state``.

    Raises
    ------
    ValueError
        When two directories hold models (or forecasts) of one name, a directory fails
        its manifest check, a FHIR mapping does not fit its model, or no credentials are
        configured.
    """
    state.forecasts = load_forecasts(forecasts)
    store = ModelStore(list(models), settings)
    state.store = store
    state.mappings = fhir_mappings(store, settings)
    state.auth = Authenticator(settings)
    state.audit = AuditLog(settings.audit_url, settings.audit_chain_key)
    key = settings.audit_hmac_key
    state.predictions = Predictions(state.audit, key.get_secret_value().encode() if key else None)
    state.settings = settings


async def _store(request: Request) -> ModelStore:
    return request.app.state.store


async def _mappings(request: Request) -> dict[str, FhirMapping]:
    return request.app.state.mappings


async def _predictions(request: Request) -> Predictions:
    return request.app.state.predictions


Store = Annotated[ModelStore, Depends(_store)]
Mappings = Annotated[dict[str, FhirMapping], Depends(_mappings)]
Queue = Annotated[Predictions, Depends(_predictions)]


def model_name(store: ModelStore) -> Any:
    """The ``{name}`` path parameter, documented with the names ``store`` serves."""
    return Annotated[str, Path(description="Model name", examples=store.names(), max_length=200)]
