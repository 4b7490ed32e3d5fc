"""CDS Hooks: discovery, and a ``patient-view`` service per model with a FHIR mapping.

Data that cannot be used is answered with a card naming what is missing, not an error.

Examples
--------
>>> [route.path for route in router.routes]
['/cds-services', '/cds-services/{service_id}']
"""

from typing import Any

from fastapi import APIRouter, HTTPException

from medpredict.serve import cds_hooks
from medpredict.serve.fhir import FhirInputError, extract_row, invalid_values, parse_bundle
from medpredict.serve.rows import RowValidationError
from medpredict.serve.state import Clinician, Mappings, Queue, Reader, Store

router = APIRouter(tags=["cds-hooks"])


@router.get("/cds-services", summary="CDS Hooks discovery")
def cds_discovery(_: Reader, store: Store, mappings: Mappings) -> dict[str, Any]:
    return {
        "services": [
            cds_hooks.describe_service(store.get(name), mapping)
            for name, mapping in sorted(mappings.items())
        ]
    }


@router.post("/cds-services/{service_id}", summary="patient-view service")
def cds_service(
    service_id: str,
    request_body: cds_hooks.CdsRequest,
    principal: Clinician,
    store: Store,
    mappings: Mappings,
    queue: Queue,
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
        predictions, _ = queue.run(
            queue.submit_rows(model, [extracted.row], principal, "cds-hooks")
        )
    except (FhirInputError, RowValidationError) as error:
        if isinstance(error, RowValidationError):
            error = invalid_values(error)
        problems = [i["diagnostics"] for i in error.outcome["issue"]]
        return {"cards": [cds_hooks.missing_data_card(model, problems)]}
    return {"cards": [cds_hooks.risk_card(model, mapping, predictions[0])]}
