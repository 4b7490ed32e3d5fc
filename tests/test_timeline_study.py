"""A timeline study the way a user runs it: `medpredict events`, `medpredict run` with an
external set of challenge files, and the bundled example spec (PhysioNet/CinC 2012 set A)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.settings import require_data
from medpredict.spec import load_spec, parse_spec
from medpredict.timeline.events import read_meds

runner = CliRunner()


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    """Two sets in the challenge's layout: 300 stays as a folder, 150 more as a .tar.gz."""
    root = tmp_path_factory.mktemp("challenge")
    with tarfile.open(require_data("ehr/physionet2012/set-a.tar.gz")) as tar:
        members = sorted((m for m in tar if m.name.endswith(".txt")), key=lambda m: m.name)
        tar.extractall(root / "dev", members=members[:300], filter="data")
        tar.extractall(root / "ext", members=members[300:450], filter="data")
    with tarfile.open(root / "set-x.tar.gz", "w:gz") as out:
        for path in sorted((root / "ext").rglob("*.txt")):
            out.add(path, arcname=f"set-x/{path.name}")
    outcomes = pd.read_csv(require_data("ehr/physionet2012/Outcomes-a.txt"))
    for part, folder in (("dev", root / "dev"), ("x", root / "ext")):
        ids = [int(p.stem) for p in folder.rglob("*.txt")]
        outcomes[outcomes["RecordID"].isin(ids)].to_csv(root / f"Outcomes-{part}.txt", index=False)
    return root


def test_events_command_writes_meds_and_the_quarantine(challenge, tmp_path):
    result = runner.invoke(app, [
        "events", str(challenge / "dev"), "--reader", "physionet2012",
        "--outcomes", str(challenge / "Outcomes-dev.txt"), "--out", str(tmp_path / "meds")])
    assert result.exit_code == 0, result.output
    rows_in = int(result.output.split("rows in ")[1].split(" ")[0].replace(",", ""))
    events = read_meds(tmp_path / "meds")
    quarantine = pd.read_csv(tmp_path / "meds" / "quarantine.csv")
    assert rows_in == len(events) + len(quarantine)
    assert set(quarantine.columns) >= {"source", "line", "reason"}
    assert events["subject_id"].nunique() == 300
    assert len(pd.read_csv(tmp_path / "meds" / "outcomes.csv")) == 300
    bad = runner.invoke(app, ["events", str(tmp_path / "nothing"), "--reader",
                              "physionet2012", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "notfound" in re.sub(r"[\s│]", "", bad.output)


@pytest.mark.slow
def test_run_validates_externally_on_another_set_of_challenge_files(challenge, tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(f"""
name: icu48
data:
  events: {{reader: physionet2012, path: {challenge / 'dev'},
           outcomes: {challenge / 'Outcomes-dev.txt'}}}
timeline:
  index: {{offset: 24h}}
  observation: 24h
  windows: [6h, 24h]
  step: null
  outcome: {{column: In-hospital_death}}
target: died
positive_class: 1
validation:
  folds: 3
  nested: false
  external:
    events: {{reader: physionet2012, path: {challenge / 'set-x.tar.gz'},
             outcomes: {challenge / 'Outcomes-x.txt'}}}
models: [logistic_regression, lightgbm]
bootstrap: 50
trust: {{learning_curve: false, explain_rows: 50}}
""")
    result = runner.invoke(app, ["run", str(spec), "--output-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "icu48" / "metrics.json").read_text())
    assert metrics["holdouts"]["external"]["rows"] == 150
    assert 0.5 < metrics["holdouts"]["external"]["metrics"]["auroc"]["value"] <= 1
    assert metrics["timeline"]["flow"][0]["remaining"] == 300
    saved = json.loads((tmp_path / "icu48" / "model" / "metadata.json").read_text())["spec"]
    assert parse_spec(saved).features is None  # the resolved spec runs again as written
    html = (tmp_path / "icu48" / "report.html").read_text()
    assert "Cohort flow" in html and "external" in html


def test_the_bundled_example_reads_the_reference_data():
    spec = load_spec(Path(__file__).parents[1] / "medpredict" / "examples" / "physionet2012.yaml")
    assert spec.data.events.path == require_data("ehr/physionet2012/set-a.tar.gz")
    assert spec.data.events.outcomes == require_data("ehr/physionet2012/Outcomes-a.txt")
    assert spec.timeline.index.offsets() == [pd.Timedelta("48h")]
    assert (spec.id_column, spec.patient_column) == ("sample_id", "subject_id")
