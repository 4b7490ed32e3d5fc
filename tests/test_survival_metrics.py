"""Survival metrics against scikit-survival on real data (GBSG2 and WHAS500 ship in its
wheel), plus the calibration slope and Cox loss on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sksurv.datasets import load_gbsg2, load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator

from medpredict.evaluation import survival as metrics
from medpredict.survival.deep import cox_partial_likelihood
from medpredict.survival.outcome import SURVIVAL_DTYPE
from medpredict.survival.scoring import SurvivalPredictions, SurvivalScorer, brier_times


def _cox_on(loader):
    X, y = loader()
    X = X.select_dtypes("number").to_numpy(dtype=float)
    X = (X - X.mean(0)) / X.std(0)
    names = y.dtype.names
    event, time = y[names[0]].astype(bool), y[names[1]].astype(float)
    outcome = np.empty(time.size, dtype=SURVIVAL_DTYPE)
    outcome["event"], outcome["time"] = event, time
    half = np.arange(time.size) % 2 == 0
    model = CoxPHSurvivalAnalysis(alpha=0.01).fit(X[half], outcome[half])
    test = ~half
    return model, X[test], time[test], event[test], outcome[half], outcome[test]


@pytest.fixture(scope="module", params=[load_gbsg2, load_whas500], ids=["gbsg2", "whas500"])
def held_out(request):
    return _cox_on(request.param)


def test_concordance_matches_scikit_survival(held_out):
    model, X, time, event, train, test = held_out
    risk = model.predict(X)
    for r in (risk, np.round(risk, 1)):  # the rounded risks have many ties
        expected = concordance_index_censored(event, time, r)[0]
        assert metrics.harrell_c(time, event, r) == pytest.approx(expected, abs=1e-12)
    g = metrics.KaplanMeier.fit(train["time"], train["event"], reverse=True)
    tau = float(np.quantile(time, 0.7))
    for t in (None, tau):
        expected = concordance_index_ipcw(train, test, risk, tau=t)[0]
        assert metrics.uno_c(time, event, risk, g, t) == pytest.approx(expected, abs=1e-10)


def test_auc_and_brier_match_scikit_survival(held_out):
    model, X, time, event, train, test = held_out
    g = metrics.KaplanMeier.fit(train["time"], train["event"], reverse=True)
    times = np.quantile(time[event], [0.2, 0.5, 0.8])
    risk = model.predict(X)
    expected_auc, _ = cumulative_dynamic_auc(train, test, risk, times)
    ours = [metrics.cumulative_dynamic_auc(time, event, risk, t, g) for t in times]
    np.testing.assert_allclose(ours, expected_auc, atol=1e-10)
    grid = np.quantile(time, np.linspace(0.1, 0.8, 15))
    curves = np.vstack([f(grid) for f in model.predict_survival_function(X)])
    _, expected = brier_score(train, test, curves, grid)
    np.testing.assert_allclose(metrics.brier_scores(time, event, curves, grid, g), expected,
                               atol=1e-12)
    assert metrics.integrated_brier(time, event, curves, grid, g) == pytest.approx(
        integrated_brier_score(train, test, curves, grid), abs=1e-12)


def test_scorer_brier_terms_equal_the_direct_brier_on_resampled_rows(held_out):
    model, X, time, event, _, _ = held_out
    grid = np.unique(np.concatenate([np.quantile(time, np.linspace(0, 1, 80)), brier_times(time)]))
    functions = model.predict_survival_function(X)
    curves = np.vstack([f(np.clip(grid, None, f.x[-1])) for f in functions])
    scorer = SurvivalScorer(SurvivalPredictions(grid, curves), time, event, [365.0])
    rows = np.random.default_rng(3).integers(0, time.size, time.size)
    at = SurvivalPredictions(grid, curves[rows])
    direct = metrics.integrated_brier(time[rows], event[rows],
                                      np.column_stack([at.at(t) for t in scorer.ibs_times]),
                                      scorer.ibs_times, scorer.censoring)
    assert scorer(rows)["integrated_brier"] == pytest.approx(direct, abs=1e-12)
    assert scorer(rows)["harrell_c"] == pytest.approx(
        metrics.harrell_c(time[rows], event[rows], at.risk), abs=1e-12)


def test_kaplan_meier_matches_scikit_survival():
    _, y = load_whas500()
    event, time = y["fstat"], y["lenfol"]
    times, survival = kaplan_meier_estimator(event, time)
    km = metrics.KaplanMeier.fit(time, event)
    np.testing.assert_allclose(km(times), survival, atol=1e-12)
    g_times, g = kaplan_meier_estimator(event, time, reverse=True)
    np.testing.assert_allclose(metrics.KaplanMeier.fit(time, event, reverse=True)(g_times), g,
                               atol=1e-12)


def test_cox_slope_recovers_a_known_coefficient():
    """Synthetic: exponential times with log hazard 0.7 x, 30% random censoring."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    time = rng.exponential(np.exp(-0.7 * x))
    censor = rng.exponential(3.0, size=x.size)
    observed, event = np.minimum(time, censor), time <= censor
    assert metrics.cox_slope(observed, event, x) == pytest.approx(0.7, abs=0.05)


