"""Conformal lower bounds on the time to the event: coverage, calibration, outputs, serving.

The coverage tests use synthetic data because only there is every patient's event time
known (the censored ones too), so the bound's coverage of the true time can be counted
exactly on fresh rows. The study tests use Rotterdam, externally validated on GBSG.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from medpredict.artifact import load_model, save_model
from medpredict.cli import app
from medpredict.data.datasets import load_dataset
from medpredict.model_metadata import ModelMetadata
from medpredict.predict import predict_frame
from medpredict.serve.app import create_app
from medpredict.serve.auth import new_api_key
from medpredict.serve.config import ServeSettings
from medpredict.serve.models import ServedModel
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.survival.conformal import (
    LowerBound,
    bound_times,
    calibrate_lower_bound,
    cross_fitted_lower_bounds,
    lower_bound_coverage,
    lower_bounds,
)
from medpredict.survival.models import survival_curves
from medpredict.survival.scoring import SurvivalPredictions
from medpredict.survival.spec import SurvivalSpec

GRID = np.linspace(0.005, 6.0, 600)
SHAPE = 1.5  # true event times are Weibull; the model below assumes exponential times


def synthetic(n: int, seed: int, censor_scale: float) -> dict[str, np.ndarray]:
    """Patients with a known event time (Weibull, scale set by one feature) and an
    independent exponential censoring time of mean ``censor_scale``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    scale = np.exp(-0.7 * x)
    event_time = scale * rng.weibull(SHAPE, size=n)
    censor_time = rng.exponential(censor_scale, size=n)
    return {"x": x, "scale": scale, "event_time": event_time,
            "time": np.minimum(event_time, censor_time), "event": event_time <= censor_time}


def exponential_curves(scale: np.ndarray, stretch: float = 1.0) -> np.ndarray:
    """A misspecified model: exponential survival with the right ordering of patients;
    ``stretch`` > 1 makes it promise longer survival than the truth (overconfident)."""
    return np.exp(-GRID[None, :] / (stretch * scale[:, None]))


def fresh_coverage(bound: LowerBound, stretch: float = 1.0) -> float:
    fresh = synthetic(20_000, seed=99, censor_scale=1.0)
    bounds = lower_bounds(exponential_curves(fresh["scale"], stretch), GRID, bound.quantile)
    return float(np.mean(fresh["event_time"] >= bounds))


def calibrated(data: dict[str, np.ndarray], stretch: float = 1.0,
               level: float = 0.9) -> LowerBound:
    predictions = SurvivalPredictions(GRID, exponential_curves(data["scale"], stretch))
    return calibrate_lower_bound(predictions, data["time"], data["event"], level)


def test_bounds_cover_the_true_event_time_on_fresh_patients():
    data = synthetic(3000, seed=1, censor_scale=2.0)
    bound = calibrated(data)
    assert bound.level == 0.9 and bound.rows == 3000 and bound.events == data["event"].sum()
    assert 0.87 <= fresh_coverage(bound) <= 0.93
    # the misspecified model's own 10% quantile is too cautious (bounds too short);
    # calibration moves to a later quantile, so the bounds are longer and still cover 90%
    naive = lower_bounds(exponential_curves(data["scale"]), GRID, 0.1)
    assert np.mean(data["event_time"] >= naive) > 0.95
    assert bound.quantile > 0.15


def test_heavy_independent_censoring_still_covers():
    data = synthetic(3000, seed=2, censor_scale=0.25)
    assert data["event"].mean() < 0.3  # over 70% of patients censored
    bound = calibrated(data)
    assert 0.86 <= fresh_coverage(bound) <= 0.94


def test_overconfident_model_gets_a_smaller_quantile_and_still_covers():
    data = synthetic(3000, seed=3, censor_scale=2.0)
    honest, overconfident = calibrated(data), calibrated(data, stretch=3.0)
    assert overconfident.quantile < honest.quantile
    assert 0.87 <= fresh_coverage(overconfident, stretch=3.0) <= 0.93


