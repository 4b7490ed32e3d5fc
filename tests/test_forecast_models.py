"""Forecasters, scores, recalibration, the rolling evaluation and its outputs.

The panels here are synthetic (seasonal Poisson counts, made for each property); the
end-to-end test at the bottom runs ``medpredict forecast`` on real FluSight data.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from medpredict.artifact import ArtifactError
from medpredict.cli import app
from medpredict.data.errors import SpecError
from medpredict.evaluation.quantile_scores import (
    FLUSIGHT_LEVELS,
    check_levels,
    interval_coverage,
    weighted_interval_score,
)
from medpredict.forecasting.calibration import conformal_intervals
from medpredict.forecasting.data import counts_from_table
from medpredict.forecasting.models import ETS, Arima, FluSightBaseline, SeasonalNaive, Theta
from medpredict.forecasting.outputs import read_latest, write_forecast_dir
from medpredict.forecasting.pooled import PooledLightGBM
from medpredict.forecasting.rolling import rolling_forecasts
from medpredict.forecasting.runner import run_forecast
from medpredict.forecasting.spec import ForecastSpec

LEVELS = np.array([0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975])


def panel(periods: int = 150, locations: int = 4, seed: int = 0) -> pd.DataFrame:
    """Seasonal epidemics of different sizes and timing (synthetic)."""
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    columns = {}
    for k in range(locations):
        wave = 5 + 200 * (k + 1) * np.exp(-0.5 * (((t + 4 * k) % 52 - 26) / 4.0) ** 2)
        columns[f"L{k}"] = rng.poisson(wave).astype(float)
    return pd.DataFrame(columns, index=pd.date_range("2022-01-01", periods=periods, freq="7D"))


def long_table(series: pd.DataFrame) -> pd.DataFrame:
    stacked = series.stack().rename("value").reset_index()
    stacked.columns = ["date", "location", "value"]
    stacked["date"] = stacked["date"].dt.strftime("%Y-%m-%d")
    return stacked.astype({"value": str})


def spec_for(models, **extra) -> ForecastSpec:
    return ForecastSpec.model_validate({
        "name": "toy", "data": {"path": "toy.csv", "location_name": None},
        "models": models, "quantiles": LEVELS.tolist(),
        "evaluation": {"bootstrap": 50, **extra.pop("evaluation", {})}, **extra})


def test_wis_is_the_interval_score_of_bracher_et_al():
    rng = np.random.default_rng(1)
    y = rng.poisson(50, 200).astype(float)
    q = np.sort(rng.normal(50, 15, (200, len(LEVELS))), axis=1)
    score = 0.5 * np.abs(y - q[:, 3])
    for k in range(3):
        alpha, low, high = 2 * LEVELS[k], q[:, k], q[:, -1 - k]
        interval = (high - low) + 2 / alpha * ((low - y) * (y < low) + (y - high) * (y > high))
        score += alpha / 2 * interval
    np.testing.assert_allclose(weighted_interval_score(y, q, LEVELS), score / 3.5)
    assert weighted_interval_score(np.array([7.0]), np.full((1, 7), 7.0), LEVELS)[0] == 0


def test_coverage_and_level_checks():
    q = np.array([[1, 2, 3, 4, 5, 6, 7]], dtype=float)
    assert interval_coverage(np.array([1.5]), q, LEVELS, 0.95).tolist() == [True]
    assert interval_coverage(np.array([1.5]), q, LEVELS, 0.5).tolist() == [False]
    for bad in ([0.2, 0.5, 0.9], [0.5, 0.25, 0.75], [0.0, 0.5, 1.0]):
        with pytest.raises(ValueError):
            check_levels(np.array(bad))
    assert len(FLUSIGHT_LEVELS) == 23


def test_flusight_baseline_is_flat_rounded_outward_and_widening():
    history = panel()[["L0", "L1"]]
    q = FluSightBaseline().predict(history, [1, 2, 3, 4], np.asarray(FLUSIGHT_LEVELS))
    median = FLUSIGHT_LEVELS.index(0.5)
    np.testing.assert_array_equal(q[:, :, median], np.repeat(history.iloc[-1].to_numpy()[:, None],
                                                             4, axis=1))
    assert np.all(q >= 0) and np.all(np.diff(q, axis=-1) >= 0)
    assert np.all(q == np.round(q))
    width = q[:, :, -1] - q[:, :, 0]
    assert np.all(np.diff(width, axis=1) >= 0) and np.all(width[:, -1] > width[:, 0])
    history.iloc[-1, 0] = np.nan
    assert np.isnan(FluSightBaseline().predict(history, [1], LEVELS)[0]).all()


@pytest.mark.parametrize("model", [ETS(), Theta(), Arima(), SeasonalNaive(), PooledLightGBM(
    n_estimators=30)])
def test_models_give_ordered_non_negative_quantiles_and_skip_short_histories(model):
    history = panel()
    history.iloc[:-8, 3] = np.nan  # L3 has 8 observed periods only
    model.min_history = 12
    q = model.fit(history).predict(history, [1, 2, 3, 4], LEVELS)
    assert q.shape == (4, 4, len(LEVELS))
    assert np.isfinite(q[:3]).all()
    assert np.all(q[:3] >= 0) and np.all(np.diff(q[:3], axis=-1) >= 0)
    assert np.isnan(q[3]).all()


@pytest.fixture(scope="module")
def seasonal_run():
    series = panel(periods=170)
    spec = spec_for(["flusight_baseline", "theta", "lightgbm", "ensemble"],
                    evaluation={"seasons": [{"name": "s", "start": "2024-10-05",
                                             "end": "2025-03-29"}]})
    return spec, series, run_forecast(spec, counts_from_table(long_table(series), spec.data),
                                      quiet=True)


def test_lightgbm_beats_the_baseline_on_seasonal_epidemics(seasonal_run):
    _, _, result = seasonal_run
    scores = result.scores.set_index(["model", "block"])
    # observed here: 0.21 (theta 0.83); a model no better than the flat baseline is near 1
    assert scores.loc[("lightgbm", "s"), "relative_wis"].value < 0.5
    assert scores.loc[("lightgbm", "s"), "coverage_95"].value > 0.8
    assert result.selected in {"lightgbm", "ensemble"}


def test_no_forecast_sees_data_after_its_date(seasonal_run):
    spec, series, result = seasonal_run
    cut = pd.Timestamp("2024-12-07")
    changed = series.copy()
    changed.loc[changed.index > cut] *= 5
    again = run_forecast(spec, counts_from_table(long_table(changed), spec.data), quiet=True)
    known = result.forecasts.dates <= cut + spec.lag * result.forecasts.period
    assert known.sum() > 10 and (~known).sum() > 10
    for model in result.forecasts.models:
        np.testing.assert_array_equal(result.forecasts.values[model][known],
                                      again.forecasts.values[model][known])
        assert not np.array_equal(result.forecasts.values[model][~known],
                                  again.forecasts.values[model][~known], equal_nan=True)


def test_conformal_recalibration_repairs_narrow_intervals():
    rng = np.random.default_rng(3)
    truth = rng.poisson(100, (60, 5, 1)).astype(float)
    centre = np.full((60, 5, 1, 1), 100.0)
    narrow = centre * np.exp(0.02 * np.array([-2, -1.3, -0.7, 0, 0.7, 1.3, 2]))
    fixed = conformal_intervals(narrow, truth, LEVELS, horizons=[0], lag=1, window=20)

    def coverage(values, dates):
        q = values[dates].reshape(-1, len(LEVELS))
        return interval_coverage(truth[dates].ravel(), q, LEVELS, 0.95).mean()

    later = slice(30, 60)
    assert coverage(narrow, later) < 0.6 and coverage(fixed, later) >= 0.85
    np.testing.assert_allclose(fixed[..., 3], narrow[..., 3])
    np.testing.assert_allclose(fixed[:4], narrow[:4])  # fewer than 20 past scores


def test_bottom_up_totals_are_sums_of_members_except_for_the_baseline():
    series = panel(periods=120, locations=3)
    series["T"] = series.sum(axis=1)
    base = {"evaluation": {"seasons": [{"name": "s", "start": "2024-01-06",
                                        "end": "2024-04-27"}]}}
    for method, coherent in (("bottom_up", True), ("independent", False)):
        spec = spec_for(["flusight_baseline", "theta", "ensemble"],
                        hierarchy={"total": "T", "method": method}, **dict(base))
        result = run_forecast(spec, counts_from_table(long_table(series), spec.data),
                              quiet=True)
        for model, values in result.forecasts.values.items():
            sums = values[:, :3].sum(axis=1)
            same = np.allclose(values[:, 3], sums, equal_nan=True)
            assert same == (coherent and model != "flusight_baseline"), (method, model)
        assert 3 not in result.scored_locations


@pytest.mark.parametrize(
    ("models", "extra", "message"),
    [
        (["flusight_baseline", "prophet"], {}, "unknown forecasters prophet"),
        (["theta"], {}, "evaluation.baseline 'flusight_baseline' is not among"),
        (["flusight_baseline", "theta", "theta"], {}, "listed twice"),
    ],
)
def test_run_forecast_refuses_bad_model_lists(models, extra, message):
    spec = spec_for(models, **extra)
    counts = counts_from_table(long_table(panel(periods=60)), spec.data)
    with pytest.raises(SpecError, match=message):
        run_forecast(spec, counts, quiet=True)


def test_ensemble_members_must_be_models_of_the_spec():
    spec = spec_for(["flusight_baseline", "theta", {"name": "ensemble",
                                                     "params": {"members": ["ets"]}}])
    with pytest.raises(SpecError, match="ensemble members ets"):
        run_forecast(spec, counts_from_table(long_table(panel(periods=60)), spec.data),
                     quiet=True)


def test_rolling_forecasts_use_only_the_cut_data():
    series = panel(periods=60)
    spec = spec_for(["flusight_baseline"], lag=2)
    dates = series.index[30:33] + 2 * pd.Timedelta(days=7)
    made = rolling_forecasts(spec, series, dates, quiet=True, n_jobs=1)
    median = made.values["flusight_baseline"][:, :, 0, 3]
    np.testing.assert_array_equal(median, series.iloc[30:33].to_numpy())


def test_forecast_directory_is_sealed(seasonal_run, tmp_path):
    _, _, result = seasonal_run
    folder = write_forecast_dir(result, tmp_path / "toy", "<html></html>")
    listed = set(json.loads((folder / "MANIFEST.json").read_text())["files"])
    assert {"latest.json", "latest.csv", "forecasts.parquet", "scores.csv", "by_location.csv",
            "quarantine.csv", "summary.json", "report.html"} == listed
    latest = read_latest(folder)
    assert latest["reference_date"] == result.latest_date.date().isoformat()
    assert [x["location"] for x in latest["locations"]] == result.forecasts.locations
    values = [q["value"] for q in latest["locations"][0]["horizons"][0]["quantiles"]]
    assert values == sorted(values)
    rolling = pd.read_parquet(folder / "forecasts.parquet")
    assert set(rolling["model"]) == set(result.forecasts.models)
    (folder / "latest.json").write_text(json.dumps({**latest, "model": "other"}))
    with pytest.raises(ArtifactError, match="modified"):
        read_latest(folder)


def test_medpredict_forecast_on_flusight_states(tmp_path):
    spec = {
        "name": "three-states",
        "data": {"dataset": "flusight"},
        "locations": ["06", "36", "48"],
        "hierarchy": {"total": "US"},
        "models": ["flusight_baseline", "theta", "lightgbm", "ensemble"],
        "evaluation": {"bootstrap": 50, "seasons": [
            {"name": "2024-25", "start": "2024-12-07", "end": "2025-02-22"}]},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        app, ["forecast", str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "relative WIS against flusight_baseline" in result.output
    folder = tmp_path / "runs" / "three-states"
    latest = read_latest(folder)
    assert {x["name"] for x in latest["locations"]} == {"California", "New York", "Texas", "US"}
    report = (folder / "report.html").read_text()
    assert "Interval calibration" in report and "California" in report
    spec["evaluation"]["bootstrap"] = -1
    path.write_text(yaml.safe_dump(spec))
    bad = CliRunner().invoke(app, ["forecast", str(path), "--quiet"])
    assert bad.exit_code == 2 and "evaluation.bootstrap" in bad.output
