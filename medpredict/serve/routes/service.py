"""Liveness: open to every caller, and says nothing but the number of models.

Examples
--------
>>> [route.path for route in router.routes]
['/health']
"""

from typing import Any

from fastapi import APIRouter

from medpredict.serve.state import Store

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness: the service and its models")
def health(store: Store) -> dict[str, Any]:
    return {"status": "ok", "models": len(store.names())}