def test_estimated_coverage_matches_the_true_coverage_under_censoring():
    data = synthetic(4000, seed=4, censor_scale=1.0)
    for quantile in (0.05, 0.1, 0.2):
        bounds = lower_bounds(exponential_curves(data["scale"]), GRID, quantile)
        truth = np.mean(data["event_time"] >= bounds)
        estimate = lower_bound_coverage(bounds, data["time"], data["event"], n_boot=200)
        assert estimate.low <= estimate.value <= estimate.high
        assert abs(estimate.value - truth) < 0.02, quantile


def test_cross_fitted_bounds_cover_and_differ_by_fold():
    data = synthetic(2000, seed=5, censor_scale=2.0)
    predictions = SurvivalPredictions(GRID, exponential_curves(data["scale"]))
    folds = [(np.flatnonzero(np.arange(2000) % 4 != k), np.flatnonzero(np.arange(2000) % 4 == k))
             for k in range(4)]
    crossed = cross_fitted_lower_bounds(predictions, data["time"], data["event"], folds, 0.9)
    assert not np.isnan(crossed).any()
    assert 0.87 <= np.mean(data["event_time"] >= crossed) <= 0.93


def test_no_safe_quantile_gives_zero_bounds_and_edges_are_handled():
    data = synthetic(50, seed=6, censor_scale=2.0)
    bound = calibrated(data, level=0.99)  # (0 + 1) / 51 misses more than 1% already
    assert bound.quantile == 0.0
    curves = np.array([[0.99, 0.98, 0.97], [0.9, np.nan, 0.5], [0.95, 0.85, 0.85]])
    times = np.array([1.0, 2.0, 3.0])
    assert lower_bounds(curves, times, 0.0)[[0, 2]].tolist() == [0.0, 0.0]
    got = lower_bounds(curves, times, 0.1)
    assert got[0] == 3.0 and np.isnan(got[1]) and got[2] == 2.0  # 3.0: "at least"
    with pytest.raises(ValueError, match="level"):
        calibrate_lower_bound(SurvivalPredictions(times, curves[[0]]), np.ones(1),
                              np.ones(1, dtype=bool), 1.0)


def test_level_is_validated_and_stored_metadata_round_trips():
    assert SurvivalSpec(duration_column="t", horizons=[1.0]).lower_bound_level == 0.9
    for bad in (0.5, 0.995):
        with pytest.raises(ValidationError, match="lower_bound_level"):
            SurvivalSpec(duration_column="t", horizons=[1.0], lower_bound_level=bad)
    bound = LowerBound(level=0.9, quantile=0.085, rows=1546, events=700)
    meta = ModelMetadata.read({"name": "m", "lower_bound": bound.to_dict()})
    assert LowerBound.from_dict(meta.lower_bound) == bound


