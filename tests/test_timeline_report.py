"""The report of a timeline study: cohort flow first, data over time, early warning, patients.

One small real study (400 PhysioNet 2012 set-a stays, three landmarks) runs through the
study runner; the report and metrics.json it writes are read back and checked against
the study's own summary and predictions.
"""

from __future__ import annotations

import html
import json
import re
import tarfile

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medpredict.settings import require_data
from medpredict.spec import parse_spec
from medpredict.study.runner import run_study
from medpredict.timeline.report import alerts_per_patient_day, example_patients, sample_frame
from medpredict.timeline.validate import REASONS

N_RECORDS = 300
LANDMARKS = ["12h", "24h", "48h"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study result and its report, read back as (id, title, body) sections."""
    archive = require_data("ehr/physionet2012/set-a.tar.gz")
    outcomes = pd.read_csv(require_data("ehr/physionet2012/Outcomes-a.txt"))
    root = tmp_path_factory.mktemp("physionet")
    with tarfile.open(archive) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.name.endswith(".txt")), key=lambda m: m.name
        )[:N_RECORDS]
        tar.extractall(root, members=members, filter="data")
    folder = root / "set-a"
    ids = {int(p.stem) for p in folder.glob("*.txt")}
    assert len(ids) == N_RECORDS
    outcomes[outcomes["RecordID"].isin(ids)].to_csv(root / "outcomes.csv", index=False)
    spec = parse_spec(
        {
            "name": "timeline-report",
            "data": {
                "events": {"reader": "physionet2012", "path": str(folder),
                           "outcomes": str(root / "outcomes.csv")}
            },
            "timeline": {
                "index": {"landmarks": LANDMARKS},
                "outcome": {"column": "In-hospital_death"},
                "step": "4h",
                "inclusion": {"max_age": 85},
            },
            "target": "In-hospital_death",
            "positive_class": 1,
            "models": ["logistic_regression", "lightgbm"],
            "bootstrap": 50,
            "validation": {"folds": 3, "nested": False},
            "trust": {"learning_curve": False, "explain_rows": 100},
            "output_dir": str(root / "run"),
        },
        root,
    )
    result = run_study(spec, quiet=True)
    page = result.report_path.read_text(encoding="utf-8")
    sections = re.findall(
        r'<h2 id="([^"]+)">([^<]*)</h2>\n(.*?)(?=<h2 id=|</body>)', page, flags=re.S
    )
    return result, page, sections


def _tables(body: str) -> list[list[list[str]]]:
    """Every table of ``body`` as rows of unescaped cell texts (header row first)."""
    return [
        [
            [html.unescape(cell) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found, flags=re.S)
        ]
        for found in re.findall(r"<table>.*?</table>", body, flags=re.S)
    ]


def _section(sections, title: str) -> str:
    bodies = [body for _, name, body in sections if name == title]
    assert len(bodies) == 1, f"expected one {title!r} section"
    return bodies[0]


def test_report_opens_with_the_cohort_flow(study):
    result, _, sections = study
    titles = [title for _, title, _ in sections]
    assert titles[:5] == [
        "Cohort flow", "Data over time", "Early warning", "Patient timelines", "Summary"
    ]
    flow = result.timeline.flow
    assert flow[-1].remaining == len(result.cohort.y)
    excluded = [s for s in flow if s.excluded]
    assert [s.label for s in excluded] == ["aged at most 85"]
    body = sections[0][2]
    svg = re.search(r"<svg.*?</svg>", body, flags=re.S).group(0)
    boxes = re.findall(r'font-weight="600">([^<]*)</text>', svg)
    assert boxes == [f"{s.remaining:,} {s.unit}" for s in flow]
    assert svg.count("excluded: ") == len(excluded)
    for step in excluded:
        assert f"excluded: {step.excluded:,} {step.unit}" in svg
    rows = _tables(body)[0]
    assert rows[0][:5] == ["step", "cohort", "remaining", "unit", "excluded"]
    shown = [(r[1], int(r[2].replace(",", "")), r[3], int(r[4].replace(",", ""))) for r in rows[1:]]
    assert shown == [(s.label, s.remaining, s.unit, s.excluded) for s in flow]


def test_reading_line_adds_up_with_reasons_named(study):
    result, _, sections = study
    summary = result.timeline
    body = html.unescape(sections[0][2])
    quarantined = sum(summary.quarantined.values())
    assert summary.rows_in == summary.events + quarantined
    assert (
        f"rows in {summary.rows_in:,} = events stored {summary.events:,} + rows quarantined "
        f"{quarantined:,}" in body
    )
    assert quarantined > 0  # set A marks missing descriptors with -1
    reasons = {row[0]: row for row in _tables(sections[0][2])[1][1:]}
    assert set(reasons) == set(summary.quarantined)
    for reason, count in summary.quarantined.items():
        assert reasons[reason][1:] == [f"{count:,}", REASONS[reason]]


def test_missingness_and_density(study):
    result, _, sections = study
    body = _section(sections, "Data over time")
    missing = result.timeline.missingness.set_index("code")
    rows = _tables(body)[0]
    assert rows[0][:3] == ["variable", "never measured", "median count when measured"]
    shown = {r[0]: r for r in rows[1:]}
    assert set(shown) == set(missing.index)
    for code, row in shown.items():
        assert row[1] == f"{missing.loc[code, 'missing']:.1%}"
    shares = [float(r[1].rstrip("%")) for r in rows[1:]]
    assert shares == sorted(shares, reverse=True)
    # vitals are charted about hourly, laboratory values a few times a day
    per_day = {r[0]: float(r[3]) for r in rows[1:]}
    assert per_day["HR"] > 12 > per_day["K"]
    assert body.count("<img") == 2  # the bar chart and the heatmap


def test_early_warning_has_one_auroc_per_landmark(study):
    result, _, sections = study
    body = _section(sections, "Early warning")
    frame = sample_frame(result)
    tables = _tables(body)
    discrimination = tables[0]
    assert discrimination[0][3] == "AUROC (95% CI)"
    assert [r[0] for r in discrimination[1:]] == LANDMARKS
    for row, landmark in zip(discrimination[1:], LANDMARKS, strict=True):
        part = frame[frame["hours"] == float(landmark[:-1])]
        value, low, high = map(float, re.match(r"([\d.]+) \(([\d.]+)–([\d.]+)\)", row[3]).groups())
        assert value == pytest.approx(roc_auc_score(part["y"], part["risk"]), abs=6e-4)
        assert low <= value <= high
        assert int(row[1]) == len(part) and int(row[2]) == int(part["y"].sum())
    label, threshold = next(iter(result.best.thresholds.items()))
    assert f"operating point {label}" in html.unescape(body)
    alerts = tables[1]
    for row, landmark in zip(alerts[1:], LANDMARKS, strict=True):
        part = frame[frame["hours"] == float(landmark[:-1])]
        alerted = part["risk"] >= threshold
        assert int(row[3]) == int(alerted.sum())
        assert int(row[4]) == int((alerted & (part["y"] == 1)).sum())
        assert row[7] == "not recorded"
    assert "Outcome times are not recorded" in html.unescape(body)
    daily = tables[2]
    assert [int(r[0]) for r in daily[1:]] == [1, 2]  # 12h and 24h on day 1, 48h on day 2
    expected = alerts_per_patient_day(frame, threshold)
    assert [int(r[3]) for r in daily[1:]] == expected["alerts"].tolist()
    assert sum(int(r[3]) for r in daily[1:]) == int((frame["risk"] >= threshold).sum())


def test_patient_timelines_show_three_chosen_samples(study):
    result, _, sections = study
    body = _section(sections, "Patient timelines")
    frame = sample_frame(result)
    threshold = next(iter(result.best.thresholds.values()))
    chosen = example_patients(frame, threshold)
    headings = re.findall(r"<h3>([^<]*)</h3>", body)
    assert headings == [
        f"{role}: {frame.loc[position, 'sample_id']}" for role, position in chosen.items()
    ]
    assert len(headings) == 3
    top = frame.loc[chosen["highest-risk true positive"]]
    latest = frame[frame["hours"] == 48.0]
    assert top["y"] == 1 and top["risk"] == latest.loc[latest["y"] == 1, "risk"].max()
    assert frame.loc[chosen["false negative"], "risk"] < threshold
    assert body.count("<img") == 3
    # each patient's strongest factors by variable and window (SHAP of the fold model)
    for factors in _tables(body):
        assert factors[0][:2] == ["variable", "window"]
        sizes = [abs(float(r[2])) for r in factors[1:]]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0


def test_metrics_json_carries_the_timeline(study):
    result, _, _ = study
    metrics = json.loads((result.spec.run_dir / "metrics.json").read_text())
    timeline = metrics["timeline"]
    assert timeline == json.loads(json.dumps(result.timeline.to_dict()))
    assert timeline["rows_in"] == timeline["events"] + sum(timeline["quarantined"].values())
    assert [s["remaining"] for s in timeline["flow"]][-1] == metrics["rows"]
    assert np.isclose(
        metrics["candidates"][result.best_name]["metrics"]["auroc"]["value"],
        result.best.metrics["auroc"].value,
    )
