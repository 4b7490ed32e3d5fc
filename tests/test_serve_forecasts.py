"""Serving the latest population forecast: listing, document, location filter, checks.

The forecast directory is built from a small synthetic panel (two seasonal locations)
by the real ``run_forecast`` and ``write_forecast_dir``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_support import keys, workdir

from medpredict.forecasting.data import counts_from_table
from medpredict.forecasting.outputs import write_forecast_dir
from medpredict.forecasting.runner import run_forecast
from medpredict.forecasting.spec import ForecastSpec
from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings


def settings() -> ServeSettings:
    return ServeSettings(keys_file=keys()["file"], audit_url="sqlite://")


@pytest.fixture(scope="module")
def forecast_dir():
    rng = np.random.default_rng(0)
    dates = pd.date_range("2023-01-07", periods=80, freq="7D")
    wave = 20 + 60 * np.exp(-0.5 * (((np.arange(80)) % 52 - 26) / 4) ** 2)
    table = pd.DataFrame({
        "location": np.repeat(["A", "B"], 80),
        "date": np.tile(dates.strftime("%Y-%m-%d"), 2),
        "value": rng.poisson(np.tile(wave, 2) * np.repeat([1, 3], 80)).astype(str),
    })
    spec = ForecastSpec.model_validate({
        "name": "toy", "data": {"path": "toy.csv", "location_name": None},
        "models": ["flusight_baseline", "theta"],
        "quantiles": [0.025, 0.25, 0.5, 0.75, 0.975], "evaluation": {"bootstrap": 20}})
    result = run_forecast(spec, counts_from_table(table, spec.data), quiet=True)
    return write_forecast_dir(result, workdir() / "forecast-toy"), result


@pytest.fixture(scope="module")
def client(forecast_dir):
    return TestClient(create_app([], settings(), forecasts=[forecast_dir[0]]))


def test_listing_and_latest_document(client, forecast_dir):
    _, result = forecast_dir
    headers = {"X-API-Key": keys()["clinician"]}
    listed = client.get("/v1/forecasts", headers=headers).json()
    assert [(x["name"], x["model"], x["locations"]) for x in listed] == [
        ("toy", result.selected, 2)]
    document = client.get("/v1/forecasts/toy", headers=headers).json()
    assert document["reference_date"] == result.latest_date.date().isoformat()
    assert [h["horizon"] for h in document["locations"][0]["horizons"]] == [0, 1, 2, 3]
    for entry in document["locations"]:
        for horizon in entry["horizons"]:
            values = [q["value"] for q in horizon["quantiles"]]
            assert values == sorted(values) and len(values) == 5


def test_location_filter_and_not_found_messages(client):
    headers = {"X-API-Key": keys()["clinician"]}
    only_b = client.get("/v1/forecasts/toy", params={"location": ["B"]}, headers=headers)
    assert [x["location"] for x in only_b.json()["locations"]] == ["B"]
    unknown = client.get("/v1/forecasts/toy", params={"location": ["Z"]}, headers=headers)
    assert unknown.status_code == 404 and "no location Z" in unknown.text
    missing = client.get("/v1/forecasts/flu", headers=headers)
    assert missing.status_code == 404 and "served: toy" in missing.text


def test_forecasts_need_credentials(client):
    assert client.get("/v1/forecasts").status_code == 401
    assert client.get("/v1/forecasts/toy").status_code == 401


def test_a_tampered_forecast_directory_refuses_to_start(forecast_dir, tmp_path):
    import shutil

    copy = shutil.copytree(forecast_dir[0], tmp_path / "copy")
    document = json.loads((copy / "latest.json").read_text())
    document["locations"][0]["horizons"][0]["median"] = 0.0
    (copy / "latest.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="has been modified"):
        create_app([], settings(), forecasts=[copy])
