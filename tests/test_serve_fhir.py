"""FHIR R4 and CDS Hooks against the running app, with real Pima test-set patients.

Each patient's measurements are sent as LOINC-coded Observations in a Bundle; the
returned RiskAssessment is validated with the fhir.resources R4B models and its
probability must equal the JSON endpoint's risk for the same values.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
import yaml
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment
from serve_support import (
    MAPPING_FILE,
    keys,
    pima_gbm_model,
    pima_model,
    pima_test_patients,
    workdir,
)

from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

UCUM = "http://unitsofmeasure.org"
SOURCES = yaml.safe_load(MAPPING_FILE.read_text())["models"]["pima"]["features"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    settings = ServeSettings(keys_file=keys()["file"],
                             audit_url=f"sqlite:///{workdir() / 'audit-fhir.db'}")
    client = TestClient(create_app([pima_model(), pima_gbm_model()], settings))
    client.headers.update({"X-API-Key": keys()["clinician"]})
    return client


def observation(feature: str, value: float, patient: str, unit: str | None = None,
                when: str = "2024-03-01T09:00:00Z", status: str = "final") -> dict:
    source = SOURCES[feature]
    resource = {
        "resourceType": "Observation",
        "id": f"{feature}-{uuid.uuid4().hex[:8]}",
        "status": status,
        "code": {"coding": [{"system": source["system"], "code": source["code"]}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
    if feature == "npreg":
        resource["valueInteger"] = int(value)
    else:
        unit = unit or source["unit"]
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return resource


def bundle(row: dict[str, float], drop: tuple[str, ...] = (), extra: list | None = None) -> dict:
    today = date.today()
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female",
               "birthDate": date(today.year - int(row["age"]), 1, 1).isoformat()}
    observations = [observation(f, row[f], "p1") for f in SOURCES
                    if f != "age" and f not in drop]
    resources = [patient, *observations, *(extra or [])]
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources]}


def json_risk(client: TestClient, row: dict[str, float]) -> float:
    answer = client.post("/v1/models/pima/predict", json={"rows": [row]})
    return answer.json()["predictions"][0]["risk"]


def fhir(client: TestClient, payload: dict, **params):
    return client.post("/fhir/RiskAssessment/$predict", json=payload, params=params,
                       headers={"Content-Type": "application/fhir+json"})


def test_round_trip_gives_a_valid_risk_assessment_equal_to_the_json_risk(client):
    for row in pima_test_patients(5):
        answer = fhir(client, bundle(row))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/fhir+json")
        assessment = RiskAssessment.model_validate(answer.json())
        assert assessment.status == "final"
        assert assessment.subject.reference == "Patient/p1"
        assert len(assessment.basis) == 6
        prediction = assessment.prediction[0]
        assert float(prediction.probabilityDecimal) == pytest.approx(json_risk(client, row),
                                                                      abs=1e-6)
        assert prediction.qualitativeRisk.coding[0].code in {"low", "moderate", "high"}
        assert prediction.outcome.text == "Type 2 diabetes (WHO criteria)"
        assert assessment.method.coding[0].code == "pima"
        assert any(n.text.startswith("Top factors:") for n in assessment.note)


def test_units_are_converted_or_refused(client):
    row = pima_test_patients(1)[0]
    in_mmol = observation("glu", row["glu"] / 18.016, "p1", unit="mmol/L")
    converted = fhir(client, bundle(row, drop=("glu",), extra=[in_mmol]))
    assert converted.status_code == 200
    assert converted.json()["prediction"][0]["probabilityDecimal"] == pytest.approx(
        json_risk(client, row), abs=1e-6)
    wrong = observation("bp", row["bp"], "p1", unit="kPa")
    refused = fhir(client, bundle(row, drop=("bp",), extra=[wrong]))
    assert refused.status_code == 422
    outcome = OperationOutcome.model_validate(refused.json())
    assert "'bp'" in outcome.issue[0].diagnostics
    assert "'kPa' is not accepted; expected mm[Hg]" in outcome.issue[0].diagnostics


def test_missing_observations_give_an_operation_outcome_naming_them(client):
    row = pima_test_patients(1)[0]
    voided = observation("bmi", row["bmi"], "p1", status="entered-in-error")
    answer = fhir(client, bundle(row, drop=("glu", "bmi"), extra=[voided]))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = OperationOutcome.model_validate(answer.json())
    texts = sorted(i.diagnostics for i in outcome.issue)
    assert texts == [
        "missing Observation for feature 'bmi': http://loinc.org|39156-5 (kg/m2)",
        "missing Observation for feature 'glu': http://loinc.org|1518-0 (mg/dL)",
    ]
    assert {i.code for i in outcome.issue} == {"required"}


def test_latest_observation_wins_and_other_patients_are_ignored(client):
    row = pima_test_patients(1)[0]
    old = observation("glu", 60.0, "p1", when="2019-01-01T00:00:00Z")
    stranger = observation("glu", 199.0, "someone-else", when="2025-01-01T00:00:00Z")
    answer = fhir(client, bundle(row, extra=[old, stranger]))
    assert answer.status_code == 200
    assert answer.json()["prediction"][0]["probabilityDecimal"] == pytest.approx(
        json_risk(client, row), abs=1e-6)


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"resourceType": "Patient", "id": "x"}, "expects resource type"),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "exactly one Patient"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": 5}]}, "entry"),
    ],
    ids=["not-a-bundle", "no-patient", "malformed-entry"],
)
def test_bad_bundles_give_400_operation_outcomes(client, payload, expected):
    answer = fhir(client, payload)
    assert answer.status_code == 400
    outcome = OperationOutcome.model_validate(answer.json())
    assert expected in " ".join(i.diagnostics for i in outcome.issue)


def test_fhir_needs_a_clinician_and_a_mapped_model(client):
    row = pima_test_patients(1)[0]
    anonymous = client.post("/fhir/RiskAssessment/$predict", json=bundle(row),
                            headers={"X-API-Key": "wrong"})
    assert anonymous.status_code == 401
    assert fhir(client, bundle(row), model="pima-gbm").status_code == 400


def test_mapping_file_must_cover_every_feature(tmp_path):
    entry = yaml.safe_load(MAPPING_FILE.read_text())["models"]["pima"]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"models": {"pima-gbm": entry}}))
    settings = ServeSettings(keys_file=keys()["file"], audit_url="sqlite://",
                             fhir_mapping_file=good)
    app = create_app([pima_gbm_model()], settings)
    assert list(app.state.mappings) == ["pima-gbm"]
    del entry["features"]["ped"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": {"pima-gbm": entry}}))
    with pytest.raises(ValueError, match=r"no source for \['ped'\]"):
        create_app([pima_gbm_model()], settings.model_copy(update={"fhir_mapping_file": bad}))


# ---- CDS Hooks ------------------------------------------------------------------------
def cds_request(row: dict[str, float] | None, drop: tuple[str, ...] = ()) -> dict:
    request = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
               "context": {"userId": "Practitioner/1", "patientId": "p1"}}
    if row is not None:
        entries = bundle(row, drop=drop)["entry"]
        request["prefetch"] = {
            "patient": entries[0]["resource"],
            "observations": {"resourceType": "Bundle", "type": "searchset",
                             "entry": entries[1:]},
        }
    return request


def test_cds_discovery_lists_the_patient_view_service(client):
    services = client.get("/cds-services").json()["services"]
    assert [s["id"] for s in services] == ["medpredict-pima"]
    service = services[0]
    assert service["hook"] == "patient-view"
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|1518-0" in service["prefetch"]["observations"]


def test_cds_patient_view_card_carries_risk_and_reasons(client):
    row = max(pima_test_patients(20), key=lambda r: r["glu"])
    answer = client.post("/cds-services/medpredict-pima", json=cds_request(row))
    assert answer.status_code == 200
    (card,) = answer.json()["cards"]
    risk = json_risk(client, row)
    assert card["summary"].startswith(f"Type 2 diabetes (WHO criteria): risk {risk:.0%}")
    assert len(card["summary"]) <= 140
    assert card["indicator"] in {"info", "warning", "critical"}
    assert "Main factors:" in card["detail"] and "glu = " in card["detail"]
    assert card["source"]["label"].startswith("medpredict pima")


def test_cds_without_prefetch_says_what_is_missing(client):
    answer = client.post("/cds-services/medpredict-pima", json=cds_request(None))
    (card,) = answer.json()["cards"]
    assert "risk not computed" in card["summary"]
    row = pima_test_patients(1)[0]
    partial = client.post("/cds-services/medpredict-pima", json=cds_request(row, drop=("bp",)))
    (card,) = partial.json()["cards"]
    assert "1 input(s) missing" in card["summary"] and "'bp'" in card["detail"]


def test_cds_refuses_unknown_services_hooks_and_callers(client):
    row = pima_test_patients(1)[0]
    assert client.post("/cds-services/unknown", json=cds_request(row)).status_code == 404
    wrong_hook = cds_request(row) | {"hook": "order-sign"}
    assert client.post("/cds-services/medpredict-pima", json=wrong_hook).status_code == 400
    assert client.post("/cds-services/medpredict-pima", json=cds_request(row),
                       headers={"X-API-Key": keys()["admin"]}).status_code == 403


def test_values_the_schema_refuses_give_an_operation_outcome(client):
    row = pima_test_patients(1)[0]
    text = observation("glu", row["glu"], "p1")
    del text["valueQuantity"]
    text["valueString"] = "high"
    answer = fhir(client, bundle(row, drop=("glu",), extra=[text]))
    assert answer.status_code == 422
    outcome = OperationOutcome.model_validate(answer.json())
    assert outcome.issue[0].diagnostics.startswith("feature 'glu': Input should be a valid number")
