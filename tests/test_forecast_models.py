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
from scipy.stats import norm
from typer.testing import CliRunner

from medpredict.artifact import ArtifactError, verify_directory
from medpredict.cli import app
from medpredict.data.errors import SpecError
from medpredict.evaluation.quantile_scores import (
    FLUSIGHT_LEVELS,
    central_widths,
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
from medpredict.forecasting.scoring import coverages
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


def bracher_wis(y: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """WIS from the median and the central intervals (Bracher et al. 2021, eq. 2)."""
    k_intervals = len(levels) // 2
    score = 0.5 * np.abs(y - q[:, k_intervals])
    for k in range(k_intervals):
        alpha, low, high = 2 * levels[k], q[:, k], q[:, -1 - k]
        interval = (high - low) + 2 / alpha * ((low - y) * (y < low) + (y - high) * (y > high))
        score += alpha / 2 * interval
    return score / (k_intervals + 0.5)


@pytest.mark.parametrize("levels", [LEVELS, np.asarray(FLUSIGHT_LEVELS)], ids=["7", "23"])
def test_wis_is_the_interval_score_of_bracher_et_al(levels):
    """Synthetic random forecasts, many of them missing the observation on either side."""
    rng = np.random.default_rng(1)
    y = rng.poisson(50, 500).astype(float)
    q = np.sort(rng.normal(50, 15, (500, len(levels))), axis=1)
    expected = bracher_wis(y, q, levels)
    assert (y < q[:, 0]).any() and (y > q[:, -1]).any()
    np.testing.assert_allclose(weighted_interval_score(y, q, levels), expected, rtol=1e-12)


def test_wis_of_a_perfect_point_forecast_is_zero():
    point = np.full((2, len(LEVELS)), 7.0)
    wis = weighted_interval_score(np.array([7.0, 9.0]), point, LEVELS)
    assert wis[0] == 0
    assert wis[1] == pytest.approx(2.0)  # a point forecast's WIS is its absolute error


def test_interval_coverage_includes_the_bounds():
    q = np.array([[1, 2, 3, 4, 5, 6, 7]], dtype=float)
    y = np.array([1.0, 1.5, 2.9, 3.0, 5.0, 5.1, 7.0, 7.5])
    q = np.repeat(q, len(y), axis=0)
    assert interval_coverage(y, q, LEVELS, 0.95).tolist() == [1, 1, 1, 1, 1, 1, 1, 0]
    assert interval_coverage(y, q, LEVELS, 0.5).tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="no quantile levels bound a central 90% interval"):
        interval_coverage(y, q, LEVELS, 0.9)


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ([0.2, 0.5, 0.9], "symmetric"),
        ([0.25, 0.75], "symmetric around a median"),
        ([0.5, 0.25, 0.75], "increasing"),
        ([0.25, 0.25, 0.5, 0.75, 0.75], "increasing"),
        ([], "non-empty"),
        ([0.0, 0.5, 1.0], "strictly between 0 and 1"),
    ],
)
def test_check_levels_refuses_bad_levels(levels, message):
    with pytest.raises(ValueError, match=message):
        check_levels(np.array(levels))


def test_flusight_levels_and_their_central_widths():
    levels = np.asarray(FLUSIGHT_LEVELS)
    check_levels(levels)
    assert len(levels) == 23 and levels[11] == 0.5
    widths = [round(0.1 * k, 1) for k in range(1, 10)] + [0.95, 0.98]
    assert central_widths(levels) == widths
    assert central_widths(LEVELS) == [0.5, 0.8, 0.95]
    assert coverages(levels) == [0.5, 0.95]
    assert coverages(np.array([0.1, 0.5, 0.9])) == []


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


def test_flusight_baseline_floors_below_and_ceils_above_the_median():
    """Synthetic: counts alternating 10, 10.5, so every change is ±0.5 and each quantile of
    the random walk is known exactly before rounding (step 2: 9.5, 10.5 or 11.5)."""
    history = pd.DataFrame({"a": np.tile([10.0, 10.5], 15)},
                           index=pd.date_range("2024-01-06", periods=30, freq="7D"))
    levels = np.array([0.05, 0.1, 0.4, 0.5, 0.6, 0.9, 0.95])
    q = FluSightBaseline().predict(history, [1, 2], levels)[0]
    np.testing.assert_array_equal(q[0], [10, 10, 10, 10.5, 11, 11, 11])
    np.testing.assert_array_equal(q[1], [9, 9, 10, 10.5, 11, 12, 12])


