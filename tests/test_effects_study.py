"""Treatment-effect studies from a spec: the ACTG 320 trial (real, in the scikit-survival
wheel) end to end through the report, predict and the service; synthetic tables (said
where used) for known heterogeneity and for overlap that fails."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from serve_support import clinician_client
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from medpredict.artifact import load_model
from medpredict.cli import app
from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError, SpecError
from medpredict.effects.learners import SelectedModel, TLearner, XLearner
from medpredict.effects.model import EffectModel, arm_bootstrap
from medpredict.predict import predict_frame
from medpredict.serve.cds_hooks import risk_card
from medpredict.serve.fhir import ExtractedRow, FhirMapping, risk_assessment
from medpredict.serve.models import ServedModel
from medpredict.spec import parse_spec
from medpredict.study import run_study


def actg_spec(tmp_path, **treatment):
    return parse_spec({
        "name": "actg", "data": {"dataset": "actg320"}, "target": "aids_or_death",
        "task": "survival", "positive_class": 1,
        "survival": {"duration_column": "days", "horizons": [180]},
        "treatment": {"column": "tx", "randomised": True, "outcome_model": "ridge",
                      "subgroups": ["strat2", "cd4"], "intervals": 20, **treatment},
        "bootstrap": 100, "output_dir": str(tmp_path / "actg"),
    })


@pytest.fixture(scope="module")
def actg_study(tmp_path_factory):
    return run_study(actg_spec(tmp_path_factory.mktemp("effects")), quiet=True)


def test_trial_study_tests_every_learner_on_held_out_scores(actg_study):
    result = actg_study
    assert set(result.candidates) == {"t_learner", "x_learner"}
    losses = {n: c.metrics["dr_loss"].value for n, c in result.candidates.items()}
    assert result.best_name == min(losses, key=losses.get)
    for candidate in result.candidates.values():
        assert not np.isnan(candidate.benefit).any()
        for estimate in candidate.metrics.values():
            assert estimate.low <= estimate.value <= estimate.high
    # indinavir lowered the risk of AIDS or death (Hammer et al. 1997: hazard ratio 0.50)
    assert 0 < result.average.low < result.average.value < 0.1
    assert result.assignment == pytest.approx(574 / 1151)
    assert result.outcome.horizon == 180.0 and result.outcome.event.sum() < 96
    assert set(result.subgroups["subgroup"]) == {"strat2", "cd4"}
    assert set(result.subgroups["group"]) >= {"0", "1"}  # CD4 stratum, cd4 halves
    assert list(result.quartiles["group"]) == ["Q1", "Q2", "Q3", "Q4"]
    assert result.quartiles["patients"].sum() == 1151


def test_trial_study_outputs_report_and_predictions(actg_study):
    result = actg_study
    summary = json.loads((result.spec.run_dir / "metrics.json").read_text())
    assert summary["task"] == "treatment_effect" and summary["patients"] == 1151
    assert summary["verdict"] == result.verdict
    assert summary["heterogeneity_detected"] == result.heterogeneity_detected
    report = result.report_path.read_text()
    for title in ("Average effect", "Overlap of the arms", "Is the heterogeneity real?",
                  "Policy value", "Subgroups", "Individual estimates", "Assumptions to check"):
        assert title in report
    assert result.verdict.split(":")[0] in report
    loaded = load_model(result.model_dir)
    assert loaded.metadata.treatment["column"] == "tx"
    frame = load_dataset("actg320").head(40)
    scored = predict_frame(loaded, frame)
    assert list(scored.columns[-3:]) == ["benefit", "benefit_low", "benefit_high"]
    np.testing.assert_allclose(scored["benefit"], result.final_model.benefit(
        frame[loaded.metadata.feature_names]))
    assert (scored["benefit_low"] <= scored["benefit_high"]).all()
    inside = ((scored["benefit_low"] <= scored["benefit"])
              & (scored["benefit"] <= scored["benefit_high"]))
    assert inside.mean() >= 0.8


def test_service_answers_the_benefit_in_json_fhir_and_cds(actg_study, tmp_path):
    result = actg_study
    client = clinician_client(result.model_dir, tmp_path)
    features = load_model(result.model_dir).metadata.feature_names
    frame = load_dataset("actg320").head(3)
    rows = json.loads(frame[features].to_json(orient="records"))
    answer = client.post("/v1/models/actg/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    expected = predict_frame(load_model(result.model_dir), frame)
    for got, (_, want) in zip(answer.json()["predictions"], expected.iterrows(), strict=True):
        assert got["benefit"]["value"] == pytest.approx(want["benefit"])
        assert got["benefit"]["low"] == pytest.approx(want["benefit_low"])
        assert "reduction in the risk of aids_or_death = 1 by 180 days" in got["prediction"]
        assert got["risk"] is None
    served = ServedModel.from_dir(result.model_dir)
    prediction = served.predict(rows[:1])[0]
    mapping = FhirMapping.from_dict({"features": {}}, "test")
    fhir = risk_assessment(served, mapping, ExtractedRow(rows[0], "Patient/p1", []), prediction)
    assert fhir["mitigation"] == prediction.prediction
    card = risk_card(served, mapping, prediction)
    assert card["summary"].startswith("aids_or_death: treatment benefit ")


def test_cli_runs_an_effect_spec_and_predicts_benefits(tmp_path):
    spec = {"name": "cli-actg", "data": {"dataset": "actg320"}, "target": "aids_or_death",
            "task": "survival", "positive_class": 1,
            "survival": {"duration_column": "days", "horizons": [180]},
            "treatment": {"column": "tx", "randomised": True, "learners": ["t_learner"],
                          "outcome_model": "ridge", "intervals": 0},
            "bootstrap": 30}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(path), "--output-dir", str(tmp_path / "runs"),
                              "--quiet"])
    assert ran.exit_code == 0, ran.output
    assert "treatment-effect results" in ran.output and "heterogeneity" in ran.output
    load_dataset("actg320").head(10).to_csv(tmp_path / "new.csv", index=False)
    model = tmp_path / "runs" / "cli-actg" / "model"
    out = tmp_path / "scored.csv"
    scored = runner.invoke(app, ["predict", "--model", str(model), "-i",
                                 str(tmp_path / "new.csv"), "-o", str(out)])
    assert scored.exit_code == 0, scored.output
    assert "wrote 10 benefit(s)" in scored.output
    assert list(pd.read_csv(out).columns[-1:]) == ["benefit"]  # no intervals: intervals 0
    refused = runner.invoke(app, ["predict", "--model", str(model), "-i",
                                  str(tmp_path / "new.csv"), "-o", str(out), "--explain"])
    assert refused.exit_code != 0 and "not available for treatment-effect" in refused.output


def synthetic(n: int, confounding: float, seed: int = 0) -> pd.DataFrame:
    """Synthetic patients whose benefit of treatment depends on x2 (known by design)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    treated = rng.random(n) < 1 / (1 + np.exp(-confounding * x[:, 0]))
    logit = -0.5 + x[:, 0] - treated * 1.5 * x[:, 1]
    event = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
                         "arm": np.where(treated, "new", "usual"), "event": event.astype(int)})


