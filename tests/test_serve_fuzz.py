"""The OpenAPI schema fuzzed with schemathesis: no request may cause a server error.

Every operation gets generated requests (bounded per operation) from a caller with
both roles, so the fuzzing reaches past authentication into validation, FHIR
parsing and prediction on the real Pima model.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from serve_support import pima_gbm_model, pima_model, workdir

from medpredict.serve.app import create_app
from medpredict.serve.auth import new_api_key
from medpredict.serve.config import ServeSettings


def _app():
    key, entry = new_api_key("fuzzer", ["clinician", "admin"])
    keys_file = workdir() / "fuzz-keys.json"
    keys_file.write_text(json.dumps({"keys": [entry]}))
    settings = ServeSettings(
        keys_file=keys_file,
        audit_url=f"sqlite:///{workdir() / 'audit-fuzz.db'}",
        rate_limit_per_minute=100_000,
        rate_limit_burst=100_000,
    )
    return create_app([pima_model(), pima_gbm_model()], settings), key


APP, KEY = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case):
    case.call_and_validate(
        headers={"X-API-Key": KEY},
        checks=[not_a_server_error, response_schema_conformance],
    )
