"""Transfer of a model to a new site: reweighted estimates and updates from few labels.

Real data: Rotterdam breast cancer (R ``survival``; death within 5 years of surgery) and
MASS Pima. Shifts are planted on the real features where a known answer is needed:
the target is drawn from held-out patients with a selection probability that depends
on their features only (a covariate shift), or their ages are moved far outside the
source's range; the shifted outcomes of the last test are drawn from a planted risk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.data.datasets import load_dataset
from medpredict.evaluation.metrics import auroc
from medpredict.monitoring.transfer import adapt_with_labels, reweighted_performance

FEATURES = ["age", "meno", "size_group", "grade", "log_nodes", "log_pgr", "log_er",
            "hormon", "chemo"]


@pytest.fixture(scope="module")
def rotterdam() -> pd.DataFrame:
    return load_dataset("rotterdam_5y")


def _split(frame: pd.DataFrame, seed: int):
    """Development (fits the model), source (outcomes known) and a target pool."""
    part = np.random.default_rng(seed).choice(3, len(frame), p=[0.4, 0.3, 0.3])
    development, source, pool = frame[part == 0], frame[part == 1], frame[part == 2]
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(development[FEATURES], development["died_5y"])
    return model, source, pool


def _risk(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[FEATURES])[:, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reweighting_recovers_the_target_auroc_under_a_planted_covariate_shift(
    rotterdam, seed
):
    model, source, pool = _split(rotterdam, seed)
    # the target keeps mostly patients of middling risk: a narrower spread of risk and
    # a lower AUROC than the source, with the outcome given the features unchanged
    lp = model.decision_function(pool[FEATURES])
    z = (lp - lp.mean()) / lp.std()
    rng = np.random.default_rng(100 + seed)
    target = pool[rng.uniform(size=len(pool)) < np.exp(-1.5 * z**2)]
    target_risk = _risk(model, target)
    truth = auroc(target["died_5y"].to_numpy(dtype=float), target_risk)

    result = reweighted_performance(source[FEATURES], source["died_5y"], _risk(model, source),
                                    target[FEATURES], target_risk, n_boot=50, seed=seed)
    weighted, unweighted = result.weighted["auroc"].value, result.unweighted["auroc"].value
    assert unweighted - truth > 0.04  # the shift matters
    assert abs(weighted - truth) < abs(unweighted - truth)
    assert not result.out_of_support
    assert 0 < result.ess < len(source)
    assert set(result.weighted) == {"auroc", "brier", "calibration_intercept",
                                    "calibration_slope"}
    for estimate in result.weighted.values():
        assert estimate.low <= estimate.value <= estimate.high
    assert "effective sample size" in result.summary
    assert "out of the source's support" not in result.summary


def test_a_target_far_outside_the_source_is_flagged_out_of_support(rotterdam):
    model, source, pool = _split(rotterdam, 0)
    target = pool.copy()
    target["age"] = target["age"] + 60  # no source patient is anywhere near these ages
    result = reweighted_performance(source[FEATURES], source["died_5y"], _risk(model, source),
                                    target[FEATURES], _risk(model, target), n_boot=20)
    assert result.out_of_support
    assert result.domain.auroc.value > 0.95
    assert result.summary.startswith("The target is out of the source's support")
    assert "extrapolations" in result.summary
    summary = result.to_dict()
    assert summary["out_of_support"] and "weights" not in summary["domain"]


def test_adapt_with_labels_keeps_the_original_model_on_the_same_population():
    features = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]
    source, target = load_dataset("pima_tr"), load_dataset("pima_te")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(source[features],
                                                                        source["type"])
    labelled = target.sample(150, random_state=0)
    adaptation = adapt_with_labels(model, labelled[features], labelled["type"])
    assert adaptation.method == "original" and not adaptation.updated
    assert adaptation.model is model
    assert "kept unchanged" in adaptation.reason
    assert adaptation.to_dict()["test"]["n"] == 150


def test_adapt_with_labels_updates_when_the_target_outcomes_are_shifted(rotterdam):
    model, _, pool = _split(rotterdam, 0)
    labelled = pool.sample(150, random_state=0)
    # planted: the target's odds of death are e^1.2 times the source's, same ranking
    risk = np.clip(_risk(model, labelled), 1e-6, 1 - 1e-6)
    died = np.random.default_rng(0).uniform(size=risk.size) < expit(logit(risk) + 1.2)
    adaptation = adapt_with_labels(model, labelled[FEATURES], died.astype(int),
                                   features=["grade", "log_nodes"])
    assert adaptation.updated
    assert adaptation.method in ("recalibration_in_the_large", "logistic_recalibration")
    assert adaptation.model is not model
    updated = adaptation.model.predict_proba(labelled[FEATURES])[:, 1]
    assert updated.mean() > risk.mean()


def test_mismatched_lengths_are_refused(rotterdam):
    model, source, pool = _split(rotterdam, 0)
    with pytest.raises(ValueError, match="one value per row"):
        reweighted_performance(source[FEATURES], source["died_5y"][:-1], _risk(model, source),
                               pool[FEATURES], _risk(model, pool))
