"""Treatment-effect learners and their held-out tests: synthetic data with known effects
(said so in each test), IHDP (Hill's semi-synthetic surface on the real IHDP covariates,
shipped in the econml wheel) and the ACTG 320 trial (shipped in scikit-survival)."""

from __future__ import annotations

import numpy as np
import pytest
from econml.data.dgps import ihdp_surface_B
from lightgbm import LGBMRegressor
from sklearn.model_selection import train_test_split

from medpredict.data.errors import DataError
from medpredict.effects.evaluation import (
    benefit_quartiles,
    check_overlap,
    group_effects,
    pehe,
    policy_values,
    rate,
)
from medpredict.effects.learners import (
    LEARNERS,
    SelectedModel,
    TLearner,
    cross_fitted_scores,
    dr_scores,
    outcome_candidates,
)


def fast() -> SelectedModel:
    """A two-candidate selector (ridge, quadratic ridge): enough for the synthetic data,
    whose effects are linear in the features, and quick."""
    every = outcome_candidates()
    return SelectedModel({k: every[k] for k in ("ridge", "quadratic_ridge")})


def confounded(n: int = 2000, seed: int = 0):
    """Synthetic: treatment more likely for high x0, which also raises the outcome;
    true effect 1 + x1."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    e = 1 / (1 + np.exp(-X[:, 0]))
    t = (rng.random(n) < e).astype(int)
    tau = 1 + X[:, 1]
    y = 2 * X[:, 0] + t * tau + rng.normal(0, 0.5, n)
    return X, t, y, tau, e


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_recovers_a_known_heterogeneous_effect(name):
    X, t, y, tau, _ = confounded(1000)
    models = {"outcome": fast()}
    if name in ("x_learner", "dr_learner"):
        models["effect_model"] = fast()
    learner = LEARNERS[name](**models).fit(X, t, y)
    estimate = learner.effect(X)
    assert pehe(tau, estimate) < 0.45
    assert abs(estimate.mean() - tau.mean()) < 0.15


def test_doubly_robust_scores_remove_confounding():
    """Synthetic: the naive difference in means is biased by x0; the AIPW mean is not."""
    X, t, y, tau, _ = confounded()
    naive = y[t == 1].mean() - y[t == 0].mean()
    scores = cross_fitted_scores(X, t, y, outcome=fast())
    assert abs(naive - tau.mean()) > 1.0
    assert abs(scores.mean() - tau.mean()) < 0.1


def test_dr_score_is_exact_with_true_nuisances():
    """Synthetic, noise-free outcomes and known models: every score is the true effect
    in expectation; averaged over the sample it is within sampling error."""
    X, t, y, tau, e = confounded()
    mu0 = 2 * X[:, 0]
    mu1 = mu0 + tau
    assert dr_scores(y, t, mu0, mu1, e).mean() == pytest.approx(tau.mean(), abs=0.1)


def test_rate_tells_real_from_absent_heterogeneity():
    """Synthetic: a ranking by the true effect gives an AUTOC interval above 0; the same
    data with a constant true effect gives one that contains 0."""
    X, t, y, tau, _ = confounded()
    scores = cross_fitted_scores(X, t, y, outcome=fast())
    assert rate(tau, scores, n_boot=300)["autoc"].low > 0
    flat = 2 * X[:, 0] + t * 1.0 + np.random.default_rng(1).normal(0, 0.5, t.size)
    flat_scores = cross_fitted_scores(X, t, flat, outcome=fast())
    found = rate(tau, flat_scores, n_boot=300)["autoc"]
    assert found.low < 0 < found.high


def test_policy_value_of_treating_by_benefit_beats_treating_all_when_some_are_harmed():
    """Synthetic: effect 1 + x1 is negative for a sixth of patients."""
    X, t, y, tau, _ = confounded()
    scores = cross_fitted_scores(X, t, y, outcome=fast())
    values = policy_values(tau, scores, n_boot=300)
    assert values["treat_by_benefit"].value > values["treat_all"].value
    assert values["treated_share"].value == pytest.approx(np.mean(tau > 0))


def test_selected_t_learner_beats_lightgbm_on_ihdp():
    y, t, X, truth = ihdp_surface_B(random_state=3)
    train, test = train_test_split(np.arange(y.size), test_size=0.3, random_state=3,
                                   stratify=t)
    baseline = TLearner(LGBMRegressor(n_jobs=1, verbose=-1)).fit(X[train], t[train], y[train])
    selected = TLearner().fit(X[train], t[train], y[train])
    assert pehe(truth[test], selected.effect(X[test])) < 0.8 * pehe(
        truth[test], baseline.effect(X[test]))
    assert all(isinstance(m, SelectedModel) and m.chosen_ in m.errors_ for m in selected.models_)


def test_actg_subgroup_table_and_quartiles():
    from sksurv.datasets import load_aids

    X, y = load_aids()
    t = X["tx"].astype(int).to_numpy()
    features = X.drop(columns=["tx", "txgrp"]).apply(lambda c: c.astype(float))
    event_by_180 = (y["censor"] & (y["time"] <= 180)).astype(float)
    scores = cross_fitted_scores(features.to_numpy(), t, event_by_180, outcome=fast(),
                                 randomised=0.5)
    quartiles = benefit_quartiles(features["cd4"].to_numpy())
    assert quartiles.value_counts().tolist() == [288, 288, 288, 287]
    table = group_effects(quartiles, -scores, n_boot=200)
    assert list(table["group"]) == ["Q1", "Q2", "Q3", "Q4"]
    assert (table["low"] <= table["effect"]).all() and (table["effect"] <= table["high"]).all()


def test_overlap_is_reported_and_its_failure_refused():
    """Synthetic: moderate confounding overlaps; near-deterministic assignment does not."""
    X, t, _, _, e = confounded()
    summary = check_overlap(e, t)
    assert summary["outside"] < 0.1 and summary["min_treated"] < summary["max_control"]
    strong = 1 / (1 + np.exp(-6 * X[:, 0]))
    with pytest.raises(DataError, match=r"had a propensity outside 0.05-0.95"):
        check_overlap(strong, (np.random.default_rng(0).random(t.size) < strong).astype(int))


def test_bad_treatment_values_and_tiny_arms_are_refused():
    X, t, y, _, _ = confounded(200)
    with pytest.raises(ValueError, match="treatment must be 0 or 1"):
        TLearner().fit(X, t * 2, y)
    with pytest.raises(ValueError, match="arm 1 has 3 patients"):
        TLearner().fit(X, np.r_[np.ones(3), np.zeros(197)].astype(int), y)
