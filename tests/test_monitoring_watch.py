"""``medpredict watch`` on real data: a model of death within 5 years after breast cancer
surgery, developed on Rotterdam patients operated up to 1987 and watched on those
operated 1988-1993 (the bundled ``rotterdam_5y``; the last year's outcomes are withheld,
as if they had not arrived)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError
from medpredict.monitoring.watch import watch


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("watch")
    frame = load_dataset("rotterdam_5y").rename(columns={"died_5y": "death5"})
    frame = frame[["age", "meno", "size", "grade", "nodes", "pgr", "er", "hormon", "year",
                   "death5"]]
    frame[frame["year"] <= 1987].drop(columns="year").to_csv(folder / "dev.csv", index=False)
    later = frame[frame["year"] > 1987].copy()
    later["death5"] = later["death5"].astype(float)
    later.loc[later["year"] == 1993, "death5"] = np.nan
    later.to_csv(folder / "later.csv", index=False)
    spec = {"name": "rott5", "data": {"path": str(folder / "dev.csv")}, "target": "death5",
            "positive_class": 1, "models": ["logistic_regression"], "bootstrap": 0}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    ran = CliRunner().invoke(app, ["run", str(folder / "spec.yaml"), "--output-dir",
                                   str(folder / "runs"), "--quiet"])
    assert ran.exit_code == 0, ran.output
    return folder


def test_watch_reports_each_period_with_realised_where_outcomes_arrived(cohort):
    out = cohort / "watched"
    ran = CliRunner().invoke(app, [
        "watch", "--model", str(cohort / "runs" / "rott5" / "model"),
        "--reference", str(cohort / "dev.csv"), "-i", str(cohort / "later.csv"),
        "--period-column", "year", "--outcome-column", "death5", "--output-dir", str(out),
        "--bootstrap", "200"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads((out / "watch.json").read_text())
    periods = {str(p["period"]): p for p in summary["periods"]}
    assert list(periods) == [str(y) for y in range(1988, 1994)]
    assert periods["1993"]["with_outcome"] == 0 and periods["1993"]["realised_auroc"] is None
    later = pd.read_csv(cohort / "later.csv")
    for year in range(1988, 1993):
        row = periods[str(year)]
        assert row["with_outcome"] == row["n"] == int((later["year"] == year).sum())
        assert row["realised_auroc_low"] <= row["realised_auroc"] <= row["realised_auroc_high"]
        assert 0.6 < row["expected_auroc"] < 0.9
    # hormonal therapy rose from 4% of patients to about 30% by 1992 (Rotterdam's records)
    assert any(a.startswith("1992: hormon: major shift") for a in summary["alerts"])
    assert all(0.5 < d["auroc"]["value"] < 0.95 for d in summary["domains"].values())
    report = (out / "report.html").read_text()
    for title in ("Alerts", "Performance over time", "Feature drift", "Who the patients are"):
        assert title in report
    assert "hormon" in ran.output and "report:" in ran.output


def test_same_population_raises_no_performance_alert(cohort):
    development = pd.read_csv(cohort / "dev.csv")
    halves = development.assign(half=np.arange(len(development)) % 2)
    result = watch(cohort / "runs" / "rott5" / "model", development, halves, "half",
                   outcome_column="death5", n_boot=200)
    assert not result.periods["prediction_psi"].ge(0.1).any()
    assert (result.periods["domain_auroc_low"] < 0.5).all()
    assert not result.alerts


def test_watch_refuses_rows_without_a_period_and_models_it_cannot_watch(cohort):
    later = pd.read_csv(cohort / "later.csv")
    later.loc[[3, 9], "year"] = np.nan
    development = pd.read_csv(cohort / "dev.csv")
    with pytest.raises(DataError, match=r"period column 'year' is missing in rows \[4, 10\]"):
        watch(cohort / "runs" / "rott5" / "model", development, later, "year")
    with pytest.raises(DataError, match=r"reference \(development\) table column\(s\) .age. not"):
        watch(cohort / "runs" / "rott5" / "model", development.drop(columns="age"),
              later.dropna(subset=["year"]), "year")