def binary_spec(tmp_path, frame, **treatment):
    frame.to_csv(tmp_path / "patients.csv", index=False)
    return parse_spec({
        "name": "synthetic", "data": {"path": str(tmp_path / "patients.csv")},
        "target": "event", "positive_class": 1,
        "treatment": {"column": "arm", "treated_value": "new", "control_value": "usual",
                      "learners": ["t_learner", "s_learner"],
                      "outcome_model": "logistic_regression", "intervals": 0, **treatment},
        "bootstrap": 200, "output_dir": str(tmp_path / "out"),
    })


def test_known_heterogeneity_is_detected_and_ranked(tmp_path):
    result = run_study(binary_spec(tmp_path, synthetic(3000, 0.0), randomised=True),
                       quiet=True, save=False)
    assert result.heterogeneity_detected and result.verdict.startswith("Heterogeneity detected")
    effect = result.quartiles.set_index("group")["effect"]
    assert effect["Q4"] > 0.1 > -0.1 > effect["Q1"]
    frame = synthetic(3000, 0.0)
    true_benefit = (1 / (1 + np.exp(-(-0.5 + frame["x1"])))
                    - 1 / (1 + np.exp(-(-0.5 + frame["x1"] - 1.5 * frame["x2"]))))
    assert np.corrcoef(result.best.benefit, true_benefit)[0, 1] > 0.8
    policy = result.policy
    assert policy["treat_by_benefit"].low > policy["treat_all"].value


