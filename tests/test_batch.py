"""Partitioned batch scoring: rows in = rows out, same risks as in-process scoring.

Data: Ripley's Pima test set (real), split into Parquet partitions; a bad value
injected into one partition is synthetic.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medpredict.artifact import load_model, verify_directory
from medpredict.batch import BATCH_FILE, input_partitions, score_partitions
from medpredict.cli import app
from medpredict.cluster import on_cluster
from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError
from medpredict.predict import predict_frame
from medpredict.spec import parse_spec
from medpredict.study import run_study


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    spec = parse_spec({
        "name": "pima-batch", "data": {"dataset": "pima_tr"}, "target": "type",
        "positive_class": "Yes", "models": ["logistic_regression", "lightgbm"],
        "bootstrap": 0, "validation": {"nested": False},
        "output_dir": str(tmp_path_factory.mktemp("model")),
    })
    return run_study(spec, quiet=True).model_dir


@pytest.fixture
def partitions(tmp_path):
    new = load_dataset("pima_te").drop(columns=["type"])
    new.insert(0, "patient", [f"p{k}" for k in range(len(new))])
    folder = tmp_path / "in"
    (folder / "2026" / "12").mkdir(parents=True)
    bounds = [0, 120, 121, 332]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        new.iloc[a:b].to_parquet(folder / "2026" / "12" / f"day-{k}.parquet", index=False)
    new.iloc[:0].to_parquet(folder / "empty.parquet", index=False)
    return folder, new


def test_every_partition_is_scored_in_order_with_nothing_lost(model_dir, partitions, tmp_path):
    folder, new = partitions
    batch = score_partitions(model_dir, folder, tmp_path / "out", keep=["patient"],
                             chunk_rows=50, quiet=True)
    assert [p.input_rows for p in batch.partitions] == [120, 1, 211, 0]
    assert all(p.input_rows == p.output_rows for p in batch.partitions)
    assert batch.partitions[-1].output is None  # the empty partition writes no file
    written = pd.concat(
        [pd.read_parquet(tmp_path / "out" / p.output) for p in batch.partitions if p.output],
        ignore_index=True,
    )
    expected = predict_frame(load_model(model_dir), new, keep=["patient"])
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, check_column_type=False)
    record = json.loads((tmp_path / "out" / BATCH_FILE).read_text())
    assert record["model"]["sha256"] == load_model(model_dir).sha256
    assert sum(p["output_rows"] for p in record["partitions"]) == len(new)
    assert verify_directory(tmp_path / "out").files


def test_a_bad_value_names_the_partition_and_its_row(model_dir, partitions, tmp_path):
    folder, _ = partitions
    target = folder / "2026" / "12" / "day-2.parquet"
    frame = pd.read_parquet(target)
    frame["glu"] = frame["glu"].astype(str)
    frame.iloc[76, frame.columns.get_loc("glu")] = "high"
    frame.to_parquet(target, index=False)
    with pytest.raises(DataError) as caught:
        score_partitions(model_dir, folder, tmp_path / "out", keep=["patient"],
                         chunk_rows=50, quiet=True)
    message = str(caught.value)
    assert "day-2.parquet" in message and "glu" in message and "77" in message


def test_a_used_output_folder_and_an_empty_input_are_refused(model_dir, partitions, tmp_path):
    folder, _ = partitions
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("earlier results")
    with pytest.raises(DataError, match="must be new or empty"):
        score_partitions(model_dir, folder, used, quiet=True)
    with pytest.raises(DataError, match="inside the input folder"):
        score_partitions(model_dir, folder, folder / "risks", quiet=True)
    with pytest.raises(DataError, match="no file matches"):
        input_partitions(tmp_path / "nothing-*.parquet")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match=r"no \.parquet files"):
        input_partitions(tmp_path / "notes")
    with pytest.raises(DataError, match="must be Parquet"):
        input_partitions(str(tmp_path / "notes" / "*"))


def test_the_cli_scores_a_glob_on_a_local_cluster_like_in_process(model_dir, partitions,
                                                                  tmp_path):
    folder, _ = partitions
    pattern = str(folder / "2026" / "*" / "*.parquet")
    runner = CliRunner()
    here = runner.invoke(app, ["predict", "--model", str(model_dir), "--input", pattern,
                               "--output", str(tmp_path / "here"), "--keep", "patient",
                               "--quiet"])
    assert here.exit_code == 0, here.output
    assert "332 risk(s) in 3 partition(s)" in here.output
    there = runner.invoke(app, ["predict", "--model", str(model_dir), "--input", pattern,
                                "--output", str(tmp_path / "there"), "--keep", "patient",
                                "--cluster", "local:2", "--quiet"])
    assert there.exit_code == 0, there.output
    for k in range(3):
        name = f"part-{k:05d}.parquet"
        a = pd.read_parquet(tmp_path / "here" / name)
        b = pd.read_parquet(tmp_path / "there" / name)
        np.testing.assert_array_equal(a["risk"].to_numpy(), b["risk"].to_numpy())
    refused = runner.invoke(app, ["predict", "--model", str(model_dir), "--input", pattern,
                                  "--output", str(tmp_path / "x"), "--explain"])
    assert refused.exit_code != 0 and "partitioned" in refused.output


def test_partitions_on_a_cluster_are_checked_the_same_way(model_dir, partitions, tmp_path):
    folder, new = partitions
    with on_cluster("local:2"):
        batch = score_partitions(model_dir, folder, tmp_path / "out", keep=["patient"], quiet=True)
    assert batch.rows == len(new)
