"""FHIR R4 in and out: Bundle of Patient + Observations -> model row -> RiskAssessment.

A mapping (YAML or JSON) says which coded Observation, in which unit, feeds each
model feature::

    models:
      pima:
        outcome: {text: Type 2 diabetes (WHO criteria)}
        features:
          glu: {system: http://loinc.org, code: 1518-0, unit: mg/dL,
                convert: {mmol/L: 18.016}}
          age: {patient: age}

``unit`` is the UCUM code the model was trained in; ``convert`` lists other units
accepted, with the factor that turns them into ``unit``; any other unit is
refused. ``patient: age`` takes the age in whole years from ``Patient.birthDate`` (a partial
date counts from its first day; a birth date in the future is refused).
``required: false`` lets a feature be absent (the model imputes it); every other
missing feature is named in an ``OperationOutcome``.

Resources are parsed and the answer validated with the ``fhir.resources.R4B``
models, so what leaves the service is structurally valid FHIR.

Examples
--------
>>> mapping = FhirMapping.from_dict({"features": {"bmi": {"system": "http://loinc.org",
...     "code": "39156-5", "unit": "kg/m2"}}})
>>> mapping.features["bmi"].describe()
'http://loinc.org|39156-5 (kg/m2)'
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment
from pydantic import ValidationError

from medpredict.serve.models import RowPrediction, ServedModel
from medpredict.serve.rows import RowValidationError

UCUM = "http://unitsofmeasure.org"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
MODEL_SYSTEM = "urn:medpredict:model"
_USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}
_PATIENT_SOURCES = {"age"}


class FhirInputError(ValueError):
    """The FHIR input cannot be used; ``outcome`` is the OperationOutcome to return."""

    def __init__(self, outcome: dict[str, Any], status_code: int) -> None:
        super().__init__("; ".join(i.get("diagnostics", "") for i in outcome["issue"]))
        self.outcome = outcome
        self.status_code = status_code


def operation_outcome(issues: list[tuple[str, str, str | None]]) -> dict[str, Any]:
    """A validated OperationOutcome from ``(code, diagnostics, expression)`` triples."""
    resource = OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": code, "diagnostics": text,
                 **({"expression": [expression]} if expression else {})}
                for code, text, expression in issues
            ],
        }
    )
    return json.loads(resource.model_dump_json(exclude_none=True))


@dataclass(frozen=True)
class FeatureSource:
    """Where one model feature comes from in FHIR."""

    feature: str
    system: str | None = None
    code: str | None = None
    unit: str | None = None
    convert: dict[str, float] = field(default_factory=dict)
    patient: str | None = None
    required: bool = True
    display: str | None = None

    def describe(self) -> str:
        """Human-readable source, used in error messages."""
        if self.patient:
            return f"Patient.{'birthDate' if self.patient == 'age' else self.patient}"
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.system}|{self.code}{unit}"


@dataclass
class FhirMapping:
    """Feature sources for one model and the outcome its risk is about."""

    features: dict[str, FeatureSource]
    outcome: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], context: str = "mapping") -> FhirMapping:
        """Build from ``{"features": {...}, "outcome": {...}}``; errors name the entry."""
        if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
            raise ValueError(f"{context}: expected a 'features' mapping")
        allowed = set(FeatureSource.__dataclass_fields__) - {"feature"}
        sources = {}
        for name, entry in data["features"].items():
            where = f"{context}: feature {name!r}"
            if not isinstance(entry, dict) or set(entry) - allowed:
                raise ValueError(f"{where}: expected keys among {sorted(allowed)}, got {entry}")
            source = FeatureSource(feature=name, **entry)
            if source.patient is None and not (source.system and source.code):
                raise ValueError(f"{where}: needs 'system' and 'code', or 'patient'")
            if source.patient is not None and source.patient not in _PATIENT_SOURCES:
                raise ValueError(f"{where}: 'patient' must be one of {sorted(_PATIENT_SOURCES)}")
            sources[name] = source
        return cls(sources, dict(data.get("outcome") or {}))

    def check_covers(self, model: ServedModel) -> None:
        """Raise if a model feature has no source or a source names no model feature."""
        missing = [n for n in model.validator.names if n not in self.features]
        unknown = [n for n in self.features if n not in model.validator.names]
        if missing or unknown:
            raise ValueError(
                f"FHIR mapping for model {model.name!r}: no source for {missing or 'none'}; "
                f"sources for unknown features {unknown or 'none'}"
            )

    def observation_codes(self) -> list[str]:
        """``system|code`` tokens of all Observation sources (for FHIR searches)."""
        return [f"{s.system}|{s.code}" for s in self.features.values() if s.patient is None]


def load_mappings(path: str | Path) -> dict[str, FhirMapping]:
    """Read a mapping file: ``{"models": {name: {"features": ..., "outcome": ...}}}``."""
    path = Path(path)
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError(f"{path}: expected a top-level 'models' mapping")
    return {
        name: FhirMapping.from_dict(entry, f"{path}: model {name!r}")
        for name, entry in data["models"].items()
    }


@dataclass
class ExtractedRow:
    """A model row read from FHIR, with the references it was based on."""

    row: dict[str, Any]
    patient_reference: str
    basis: list[str]


def _reference(entry: Any, resource: Any) -> str:
    if resource.id:
        return f"{resource.get_resource_type()}/{resource.id}"
    return entry.fullUrl or resource.get_resource_type()


def parse_bundle(payload: Any) -> Bundle:
    """Validate a Bundle with the R4B models; raise :class:`FhirInputError` (400)."""
    try:
        return Bundle.model_validate(payload)
    except ValidationError as error:
        issues = [
            ("structure", f"{'.'.join(map(str, e['loc'])) or 'Bundle'}: {e['msg']}", None)
            for e in error.errors(include_url=False, include_input=False)[:20]
        ]
        raise FhirInputError(operation_outcome(issues), 400) from None


def extract_row(bundle: Bundle, mapping: FhirMapping, today: date | None = None) -> ExtractedRow:
    """Read one patient's model features from a Bundle.

    Raises
    ------
    FhirInputError
        400 if the Bundle does not hold exactly one Patient; 422 naming every
        required feature without a usable Observation and every unit refused.
    """
    today = today or datetime.now(UTC).date()
    entries = [(e, e.resource) for e in bundle.entry or [] if e.resource is not None]
    patients = [(e, r) for e, r in entries if r.get_resource_type() == "Patient"]
    if len(patients) != 1:
        raise FhirInputError(
            operation_outcome([("required", f"the Bundle must hold exactly one Patient, "
                                f"found {len(patients)}", "Bundle.entry")]), 400)
    patient_entry, patient = patients[0]
    patient_ref = _reference(patient_entry, patient)
    observations = [
        (e, r) for e, r in entries
        if r.get_resource_type() == "Observation" and (r.status or "") in _USABLE_STATUS
        and (r.subject is None or r.subject.reference in (patient_ref, patient_entry.fullUrl))
    ]
    row: dict[str, Any] = {}
    basis: list[str] = []
    issues: list[tuple[str, str, str | None]] = []
    for name, source in mapping.features.items():
        if source.patient == "age":
            if patient.birthDate is None:
                if source.required:
                    issues.append(("required", f"feature {name!r} needs Patient.birthDate",
                                   "Patient.birthDate"))
                row[name] = None
            elif (born := _birth_date(patient.birthDate)) > today:
                issues.append(("value", f"Patient.birthDate {patient.birthDate} is in the "
                               f"future (today is {today.isoformat()})", "Patient.birthDate"))
                row[name] = None
            else:
                row[name] = _age(born, today)
            continue
        found = [(e, r) for e, r in observations if _has_code(r, source)]
        if not found:
            if source.required:
                issues.append(("required", f"missing Observation for feature {name!r}: "
                               f"{source.describe()}", "Bundle.entry"))
            row[name] = None
            continue
        entry, obs = max(found, key=lambda pair: _when(pair[1]))
        value, problem = _value(obs, source)
        if problem:
            issues.append(("value", f"{_reference(entry, obs)} for feature {name!r}: {problem}",
                           None))
        row[name] = value
        basis.append(_reference(entry, obs))
    if issues:
        raise FhirInputError(operation_outcome(issues), 422)
    return ExtractedRow(row, patient_ref, basis)


def invalid_values(error: RowValidationError) -> FhirInputError:
    """The 422 OperationOutcome for FHIR values the model's schema refuses."""
    issues = [
        ("value", f"feature {e['loc'][-1]!r}: {e['msg']}", None) for e in error.errors
    ]
    return FhirInputError(operation_outcome(issues), 422)


