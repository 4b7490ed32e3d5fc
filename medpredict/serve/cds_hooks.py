"""CDS Hooks: a ``patient-view`` service per model with a FHIR mapping.

The EHR calls discovery (``GET /cds-services``), then, when a clinician opens a
chart, ``POST /cds-services/{id}`` with the patient and the mapped Observations
as prefetch. The service answers with one card: the risk, its band, the
conformal set when the model has one, and the factors behind it. The service
never calls back into the EHR, so all data must come as prefetch; when some is
missing the card says which measurements are needed instead of guessing.

Examples
--------
>>> indicator_for("high"), indicator_for("low")
('warning', 'info')
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medpredict.serve.fhir import FhirMapping
from medpredict.serve.models import RowPrediction, ServedModel

HOOK = "patient-view"
_INDICATORS = {"high": "warning", "very high": "critical"}


class CdsRequest(BaseModel):
    """The part of a CDS Hooks request this service reads."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(description="Must be 'patient-view'.")
    hookInstance: str = Field(description="UUID of this hook call.")
    context: dict[str, Any] = Field(description="Hook context; holds patientId.")
    prefetch: dict[str, Any] | None = Field(
        None, description="'patient' (Patient) and 'observations' (searchset Bundle)."
    )


def service_id(model: ServedModel) -> str:
    """The CDS service id of a model."""
    return f"medpredict-{model.name}"


def describe_service(model: ServedModel, mapping: FhirMapping) -> dict[str, Any]:
    """Discovery entry with prefetch templates for the mapped Observations."""
    outcome = mapping.outcome.get("text") or f"{model.metadata.target}"
    return {
        "hook": HOOK,
        "id": service_id(model),
        "title": f"{outcome} risk ({model.name} {model.version})",
        "description": f"Predicted risk of {outcome} with its main factors, "
        f"from medpredict model {model.name}.",
        "prefetch": {
            "patient": "Patient/{{context.patientId}}",
            "observations": "Observation?subject={{context.patientId}}&code="
            + ",".join(mapping.observation_codes()),
        },
    }


def prefetch_bundle(request: CdsRequest) -> dict[str, Any]:
    """A collection Bundle of the prefetched Patient and Observations."""
    prefetch = request.prefetch or {}
    entries = []
    if isinstance(prefetch.get("patient"), dict):
        entries.append({"resource": prefetch["patient"]})
    observations = prefetch.get("observations")
    if isinstance(observations, dict):
        entries.extend(
            {"resource": e["resource"]}
            for e in observations.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def indicator_for(band: str | None) -> str:
    """Card urgency from the risk band: high -> warning, very high -> critical."""
    return _INDICATORS.get(band or "", "info")


def _source(model: ServedModel) -> dict[str, Any]:
    return {"label": f"medpredict {model.name} {model.version}"}


def risk_card(
    model: ServedModel, mapping: FhirMapping, prediction: RowPrediction
) -> dict[str, Any]:
    """The card for a computed risk."""
    outcome = mapping.outcome.get("text") or str(model.metadata.target)
    band = prediction.band.label if prediction.band else None
    if prediction.horizon_risks is not None:
        summary = f"{outcome}: risk " + ", ".join(
            f"{h['risk']:.0%} by {h['horizon']:g} {h['unit']}".rstrip()
            for h in prediction.horizon_risks
        )
    elif prediction.benefit is not None:
        summary = f"{outcome}: treatment benefit {100 * prediction.benefit['value']:+.1f} points"
    elif prediction.risk is not None:
        summary = f"{outcome}: risk {prediction.risk:.0%}" + (f" ({band})" if band else "")
    else:
        summary = f"{outcome}: most likely {prediction.prediction}"
    lines = [f"**{summary}**", ""]
    if prediction.horizon_risks is not None or prediction.benefit is not None:
        lines.append(f"Predicted {prediction.prediction}.")
    if prediction.conformal_set is not None:
        lines.append(
            "Plausible outcomes (conformal set): " + ", ".join(prediction.conformal_set) + "."
        )
    if prediction.factors:
        lines.append("Main factors:")
        for factor in prediction.factors:
            arrow = "raises" if factor["contribution"] > 0 else "lowers"
            lines.append(f"- {factor['feature']} = {factor['value']} ({arrow} the risk)")
    lines.extend(f"- ⚠ {w}" for w in prediction.warnings)
    intended = model.metadata.intended_use
    if intended:
        lines += ["", f"Intended use: {intended}"]
    lines += ["", f"Model {model.name} {model.version}, sha256 {model.sha256[:12]}…"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary[:140],
        "indicator": indicator_for(band),
        "detail": "\n".join(lines),
        "source": _source(model),
    }


def missing_data_card(model: ServedModel, problems: list[str]) -> dict[str, Any]:
    """The card when the prefetch lacks what the model needs."""
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"{model.name}: risk not computed, {len(problems)} input(s) missing or unusable",
        "indicator": "info",
        "detail": "\n".join(f"- {p}" for p in problems),
        "source": _source(model),
    }