def test_flusight_baseline_is_symmetric_non_negative_and_skips_short_histories():
    """Synthetic: a random walk drifting upwards (symmetrised changes must cancel the drift),
    small counts near zero, and a location with 8 observed periods."""
    rng = np.random.default_rng(5)
    index = pd.date_range("2020-01-04", periods=300, freq="7D")
    history = pd.DataFrame({"walk": 3000 + np.cumsum(rng.normal(15, 25, 300)),
                            "small": rng.poisson(1.5, 300).astype(float),
                            "short": np.where(np.arange(300) >= 292, 40.0, np.nan)}, index=index)
    baseline = FluSightBaseline(n_paths=20_000)
    baseline.min_history = 12
    levels = np.asarray(FLUSIGHT_LEVELS)
    q = baseline.predict(history, [1, 2, 3, 4], levels)
    median = q[0, :, 11:12]
    above, below = (q[0, :, ::-1] - median)[:, :11], (median - q[0])[:, :11]
    # Monte Carlo error is ~1% of a width here; rounding adds under 1 on each side
    assert np.all(np.abs(above - below) <= 0.1 * (above + below) + 2)
    assert np.all(np.diff(above + below, axis=0) > 0)
    assert q[1].min() == 0 and np.all(q[1] >= 0) and q[1, 0, 11] == history["small"].iloc[-1]
    assert np.isnan(q[2]).all()


@pytest.mark.parametrize("model", [ETS(), Theta(), Arima(), SeasonalNaive(), PooledLightGBM(
    n_estimators=30)])
def test_models_give_ordered_non_negative_quantiles_and_skip_short_histories(model):
    """Synthetic seasonal panel; one location has fewer observed periods than min_history."""
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
    """A full run on a synthetic panel whose epidemics recur every 52 weeks."""
    series = panel(periods=170)
    spec = spec_for(["flusight_baseline", "theta", "lightgbm", "ensemble"],
                    evaluation={"seasons": [{"name": "s", "start": "2024-10-05",
                                             "end": "2025-03-29"}]})
    return spec, series, run_forecast(spec, counts_from_table(long_table(series), spec.data),
                                      quiet=True)


def test_lightgbm_beats_the_baseline_on_seasonal_epidemics(seasonal_run):
    _, _, result = seasonal_run
    scores = result.scores.set_index(["model", "block"])
    # observed here: 0.21 (95% CI 0.17-0.29; theta 0.83); no better than the baseline is 1
    assert scores.loc[("lightgbm", "s"), "relative_wis"].value < 0.5
    assert scores.loc[("lightgbm", "s"), "coverage_95"].value > 0.8
    assert scores.loc[("flusight_baseline", "s"), "relative_wis"].value == pytest.approx(1.0)
    assert result.selected in {"lightgbm", "ensemble"}


def test_no_forecast_sees_data_after_its_date(seasonal_run):
    """Counts after ``cut`` multiplied by 5: forecasts dated up to ``cut + lag`` (whose data
    end by ``cut``, and whose recalibration uses targets observed by then) must not move."""
    spec, series, result = seasonal_run
    cut = pd.Timestamp("2024-12-07")
    changed = series.copy()
    changed.loc[changed.index > cut] *= 5
    again = run_forecast(spec, counts_from_table(long_table(changed), spec.data), quiet=True)
    dates = result.forecasts.dates
    assert again.forecasts.dates.equals(dates)
    known = dates <= cut + spec.lag * result.forecasts.period
    first_unknown = int(np.argmin(known))
    assert known.sum() > 30 and (~known).sum() > 10 and not known[first_unknown:].any()
    assert set(result.forecasts.models) == {"flusight_baseline", "theta", "lightgbm", "ensemble"}
    for model in result.forecasts.models:
        before, after = result.forecasts.values[model], again.forecasts.values[model]
        np.testing.assert_array_equal(before[known], after[known], err_msg=model)
        assert not np.allclose(before[first_unknown], after[first_unknown], equal_nan=True), model


def test_the_compared_forecasts_were_recalibrated(seasonal_run):
    """The no-peeking test compares recalibrated intervals: raw Theta differs from them."""
    _, series, result = seasonal_run
    dates = result.forecasts.dates[30:33]
    raw = rolling_forecasts(spec_for(["flusight_baseline", "theta"]), series, dates,
                            quiet=True, n_jobs=1).values["theta"]
    recalibrated = result.forecasts.values["theta"][30:33]
    np.testing.assert_allclose(raw[..., 3], recalibrated[..., 3], rtol=1e-12)
    assert not np.allclose(raw[..., 0], recalibrated[..., 0])