def test_constant_effect_reports_no_detectable_heterogeneity(tmp_path):
    frame = synthetic(1500, 0.0, seed=3)
    frame["event"] = (np.random.default_rng(4).random(len(frame))
                      < np.where(frame["arm"] == "new", 0.2, 0.3)).astype(int)
    result = run_study(binary_spec(tmp_path, frame, randomised=True), quiet=True, save=False)
    assert not result.heterogeneity_detected
    assert result.verdict.startswith("No heterogeneity detectable")
    assert result.average.low < 0.1 < result.average.high


def test_observational_study_refuses_when_the_arms_do_not_overlap(tmp_path):
    spec = binary_spec(tmp_path, synthetic(1500, 6.0))
    with pytest.raises(DataError, match=r"patients \(\d+%\) had a propensity outside "
                                        r"0.05-0.95: for them one treatment was all but certain"):
        run_study(spec, quiet=True, save=False)


def test_trimming_leaves_out_and_lists_the_patients_outside_overlap(tmp_path):
    spec = binary_spec(tmp_path, synthetic(1500, 6.0), trim_outside_overlap=True)
    result = run_study(spec, quiet=True)
    assert 0 < len(result.trimmed) < 1500
    assert len(result.treated) == 1500 - len(result.trimmed)
    low, high = spec.treatment.overlap_bounds
    report = result.report_path.read_text()
    assert f"{len(result.trimmed)} patient(s) with a propensity outside {low:g}–{high:g}" in report


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "multiclass"}, "treatment effects need task: binary or survival"),
        ({"validation": {"scheme": "temporal"}, "time_column": "x3"},
         "does not support validation.scheme"),
        ({"treatment": {"column": "event"}}, "treatment.column 'event' is also the target"),
        ({"treatment": {"column": "arm", "assignment_probability": 0.5}},
         "assignment_probability needs randomised: true"),
        ({"treatment": {"column": "arm", "horizon": 30}},
         "treatment.horizon is for task: survival"),
    ],
)
def test_treatment_spec_errors(tmp_path, change, message):
    raw = {"name": "bad", "data": {"path": "x.csv"}, "target": "event", "positive_class": 1,
           "treatment": {"column": "arm"}, **change}
    with pytest.raises((SpecError, ValueError), match=message):
        parse_spec(raw)


def test_a_third_arm_is_refused_naming_its_rows(tmp_path):
    frame = synthetic(300, 0.0)
    frame.loc[[4, 7], "arm"] = "other"
    with pytest.raises(DataError, match=r"treatment column 'arm' holds 'other' in rows 5, 8"):
        run_study(binary_spec(tmp_path, frame, randomised=True), quiet=True, save=False)


def test_bootstrap_refits_keep_each_arms_chosen_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    t = rng.integers(0, 2, 400)
    y = np.where(t == 1, np.sin(3 * X[:, 0]), X[:, 1]) + rng.normal(0, 0.1, 400)
    fitted = TLearner(SelectedModel(folds=3)).fit(X, t, y)
    again = fitted.resample(X, t, y, arm_bootstrap(t, rng))
    for before, after in zip(fitted.models_, again.models_, strict=True):
        assert type(after[-1] if hasattr(after, "steps") else after) is type(
            before.model_[-1] if hasattr(before.model_, "steps") else before.model_)
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = EffectModel(FunctionTransformer(), XLearner(SelectedModel(folds=3)), intervals=5,
                        benefit_sign=1).fit(frame, t, y)
    low, high = model.benefit_interval(frame.head(20))
    assert len(model.resamples_) == 5 and (low <= high).all()