def _has_code(observation: Any, source: FeatureSource) -> bool:
    codings = (observation.code.coding or []) if observation.code else []
    return any(c.system == source.system and c.code == source.code for c in codings)


def _when(observation: Any) -> str:
    moment = observation.effectiveDateTime or observation.issued
    return moment.isoformat() if moment is not None else ""


def _birth_date(value: date | str) -> date:
    """A FHIR date; a partial one (``YYYY`` or ``YYYY-MM``) counts from its first day."""
    if isinstance(value, date):
        return value
    parts = [int(p) for p in str(value).split("-")]
    return date(*parts, *[1] * (3 - len(parts)))


def _age(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _value(observation: Any, source: FeatureSource) -> tuple[Any, str | None]:
    if observation.valueQuantity is not None:
        quantity = observation.valueQuantity
        if quantity.value is None:
            return None, "valueQuantity has no value"
        unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
        value = float(quantity.value)
        if source.unit is None or unit == source.unit:
            return value, None
        if unit in source.convert:
            return value * float(source.convert[unit]), None
        accepted = ", ".join([source.unit, *source.convert])
        return None, f"unit {unit!r} is not accepted; expected {accepted} (UCUM)"
    for attribute in ("valueInteger", "valueBoolean", "valueString"):
        value = getattr(observation, attribute)
        if value is not None:
            if source.unit not in (None, "1", "{#}") and attribute != "valueString":
                return None, f"{attribute} has no unit; expected a valueQuantity in {source.unit}"
            return value, None
    if observation.valueCodeableConcept is not None:
        concept = observation.valueCodeableConcept
        codings = concept.coding or []
        return (codings[0].code if codings else concept.text), None
    return None, "no value (valueQuantity, valueInteger, valueBoolean, valueCodeableConcept)"


def risk_assessment(
    model: ServedModel,
    mapping: FhirMapping,
    extracted: ExtractedRow,
    prediction: RowPrediction,
) -> dict[str, Any]:
    """A validated R4 RiskAssessment for one patient's prediction."""
    target = model.metadata.target
    outcome = mapping.outcome or {"text": f"{target} = {model.positive_class}"}
    predictions = []
    if prediction.horizon_risks is not None:
        predictions = [
            {"outcome": outcome, "probabilityDecimal": round(item["risk"], 6),
             "whenRange": {"high": {"value": item["horizon"], "unit": item["unit"]}}}
            for item in prediction.horizon_risks
        ]
    elif prediction.risk is not None:
        band = prediction.band
        item: dict[str, Any] = {"outcome": outcome, "probabilityDecimal": round(prediction.risk, 6)}
        if band is not None and band.fhir_code:
            item["qualitativeRisk"] = {
                "coding": [{"system": RISK_PROBABILITY, "code": band.fhir_code}],
                "text": band.label,
            }
        predictions.append(item)
    else:
        predictions = [
            {"outcome": {"text": label}, "probabilityDecimal": round(p, 6)}
            for label, p in prediction.probabilities.items()
        ]
    notes = [f"Model {model.name} version {model.version}, sha256 {model.sha256}."]
    if prediction.horizon_risks is not None or prediction.benefit is not None:
        notes.append(f"Predicted {prediction.prediction}.")
    if prediction.conformal_set is not None:
        notes.append("Conformal prediction set: {" + ", ".join(prediction.conformal_set) + "}.")
    if prediction.factors:
        notes.append("Top factors: " + "; ".join(_factor_text(f) for f in prediction.factors) + ".")
    notes.extend(prediction.warnings)
    resource = RiskAssessment.model_validate(
        {
            "resourceType": "RiskAssessment",
            "id": str(uuid.uuid4()),
            "status": "final",
            "subject": {"reference": extracted.patient_reference},
            "occurrenceDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
            "method": {
                "coding": [{"system": MODEL_SYSTEM, "code": model.name, "version": model.version}],
                "text": f"medpredict model {model.name} {model.version}",
            },
            "basis": [{"reference": ref} for ref in extracted.basis],
            "prediction": predictions,
            "note": [{"text": text} for text in notes],
            **({"mitigation": prediction.prediction} if prediction.benefit is not None else {}),
        }
    )
    return json.loads(resource.model_dump_json(exclude_none=True))


def _factor_text(factor: dict[str, Any]) -> str:
    direction = "raises" if factor["contribution"] > 0 else "lowers"
    return f"{factor['feature']} = {factor['value']} {direction} the risk"
