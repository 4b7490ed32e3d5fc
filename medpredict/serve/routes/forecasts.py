"""Population forecasts: the latest forecast of each served forecast directory, as JSON.

Forecast directories (``medpredict forecast`` writes them) are verified against their
manifest when the service starts, read once and served from memory. They hold counts
per location, no patient data, so reading one writes no prediction audit record.

Examples
--------
>>> [route.path for route in router.routes]
['/v1/forecasts', '/v1/forecasts/{name}']
"""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from medpredict.serve.state import Reader

router = APIRouter(tags=["forecasts"])


def _documents(request: Request) -> dict[str, dict[str, Any]]:
    return request.app.state.forecasts


@router.get("/v1/forecasts", summary="Served population forecasts")
def list_forecasts(_: Reader, request: Request) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "model": doc["model"],
            "reference_date": doc["reference_date"],
            "data_through": doc["data_through"],
            "locations": len(doc["locations"]),
            "relative_wis": doc["evaluation"]["relative_wis"],
        }
        for name, doc in _documents(request).items()
    ]


@router.get("/v1/forecasts/{name}", summary="The latest forecast: quantiles per location")
def latest_forecast(
    name: str,
    _: Reader,
    request: Request,
    location: Annotated[list[str] | None, Query(description="Only these locations.")] = None,
) -> dict[str, Any]:
    documents = _documents(request)
    if name not in documents:
        known = ", ".join(documents) or "none"
        raise HTTPException(404, f"no forecast named {name!r}; served: {known}")
    document = documents[name]
    if not location:
        return document
    codes = {entry["location"] for entry in document["locations"]}
    unknown = [code for code in location if code not in codes]
    if unknown:
        shown = ", ".join(sorted(codes)[:10])
        raise HTTPException(
            404, f"forecast {name!r} has no location {', '.join(unknown)}; it has {shown} ..."
        )
    chosen = [entry for entry in document["locations"] if entry["location"] in location]
    return {**document, "locations": chosen}
