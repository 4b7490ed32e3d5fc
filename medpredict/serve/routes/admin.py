"""For administrators: the served models with their hashes and metrics, and reloads.

Examples
--------
>>> from medpredict.serve.config import ServeSettings
>>> from medpredict.serve.models import ModelStore
>>> [route.path for route in admin_router(ModelStore([], ServeSettings())).routes]
['/v1/models', '/v1/models/{name}/reload']
"""

import logging
from typing import Any

from fastapi import APIRouter, HTTPException

from medpredict.artifact import ArtifactError
from medpredict.serve.models import ModelStore
from medpredict.serve.state import Admin, Store, model_name

logger = logging.getLogger("medpredict.serve")


def admin_router(served: ModelStore) -> APIRouter:
    """The admin routes, documenting the model names ``served`` holds."""
    router = APIRouter(tags=["admin"])
    ModelName = model_name(served)

    @router.get("/v1/models", summary="Served models with hashes and metrics")
    def list_models(_: Admin, store: Store) -> list[dict[str, Any]]:
        return [m.summary() for m in store.all()]

    @router.post(
        "/v1/models/{name}/reload",
        summary="Reload a model directory",
        responses={409: {"description": "Refused (directory changed or broken); the "
                                        "previous version keeps serving"}},
    )
    def reload_model(name: ModelName, _: Admin, store: Store) -> dict[str, Any]:
        try:
            return store.reload(name).summary()
        except (ArtifactError, ValueError, OSError) as error:
            logger.warning("reload of model %s refused (%s); still serving version %s",
                           name, type(error).__name__, store.get(name).version)
            raise HTTPException(
                409, f"reload refused, still serving version {store.get(name).version}: {error}"
            ) from None

    return router