@pytest.fixture(scope="module")
def narrow():
    """Synthetic forecasts centred on the truth's mean but five times too narrow, for 5
    locations and horizons 0 and 2, with their recalibration (lag 1, window 20)."""
    rng = np.random.default_rng(3)
    truth = rng.poisson(100, (60, 5, 2)).astype(float)
    values = np.full((60, 5, 2, 1), 100.0) * np.exp(0.02 * norm.ppf(LEVELS))
    fixed = conformal_intervals(values, truth, LEVELS, horizons=[0, 2], lag=1, window=20)
    return truth, values, fixed


def _coverage95(values: np.ndarray, truth: np.ndarray) -> float:
    return float(interval_coverage(truth.ravel(), values.reshape(-1, len(LEVELS)), LEVELS,
                                   0.95).mean())


def test_conformal_recalibration_repairs_narrow_intervals(narrow):
    truth, values, fixed = narrow
    later = slice(30, 60)
    for j in range(2):
        before = _coverage95(values[later, :, j], truth[later, :, j])
        after = _coverage95(fixed[later, :, j], truth[later, :, j])
        assert before < 0.6 and after >= 0.85, (j, before, after)
    np.testing.assert_allclose(fixed[..., 3], values[..., 3], rtol=1e-12)


def test_conformal_recalibration_waits_for_20_past_scores(narrow):
    _, values, fixed = narrow
    for j, h in enumerate([0, 2]):
        # date d knows the targets of dates up to d - h - 1, 5 scores each: 20 from d = 4 + h
        first = 4 + h
        np.testing.assert_allclose(fixed[:first, :, j], values[:first, :, j], rtol=1e-12)
        assert np.all(fixed[first, :, j, 0] < values[first, :, j, 0])
        assert np.all(fixed[first, :, j, -1] > values[first, :, j, -1])


def test_conformal_recalibration_uses_only_targets_observed_by_then(narrow):
    truth, values, fixed = narrow
    later = truth.copy()
    later[40:] *= 10
    again = conformal_intervals(values, later, LEVELS, horizons=[0, 2], lag=1, window=20)
    for j, h in enumerate([0, 2]):
        # the target of date 40 at horizon h is reported in period 40 + h, known at 41 + h
        first = 41 + h
        np.testing.assert_array_equal(again[:first, :, j], fixed[:first, :, j])
        assert not np.allclose(again[first, :, j], fixed[first, :, j])


def test_bottom_up_totals_are_sums_of_members_except_for_the_baseline():
    """Synthetic: three locations and their exact total ``T``."""
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


def test_an_ensemble_without_members_is_refused():
    spec = spec_for(["flusight_baseline", "ensemble"])
    with pytest.raises(SpecError, match="the ensemble has no members"):
        run_forecast(spec, counts_from_table(long_table(panel(periods=60)), spec.data),
                     quiet=True, n_jobs=1)


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
    """Real FluSight counts: three states and the national total, one 8-week season."""
    spec = {
        "name": "three-states",
        "data": {"dataset": "flusight"},
        "locations": ["06", "36", "48"],
        "hierarchy": {"total": "US"},
        "models": ["flusight_baseline", "theta", "lightgbm", "ensemble"],
        "evaluation": {"bootstrap": 50, "seasons": [
            {"name": "2024-25", "start": "2024-12-07", "end": "2025-01-25"}]},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        app, ["forecast", str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    output = result.output
    assert "12190 rows read, 12154 stored, 36 quarantined (missing value: 36)" in output
    assert "relative WIS against flusight_baseline" in output
    table = output[output.index("relative WIS against"):]
    for model in spec["models"]:
        assert model in table
    assert table.count("(selected)") == 1 and "reference date 2026-07-04" in output
    folder = tmp_path / "runs" / "three-states"
    verify_directory(folder)
    latest = read_latest(folder)
    assert latest["reference_date"] == "2026-07-04" and latest["data_through"] == "2026-06-27"
    assert latest["evaluation"]["forecast_dates"] == 8
    assert {x["name"] for x in latest["locations"]} == {"California", "New York", "Texas", "US"}
    scores = pd.read_csv(folder / "scores.csv")
    assert set(scores["model"]) == set(spec["models"]) and set(scores["block"]) == {
        "2024-25", "all"}
    report = (folder / "report.html").read_text()
    assert "Interval calibration" in report and "California" in report
    spec["evaluation"]["bootstrap"] = -1
    path.write_text(yaml.safe_dump(spec))
    bad = CliRunner().invoke(
        app, ["forecast", str(path), "--output-dir", str(tmp_path / "bad"), "--quiet"])
    assert bad.exit_code == 2, bad.output
    assert "evaluation.bootstrap: Input should be greater than or equal to 0" in bad.output
    assert not (tmp_path / "bad").exists()
