"""The service's route table: every path, method, tag and summary the API has always had.

Most checks build the app without models (the routes do not depend on them); the
last one serves the Pima model to check that the schema documents it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from serve_support import FEATURES, keys, pima_model

from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

ROUTES = {
    ("GET", "/health"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models/{name}/reload"),
    ("GET", "/v1/schemas"),
    ("POST", "/v1/models/{name}/predict"),
    ("POST", "/v1/models/{name}/timeline"),
    ("POST", "/fhir/RiskAssessment/$timeline"),
    ("POST", "/fhir/RiskAssessment/$predict"),
    ("GET", "/cds-services"),
    ("POST", "/cds-services/{service_id}"),
    ("GET", "/v1/forecasts"),
    ("GET", "/v1/forecasts/{name}"),
    ("*", "/ui"),  # the web page's static files: a mount answers every method
    ("GET", "/"),
}
SCHEMA = {("GET", "/openapi.json"), ("HEAD", "/openapi.json")}
OPERATIONS = {  # (method, path): (tag, summary, operationId)
    ("post", "/v1/models/{name}/timeline"): (
        "predict", "Risks of a timeline model from patients' events (MEDS rows)",
        "timeline_predict_v1_models__name__timeline_post"),
    ("post", "/fhir/RiskAssessment/$timeline"): (
        "fhir", "FHIR R4: Bundle of patients' resources -> RiskAssessments of a timeline model",
        "fhir_timeline_fhir_RiskAssessment__timeline_post"),
    ("get", "/health"): ("service", "Liveness: the service and its models", "health_health_get"),
    ("get", "/v1/models"): (
        "admin", "Served models with hashes and metrics", "list_models_v1_models_get"),
    ("post", "/v1/models/{name}/reload"): (
        "admin", "Reload a model directory", "reload_model_v1_models__name__reload_post"),
    ("get", "/v1/schemas"): (
        "predict", "What each model needs as input", "schemas_v1_schemas_get"),
    ("post", "/v1/models/{name}/predict"): (
        "predict", "Risks for rows of patient data", "predict_v1_models__name__predict_post"),
    ("post", "/fhir/RiskAssessment/$predict"): (
        "fhir", "FHIR R4: Bundle of Patient + Observations -> RiskAssessment",
        "fhir_predict_fhir_RiskAssessment__predict_post"),
    ("get", "/v1/forecasts"): (
        "forecasts", "Served population forecasts", "list_forecasts_v1_forecasts_get"),
    ("get", "/v1/forecasts/{name}"): (
        "forecasts", "The latest forecast: quantiles per location",
        "latest_forecast_v1_forecasts__name__get"),
    ("get", "/cds-services"): (
        "cds-hooks", "CDS Hooks discovery", "cds_discovery_cds_services_get"),
    ("post", "/cds-services/{service_id}"): (
        "cds-hooks", "patient-view service", "cds_service_cds_services__service_id__post"),
}


def settings(**overrides) -> ServeSettings:
    return ServeSettings(keys_file=keys()["file"], audit_url="sqlite://", **overrides)


def served(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route, looking inside included routers."""
    pairs = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ["*"]:
            pairs.add((method, route.path))
    return pairs


def test_the_routes_are_exactly_those_of_the_api():
    assert served(create_app([], settings())) == ROUTES | SCHEMA


def test_production_serves_the_same_routes_without_the_schema():
    assert served(create_app([], settings(production=True))) == ROUTES


def test_each_operation_keeps_its_tag_summary_and_id():
    paths = create_app([], settings()).openapi()["paths"]
    found = {
        (method, path): (*operation["tags"], operation["summary"], operation["operationId"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert found == OPERATIONS


def test_the_schema_names_the_served_models_and_gives_an_example_row():
    schema = create_app([pima_model()], settings(max_batch_rows=50)).openapi()
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/reload"):
        (name,) = schema["paths"][path]["post"]["parameters"]
        assert name["schema"]["examples"] == ["pima"], path
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["rows"]["maxItems"] == 50
    (example,) = request["examples"]
    assert sorted(example["rows"][0]) == sorted(FEATURES)