def test_calibration_slope_is_one_for_the_true_model_and_below_one_for_overfitted():
    """Synthetic: with the true survival curves the slope is about 1; curves that
    exaggerate every patient's difference from the average (log hazard doubled) give
    a slope near 0.5, the clinical signature of an overfitted model."""
    rng = np.random.default_rng(1)
    lp = rng.normal(size=5000)
    time = rng.exponential(np.exp(-lp))
    h = 1.0
    true_survival = np.exp(-np.exp(lp) * h)
    exaggerated = np.exp(-np.exp(2 * lp) * h)
    assert metrics.calibration_slope(time, np.ones(lp.size, bool), true_survival, h) == \
        pytest.approx(1.0, abs=0.07)
    assert metrics.calibration_slope(time, np.ones(lp.size, bool), exaggerated, h) == \
        pytest.approx(0.5, abs=0.05)


def test_cox_loss_is_breslow_partial_likelihood_with_ties():
    """Synthetic tied times: the batch loss equals the textbook Breslow formula."""
    f = torch.tensor([0.3, -0.2, 0.5, 0.0, 1.0], dtype=torch.float64)
    t = torch.tensor([2.0, 2.0, 3.0, 5.0, 1.0], dtype=torch.float64)
    e = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    expected = 0.0
    for i in range(5):
        if e[i]:
            expected -= float(f[i] - torch.log(torch.exp(f[t >= t[i]]).sum()))
    assert float(cox_partial_likelihood(f, t, e)) == pytest.approx(expected / 4, abs=1e-12)


def test_concordance_counts_are_exact_on_a_large_table():
    """Synthetic 20,000 rows with heavy ties in time and risk: the blocked count equals
    scikit-survival's pairwise count."""
    rng = np.random.default_rng(5)
    time = rng.integers(1, 300, 20_000).astype(float)
    event = rng.random(20_000) < 0.6
    risk = rng.integers(0, 50, 20_000).astype(float)
    expected = concordance_index_censored(event, time, risk)[0]
    assert metrics.harrell_c(time, event, risk) == pytest.approx(expected, abs=1e-12)


def test_decision_curve_treat_all_equals_the_kaplan_meier_event_rate():
    _, y = load_whas500()
    event, time = y["fstat"], y["lenfol"]
    curve = metrics.net_benefit_at(time, event, np.ones(time.size), 365.0, [0.0])
    km_risk = 1 - metrics.KaplanMeier.fit(time, event)(365.0)
    assert curve["treat_all"][0] == pytest.approx(km_risk)
    assert curve["model"][0] == pytest.approx(km_risk)
