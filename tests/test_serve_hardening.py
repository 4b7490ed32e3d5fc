"""Attacks on the service and the predict command, each answered safely.

Models are trained on Ripley's Pima training set; requests carry real patients from
the separate Pima test set with one value made hostile. Every test counts its
attempts in ``TALLY`` and the last test prints the totals (attempts, answered
safely, 5xx) recorded in docs/serving.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
import jwt
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationoutcome import OperationOutcome
from serve_support import keys, pima_model, pima_test_patients, workdir
from test_serve_fhir import bundle, cds_request, observation
from typer.testing import CliRunner

from medpredict.artifact import load_model
from medpredict.cli import app as cli
from medpredict.data.errors import DataError
from medpredict.data.schema import Schema
from medpredict.predict import predict_frame
from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings
from medpredict.serve.rows import RowValidator

SECRET = "hardening-signing-secret-" + "z" * 20
TALLY: dict[str, Counter] = {}


def tally(attack: str, answer: httpx.Response, safe: bool) -> None:
    counts = TALLY.setdefault(attack, Counter())
    counts["attempts"] += 1
    counts["safe"] += int(safe and answer.status_code < 500)
    counts["5xx"] += int(answer.status_code >= 500)


def settings(**overrides) -> ServeSettings:
    return ServeSettings(**{
        "keys_file": keys()["file"],
        "jwt_secret": SECRET,
        "audit_url": f"sqlite:///{workdir() / f'audit-hardening-{time.monotonic_ns()}.db'}",
        "rate_limit_per_minute": 100_000,
        "rate_limit_burst": 100_000,
        **overrides,
    })


@pytest.fixture(scope="module")
def client() -> TestClient:
    client = TestClient(create_app([pima_model()], settings()), raise_server_exceptions=False)
    client.headers.update({"X-API-Key": keys()["clinician"]})
    return client


def patient(**changes) -> dict[str, float]:
    return {**pima_test_patients(1)[0], **changes}


def fields(answer: httpx.Response) -> list[str]:
    return [e["loc"][-1] for e in answer.json()["detail"]]


# ---- values that are, or become, non-finite ----------------------------------------------
@pytest.mark.parametrize(
    "raw, field",
    [('"ped": 1e308', "ped"), ('"ped": Infinity', "ped"), ('"glu": -Infinity', "glu"),
     ('"bmi": NaN', "bmi"), ('"ped": -1e308', "ped")],
    ids=["overflows-scaling", "inf", "minus-inf", "nan-number", "overflows-negative"],
)
def test_non_finite_values_are_422_naming_the_field(client, raw, field):
    row = {k: v for k, v in patient().items() if k != field}
    text = json.dumps({"rows": [pima_test_patients(2)[1], row]})[:-3] + f", {raw}}}]}}"
    answer = client.post("/v1/models/pima/predict", content=text,
                         headers={"Content-Type": "application/json"})
    tally("non-finite value, JSON", answer, answer.status_code == 422)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "rows", 1, field]


def test_non_finite_fhir_value_is_an_operation_outcome_naming_the_feature(client):
    row = patient()
    answer = client.post("/fhir/RiskAssessment/$predict",
                         json=bundle(row, drop=("ped",), extra=[observation("ped", 1e308, "p1")]))
    tally("non-finite value, FHIR", answer, answer.status_code == 422)
    assert answer.status_code == 422
    outcome = OperationOutcome.model_validate(answer.json())
    assert "feature 'ped'" in outcome.issue[0].diagnostics
    assert "too extreme" in outcome.issue[0].diagnostics


def test_non_finite_cds_value_gives_a_card_naming_the_feature(client):
    request = cds_request(patient())
    for entry in request["prefetch"]["observations"]["entry"]:
        if entry["resource"]["id"].startswith("ped-"):
            entry["resource"]["valueQuantity"]["value"] = 1e308
    answer = client.post("/cds-services/medpredict-pima", json=request)
    (card,) = answer.json()["cards"]
    tally("non-finite value, CDS Hooks", answer, "risk not computed" in card["summary"])
    assert answer.status_code == 200
    assert "risk not computed" in card["summary"] and "'ped'" in card["detail"]


def test_poisoned_requests_never_fail_other_callers():
    """Four clients send real patients while a fifth keeps sending ``ped = 1e308``.

    Requests arriving together are predicted as one batch; the poisoned ones must be
    refused alone (422) and every other request answered (200).
    """
    app = create_app([pima_model()], settings())
    good_rows = pima_test_patients(20)
    poison = [{**good_rows[0], "ped": 1e308}]
    statuses: dict[str, Counter] = {"good": Counter(), "poison": Counter()}

    async def caller(kind: str, rows: list[dict], until: float) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            while time.monotonic() < until:
                answer = await http.post("/v1/models/pima/predict", json={"rows": rows},
                                         headers={"X-API-Key": keys()["clinician"]})
                statuses[kind][answer.status_code] += 1
                tally("poisoned batch, other callers" if kind == "good"
                      else "poisoned batch, poisoner", answer,
                      answer.status_code == (200 if kind == "good" else 422))

    async def load() -> None:
        until = time.monotonic() + 3
        await asyncio.gather(
            caller("poison", poison, until), caller("poison", poison, until),
            *(caller("good", good_rows[k * 5:(k + 1) * 5], until) for k in range(4)),
        )

    asyncio.run(load())
    assert set(statuses["good"]) == {200} and statuses["good"][200] > 20
    assert set(statuses["poison"]) == {422} and statuses["poison"][422] > 5


def test_predict_command_names_the_column_and_rows_of_non_finite_values(tmp_path):
    table = pd.DataFrame(pima_test_patients(4))
    table.loc[1, "ped"] = float("inf")
    table.loc[3, "ped"] = 1e308
    table.loc[2, "bmi"] = float("-inf")
    table.to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", "--model", str(pima_model()), "--input",
                                      str(tmp_path / "new.csv"), "--output",
                                      str(tmp_path / "risks.csv")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "column 'ped' in rows 2, 4" in text and "column 'bmi' in row 3" in text
    assert "Traceback" not in result.output


# ---- physically impossible values ----------------------------------------------------------
def test_age_has_a_built_in_limit_saved_with_the_model():
    ages = next(f for f in load_model(pima_model()).metadata.data_schema["features"]
                if f["name"] == "age")
    assert (ages["limit_min"], ages["limit_max"]) == (0, 130)


@pytest.mark.parametrize("age", [-5, 131, -0.5])
def test_impossible_json_values_are_422_naming_field_and_limit(client, age):
    answer = client.post("/v1/models/pima/predict", json={"rows": [patient(age=age)]})
    tally("impossible value, JSON", answer, answer.status_code == 422)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "rows", 0, "age"]
    assert "must be 0 to 130 (physical limit)" in error["msg"]


def test_birth_date_in_the_future_is_refused(client):
    payload = bundle(patient())
    payload["entry"][0]["resource"]["birthDate"] = "2090-05-01"
    answer = client.post("/fhir/RiskAssessment/$predict", json=payload)
    tally("birth date in the future, FHIR", answer, answer.status_code == 422)
    assert answer.status_code == 422
    outcome = OperationOutcome.model_validate(answer.json())
    assert "Patient.birthDate 2090-05-01 is in the future" in outcome.issue[0].diagnostics
    request = cds_request(patient())
    request["prefetch"]["patient"]["birthDate"] = "2090"
    (card,) = client.post("/cds-services/medpredict-pima", json=request).json()["cards"]
    assert "risk not computed" in card["summary"] and "in the future" in card["detail"]


def test_partial_birth_dates_give_an_age(client):
    payload = bundle(patient())
    payload["entry"][0]["resource"]["birthDate"] = "1970"
    answer = client.post("/fhir/RiskAssessment/$predict", json=payload)
    assert answer.status_code == 200


def test_declared_limits_are_saved_and_enforced_by_predict(tmp_path):
    from medpredict.spec import parse_spec
    from medpredict.study import run_study

    spec = parse_spec({
        "name": "limits", "data": {"dataset": "pima_tr"}, "target": "type",
        "positive_class": "Yes", "models": ["logistic_regression"], "bootstrap": 0,
        "validation": {"folds": 3}, "trust": {"learning_curve": False},
        "limits": {"glu": {"min": 20, "max": 600}, "bmi": {"max": 100}},
        "output_dir": str(tmp_path / "run"),
    })
    loaded = load_model(run_study(spec, quiet=True).model_dir)
    saved = {f["name"]: (f["limit_min"], f["limit_max"])
             for f in loaded.metadata.data_schema["features"]}
    assert saved["glu"] == (20, 600) and saved["bmi"] == (None, 100)
    assert saved["age"] == (0, 130) and saved["npreg"] == (None, None)
    new = pd.DataFrame(pima_test_patients(3))
    new.loc[2, "glu"] = 700
    with pytest.raises(DataError, match=r"column 'glu' must be 20 to 600 \(physical limit\) "
                                        r"but row 3"):
        predict_frame(loaded, new)


def test_training_data_outside_declared_limits_are_refused():
    frame = pd.DataFrame({"sbp": [120.0, 80.0, 500.0], "sex": ["F", "M", "F"]})  # synthetic
    with pytest.raises(DataError, match=r"column 'sbp' must be 40 to 300 .* row 3"):
        Schema.infer(frame, limits={"sbp": {"min": 40, "max": 300}})
    with pytest.raises(DataError, match="'sex', which is not a numeric feature"):
        Schema.infer(frame, limits={"sex": {"min": 0}})


def test_age_recorded_in_months_keeps_no_limit_in_years():
    frame = pd.DataFrame({"age": [6.0, 18.0, 240.0]})  # synthetic: ages of infants in months
    (age,) = Schema.infer(frame).features
    assert (age.limit_min, age.limit_max) == (None, None)


def test_schemas_saved_before_limits_still_load_and_validate():
    saved = load_model(pima_model()).metadata.data_schema
    old = {"features": [{k: v for k, v in f.items() if not k.startswith("limit_")}
                        for f in saved["features"]]}
    assert Schema.from_dict(old).limit_violations(pd.DataFrame([patient(age=-5)])) == []
    assert RowValidator(old).validate([patient()]).frame.shape == (1, 7)


# ---- FHIR errors are OperationOutcomes -----------------------------------------------------
@pytest.mark.parametrize(
    "content, params, status",
    [(b'{"resourceType": "Bundle", ', {}, 400), (b"[]", {}, 400), (b"", {}, 400),
     (b'{"resourceType": "Bundle"}', {"model": "no-such-model"}, 404),
     (b"[" * 100_000 + b"]" * 100_000, {}, 400),
     (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, {}, 400)],
    ids=["malformed", "array", "empty", "unknown-model", "deep-array", "deep-object"],
)
def test_fhir_errors_are_operation_outcomes(client, content, params, status):
    answer = client.post("/fhir/RiskAssessment/$predict", content=content, params=params,
                         headers={"Content-Type": "application/fhir+json"})
    is_outcome = answer.headers["content-type"].startswith("application/fhir+json")
    tally("malformed FHIR request", answer, answer.status_code == status and is_outcome)
    assert answer.status_code == status and is_outcome
    assert OperationOutcome.model_validate(answer.json()).issue[0].diagnostics


@pytest.mark.parametrize("path", ["/v1/models/pima/predict", "/cds-services/medpredict-pima"])
def test_over_deep_json_is_a_400_elsewhere_too(client, path):
    answer = client.post(path, content=b'{"rows":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                         headers={"Content-Type": "application/json"})
    tally("over-deep JSON, JSON and CDS Hooks", answer, answer.status_code == 400)
    assert answer.status_code == 400


# ---- undecodable text --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [r'{"rows": [ROW], "purpose": "\ud800"}', r'{"rows": [{"glu": "\udfff"}]}',
     r'{"rows": [{"\ud800": 1}]}', r'{"rows": [ROW], "purpose": ["\udbff"]}'],
    ids=["purpose", "number-field", "row-key", "nested"],
)
def test_lone_surrogates_give_422_without_echoing_them(client, text):
    text = text.replace("ROW", json.dumps(patient()))
    answer = client.post("/v1/models/pima/predict", content=text.encode(),
                         headers={"Content-Type": "application/json"})
    tally("lone UTF-16 surrogate", answer, answer.status_code == 422)
    assert answer.status_code == 422
    assert b"\\ud" not in answer.content.lower() and "input" not in answer.json()["detail"][0]


# ---- credentials, reloads, exposure ------------------------------------------------------
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_jwt_time_claims_must_be_numbers(client, claim):
    claims = {"sub": "ehr", "roles": ["clinician"], "exp": time.time() + 60,
              claim: str(int(time.time()) + (60 if claim == "exp" else -60))}
    headers = {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256"),
               "X-API-Key": ""}
    answer = client.post("/v1/models/pima/predict", json={"rows": [patient()]},
                         headers=headers)
    tally("JWT time claim as text", answer, answer.status_code == 401)
    assert answer.status_code == 401
    claims[claim] = int(time.time()) + (60 if claim == "exp" else -60)
    headers["Authorization"] = "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")
    assert client.post("/v1/models/pima/predict", json={"rows": [patient()]},
                       headers=headers).status_code == 200


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_refused_reload_says_why_and_keeps_serving(tmp_path, damage):
    directory = Path(shutil.copytree(pima_model(), tmp_path / "pima"))
    service = TestClient(create_app([directory], settings()), raise_server_exceptions=False)
    before = service.get("/v1/models", headers={"X-API-Key": keys()["admin"]}).json()[0]
    if damage == "tamper":
        metadata = directory / "metadata.json"
        metadata.write_text(metadata.read_text() + " ")
    else:
        shutil.rmtree(directory)
    answer = service.post("/v1/models/pima/reload", headers={"X-API-Key": keys()["admin"]})
    tally("refused model reload", answer, answer.status_code == 409)
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(
        f"reload refused, still serving version {before['version']}: ")
    assert len(answer.json()["detail"]) > len("reload refused, still serving version : x")
    served = service.post("/v1/models/pima/predict", json={"rows": [patient()]},
                          headers={"X-API-Key": keys()["clinician"]})
    assert served.status_code == 200 and served.json()["model"]["sha256"] == before["sha256"]


def test_no_page_loads_anything_from_the_internet(client):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404
    for path in ("/ui/", "/ui/app.js", "/ui/app.css"):
        page = client.get(path)
        assert page.status_code == 200
        assert re.findall(r"https?://[^\s\"')]*", page.text) in ([], ["http://www.w3.org/2000/svg"])
    assert client.get("/openapi.json").status_code == 200


def test_production_hides_the_schema_and_refuses_anonymous_callers():
    production = TestClient(create_app([], settings(production=True)))
    assert production.get("/openapi.json").status_code == 404
    with pytest.raises(ValueError, match="production mode refuses allow_anonymous"):
        create_app([], settings(production=True, allow_anonymous=True))


def test_cors_open_to_every_origin_warns_and_is_refused_in_production(caplog):
    with caplog.at_level(logging.WARNING, logger="medpredict.serve"):
        create_app([], settings(cors_origins=["*"]))
    assert "CORS is open to every origin" in caplog.text
    with pytest.raises(ValueError, match="production mode refuses MEDPREDICT_CORS_ORIGINS"):
        create_app([], settings(production=True, cors_origins=["*"]))


def test_oversized_fhir_body_is_an_operation_outcome():
    small = TestClient(create_app([pima_model()], settings(max_body_bytes=2048)))
    small.headers.update({"X-API-Key": keys()["clinician"]})
    body = json.dumps(bundle(pima_test_patients(1)[0])).encode() + b" " * 4096
    answer = small.post("/fhir/RiskAssessment/$predict", content=body,
                        headers={"Content-Type": "application/fhir+json"})
    is_outcome = answer.headers["content-type"].startswith("application/fhir+json")
    tally("oversized FHIR body", answer, answer.status_code == 413 and is_outcome)
    assert answer.status_code == 413 and is_outcome
    assert OperationOutcome.model_validate(answer.json()).issue[0].code == "too-costly"


def test_zz_totals(capsys):
    """Print the table of attacks for docs/serving.md (run with ``-s`` to see it)."""
    with capsys.disabled():
        print("\n| attack | attempts | answered safely | 5xx |\n|---|---:|---:|---:|")
        for attack, counts in TALLY.items():
            print(f"| {attack} | {counts['attempts']} | {counts['safe']} | {counts['5xx']} |")
    assert all(c["5xx"] == 0 and c["safe"] == c["attempts"] for c in TALLY.values())