@pytest.fixture(scope="module")
def rotterdam(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformal")
    spec = parse_spec({
        "name": "rotterdam_lpb", "data": {"dataset": "rotterdam"}, "target": "rfs",
        "task": "survival", "positive_class": 1, "exclude": ["pid", "surgery_date"],
        "models": ["cox"],
        "survival": {"duration_column": "rfs_days", "horizons": [1826]},
        "validation": {"external": {"dataset": "gbsg"}, "folds": 3}, "bootstrap": 30,
        "output_dir": str(folder / "rotterdam"),
    })
    return run_study(spec, quiet=True)


def test_study_calibrates_the_bound_and_checks_it_on_the_external_rows(rotterdam):
    result = rotterdam
    bound = result.lower_bound
    assert bound.level == 0.9 and 0 < bound.quantile <= 0.5 and bound.rows == len(result.outcome)
    cv = result.lower_bound_coverage
    assert cv.low <= cv.value <= cv.high and 0.85 < cv.value < 0.95
    external = result.holdouts[0]
    assert external.lower_bounds.shape == (686,)
    assert external.lower_bound_coverage.low <= external.lower_bound_coverage.value
    assert 0.75 < external.lower_bound_coverage.value <= 1.0
    # the hold-out's bounds are those medpredict predict gives
    grid = bound_times(result.final_model, [1826])
    np.testing.assert_allclose(
        external.lower_bounds,
        lower_bounds(survival_curves(result.final_model, external.cohort.X, grid), grid,
                     bound.quantile))
    summary = json.loads((result.spec.run_dir / "metrics.json").read_text())
    assert summary["lower_bound"]["quantile"] == bound.quantile
    assert summary["lower_bound"]["cross_validated_coverage"]["value"] == pytest.approx(cv.value)
    stored = summary["holdouts"]["external"]
    assert stored["lower_bound_coverage"]["value"] == pytest.approx(
        external.lower_bound_coverage.value)
    assert stored["lower_bound_median"] == pytest.approx(np.median(external.lower_bounds))
    report = result.report_path.read_text()
    assert "Lower bound on the time to the event" in report
    assert "development (cross-validated)" in report and "90% confidence" in report


def test_predict_cli_gives_the_bound_and_older_models_have_no_column(rotterdam, tmp_path):
    result = rotterdam
    loaded = load_model(result.model_dir)
    assert LowerBound.from_dict(loaded.metadata.lower_bound) == result.lower_bound
    frame = load_dataset("gbsg").head(40).drop(columns=["pid"])
    frame.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "risks.csv"
    ran = CliRunner().invoke(app, ["predict", "--model", str(result.model_dir), "--input",
                                   str(tmp_path / "new.csv"), "--output", str(out)])
    assert ran.exit_code == 0, ran.output
    scored = pd.read_csv(out)
    features = loaded.metadata.feature_names
    grid = bound_times(result.final_model, [1826])
    expected = lower_bounds(survival_curves(result.final_model, frame[features], grid), grid,
                            result.lower_bound.quantile)
    np.testing.assert_allclose(scored["survival_lower_bound"], expected)
    assert (scored["survival_lower_bound"] > 0).all()
    # a lower bound comes before the median wherever the median is reached
    reached = scored["median_survival"].notna()
    assert (scored.loc[reached, "survival_lower_bound"]
            <= scored.loc[reached, "median_survival"]).all()

    older = loaded.metadata.to_json_dict()
    older.pop("lower_bound")
    old_dir = save_model(tmp_path / "older", loaded.estimator, older)
    old_scored = predict_frame(load_model(old_dir), frame)
    assert "survival_lower_bound" not in old_scored
    np.testing.assert_allclose(old_scored["risk_1826"], scored["risk_1826"])
    answer = ServedModel.from_dir(old_dir).predict(
        [{k: (None if pd.isna(v) else v) for k, v in frame[features].iloc[0].items()}])[0]
    assert answer.to_dict()["survival_lower_bound"] is None
    assert answer.to_dict()["assured_event_free_to_first_horizon"] is None


def test_service_answers_the_bound_and_the_assurance_flag(rotterdam, tmp_path):
    result = rotterdam
    key, entry = new_api_key("dr-bound", ["clinician"])
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"keys": [entry]}))
    settings = ServeSettings(keys_file=str(keys_file), audit_url=f"sqlite:///{tmp_path}/a.db",
                             top_k=0)
    client = TestClient(create_app([result.model_dir], settings))
    client.headers.update({"X-API-Key": key})
    features = load_model(result.model_dir).metadata.feature_names
    frame = load_dataset("gbsg").head(30).drop(columns=["pid"])
    rows = [{k: (None if pd.isna(v) else (v if isinstance(v, str) else float(v)))
             for k, v in row.items()} for row in frame[features].to_dict(orient="records")]
    answer = client.post("/v1/models/rotterdam_lpb/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = predict_frame(load_model(result.model_dir), frame)["survival_lower_bound"]
    flags = []
    for got, want in zip(predictions, expected, strict=True):
        assert got["survival_lower_bound"] == pytest.approx(want)
        assert got["assured_event_free_to_first_horizon"] is (want >= 1826)
        flags.append(got["assured_event_free_to_first_horizon"])
    assert not all(flags)  # some patients cannot be assured 5 event-free years at 90%
