"""Signals through the study seams: window table -> ``signal`` column -> spec -> run_study."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from medpredict.artifact import load_model
from medpredict.cli import app
from medpredict.data.errors import DataError
from medpredict.data.schema import Schema
from medpredict.encoders.tabular import build_preprocessor
from medpredict.models import make_model
from medpredict.models.registry import takes_raw_input
from medpredict.settings import require_data
from medpredict.signals.cohort import af_window_table
from medpredict.signals.features import SignalHRVFeatures
from medpredict.signals.loader import SignalDataError, SignalLoader
from medpredict.signals.nets import CNN1DClassifier, CNNGRUClassifier
from medpredict.signals.reference import parse_reference
from medpredict.signals.wfdb_io import read_record
from medpredict.signals.windows import af_windows
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.study.results import CandidatesFailedError


def _record(name: str) -> Path:
    return require_data(f"ecg/{name}.hea").with_suffix("")


def _at_another_rate(folder: Path, samples: int) -> str:
    """Real lead-II samples of a CPSC 2021 record saved as ``.npy`` and declared at 360 Hz.

    Stands in for a recording made at another sampling rate (the samples are real; the
    declared rate is what the check is about).
    """
    record = read_record(_record("cpsc2021/data_8_2"))
    path = folder / "other_rate.npy"
    np.save(path, record.signal[:samples, record.leads.index("II")])
    return f"{path}#fs=360"


@pytest.fixture(scope="module")
def cpsc() -> Path:
    return require_data("ecg/cpsc2021")


@pytest.fixture(scope="module")
def small_table(cpsc) -> pd.DataFrame:
    """Up to three 15 s lead-II windows per CPSC 2021 record: 53 windows (23 AF), 6 patients."""
    table = af_window_table(cpsc, window_s=15, step_s=15, lead="II").table
    return table.groupby("record").head(3).reset_index(drop=True)


def test_reference_format_is_validated() -> None:
    ref = parse_reference("rec/data_8_2.hea#start=10s&stop=25s&lead=1&fs=200")
    assert ref.window(fs=200, n_samples=43092) == (2000, 5000)
    assert parse_reference("rec/data_8_2").window(fs=200, n_samples=43092) == (0, 43092)
    refused = {
        "rec/x#start=5": "both start and stop",
        "rec/x#start=5&stop=5": "must come after start",
        "rec/x#start=5&stop=10s": "same unit",
        "rec/x#start=1.5&stop=10": "whole number",
        "rec/x#start=0&stop=10&start=2": "given twice",
        "rec/x#fs=-3": "not a sampling rate",
        "rec/x#lead": "name=value",
        "rec/x.edf#start=0&stop=10": "unknown signal file type",
        "rec/x.npy#start=0&stop=10": "stores no sampling rate",
    }
    for text, reason in refused.items():
        with pytest.raises(ValueError, match=reason):
            parse_reference(text)
    with pytest.raises(ValueError, match=r"window 0-50000 ends after .* \(43092 samples"):
        parse_reference("rec/x#start=0&stop=50000").window(fs=200, n_samples=43092)


def test_window_table_matches_the_annotated_windows(cpsc) -> None:
    windows = af_window_table(cpsc, window_s=30, step_s=10)
    X, meta = af_windows(cpsc, window_s=30, step_s=10)
    table = windows.table
    assert table.columns.tolist() == ["patient", "record", "ecg", "label", "af_fraction"]
    assert len(table) == len(meta) and windows.quarantine.empty and windows.records == 18
    assert table["label"].tolist() == meta["label"].tolist()
    assert table["patient"].tolist() == meta["patient"].tolist()
    pick = [0, 57, len(table) - 1]
    loaded = SignalLoader().fit_transform(table[["ecg"]].iloc[pick])
    np.testing.assert_array_equal(loaded, X[pick])
    assert "fs=200" in table["ecg"].iloc[0] and "lead=" not in table["ecg"].iloc[0]


def test_unusable_records_and_windows_are_quarantined_and_counted(tmp_path, cpsc) -> None:
    """Real records copied, one truncated and one without annotations; one record is
    written with ten samples set to NaN (a synthetic edge case built from real ECG)."""
    import wfdb

    for name in ("data_21_7", "data_8_2", "data_92_4"):
        for suffix in (".hea", ".dat", ".atr"):
            shutil.copy(cpsc / f"{name}{suffix}", tmp_path)
    (tmp_path / "data_8_2.atr").unlink()
    (tmp_path / "data_92_4.dat").write_bytes((cpsc / "data_92_4.dat").read_bytes()[:1000])
    signal = read_record(cpsc / "data_21_7").signal[:12_000].astype(float)
    signal[2500:2510, 1] = np.nan
    wfdb.wrsamp("data_77_1", fs=200, units=["mV", "mV"], sig_name=["I", "II"],
                p_signal=signal, fmt=["16", "16"], write_dir=str(tmp_path))
    shutil.copy(cpsc / "data_21_7.atr", tmp_path / "data_77_1.atr")

    windows = af_window_table(tmp_path, window_s=10, step_s=10)
    reasons = dict(zip(windows.quarantine["record"], windows.quarantine["reason"], strict=True))
    assert reasons["data_8_2"] == "no rhythm annotation file (.atr)"
    assert "not a readable WFDB record" in reasons["data_92_4"]
    assert reasons["data_77_1"] == "10 sample(s) are not finite"
    bad_window = windows.quarantine[windows.quarantine["record"] == "data_77_1"].iloc[0]
    assert (bad_window["start"], bad_window["stop"]) == (2000, 4000)
    assert (windows.table["record"] == "data_77_1").sum() == 5
    assert windows.summary().endswith("quarantined: 2 record(s), 1 window(s)")
    written = windows.write(tmp_path / "out" / "windows.parquet")
    assert [p.name for p in written] == ["windows.parquet", "windows.quarantine.parquet"]
    assert len(pd.read_parquet(written[1])) == 3
    with pytest.raises(DataError, match="no usable window"):
        af_window_table(tmp_path, window_s=10, lead="V1")


def test_bad_references_are_named_by_row_and_column(tmp_path) -> None:
    record = _record("cpsc2021/data_8_2")
    good = f"{record}#start=0&stop=2000&lead=II"
    frame = pd.DataFrame({"ecg": [
        good,
        str(tmp_path / "missing#start=0&stop=2000"),
        f"{record}#start=42000&stop=44000&lead=II",
        f"{record}#start=0&stop=2000&lead=V1",
        f"{record}#start=0&stop=2000&lead=II&fs=250",
        None,
        f"{record}#begin=0",
        f"{record}#start=0&stop=1000&lead=II",
    ]})
    with pytest.raises(SignalDataError) as caught:
        SignalLoader().fit(frame)
    problems = caught.value.problems
    assert sorted(problems) == [2, 3, 4, 5, 6, 7, 8]
    assert "column 'ecg'" in str(caught.value)
    assert "not found" in problems[2] and "ends after the end" in problems[3]
    assert "lead 'V1' is not in data_8_2 (leads I, II)" == problems[4]
    assert "sampled at 200 Hz but the reference declares fs=250" in problems[5]
    assert problems[6] == "no signal reference" and "unknown option 'begin'" in problems[7]
    assert problems[8] == "window of 1000 samples; most windows have 2000"

    loader = SignalLoader().fit(pd.DataFrame({"ecg": [good]}))
    other_rate = pd.DataFrame({"ecg": [good, _at_another_rate(tmp_path, 2000)]})
    with pytest.raises(SignalDataError, match=r"row 2: wrong sampling rate 360 Hz; the model "
                                              r"was fitted on 200 Hz"):
        loader.transform(other_rate)
    with pytest.raises(DataError, match="cannot tell which of the columns"):
        SignalLoader().fit(pd.DataFrame({"ecg": [good], "age": [70]}))


def test_npy_windows_load_like_the_record_they_came_from(tmp_path) -> None:
    record = read_record(_record("cpsc2021/data_21_7"))
    np.save(tmp_path / "window.npy", record.signal[:3000].T)
    refs = pd.DataFrame({"ecg": [
        "window.npy#start=1000&stop=3000&lead=1&fs=200",
        f"{record.path}#start=1000&stop=3000&lead=II",
    ]})
    loaded = SignalLoader(root=str(tmp_path)).fit_transform(refs.iloc[:1])
    np.testing.assert_array_equal(loaded, SignalLoader().fit_transform(refs.iloc[1:]))
    with pytest.raises(SignalDataError, match="row 1: leads II; the model was fitted on 1"):
        SignalLoader(root=str(tmp_path)).fit(refs.iloc[:1]).transform(refs.iloc[1:])


def test_hrv_encoder_needs_one_lead(small_table) -> None:
    frame = small_table[["ecg"]].iloc[:2].copy()
    frame["ecg"] = frame["ecg"].str.replace("&lead=II", "")
    with pytest.raises(DataError, match=r"references 2 leads \(I, II\); HRV features use one"):
        SignalHRVFeatures(quality=False).fit(frame)
    pre = build_preprocessor(Schema.infer(small_table[["ecg"]], declared={"ecg": "signal"}))
    assert pre.fit_transform(small_table[["ecg"]].iloc[:4]).shape == (4, 21)


def _example_spec(table: pd.DataFrame, tmp_path: Path, **overrides: object) -> dict:
    """The shipped AF example spec, on ``table`` and with fast settings."""
    example = resources.files("medpredict") / "examples" / "af_signals.yaml"
    raw = yaml.safe_load(example.read_text())
    table.to_csv(tmp_path / "af_windows.csv", index=False)
    raw.update(
        data={"path": str(tmp_path / "af_windows.csv")},
        validation={"scheme": "kfold", "folds": 3, "nested": False},
        bootstrap=100,
        output_dir=str(tmp_path / "run"),
    )
    raw["trust"].update(learning_curve=False, explain_rows=5, explain_background=10)
    raw.update(overrides)
    return raw


def test_af_study_runs_from_a_spec_with_patient_grouped_folds(tmp_path, small_table) -> None:
    raw = _example_spec(small_table, tmp_path, models=["logistic_regression"])
    assert raw["features"] == {"ecg": "signal"} and raw["patient_column"] == "patient"
    result = run_study(parse_spec(raw), quiet=True)
    patients = small_table["patient"].to_numpy()
    for train, test in result.folds:
        assert set(patients[train]).isdisjoint(patients[test])
    assert result.best.metrics["auroc"].value > 0.75
    loaded = load_model(tmp_path / "run" / "model")
    rows = small_table[["ecg"]].iloc[::9]
    np.testing.assert_allclose(
        loaded.estimator.predict_proba(rows), result.final_model.predict_proba(rows)
    )
    elsewhere = rows.iloc[:1].assign(ecg=_at_another_rate(tmp_path, 3000))
    with pytest.raises(SignalDataError, match="wrong sampling rate 360 Hz"):
        loaded.estimator.predict_proba(elsewhere)


def test_study_names_the_table_row_of_a_bad_reference(tmp_path, small_table) -> None:
    table = small_table.copy()
    table.loc[6, "ecg"] = table.loc[6, "ecg"].replace("&fs=200", "&fs=250")
    raw = _example_spec(table, tmp_path, models=["logistic_regression"])
    with pytest.raises(CandidatesFailedError, match=r"table row 7: .*declares fs=250"):
        run_study(parse_spec(raw), quiet=True)


@pytest.mark.usefixtures("one_torch_thread")
def test_signal_networks_are_registered_models_run_by_the_study(tmp_path, small_table) -> None:
    assert takes_raw_input("cnn1d") and takes_raw_input("cnn_gru")
    assert isinstance(make_model("cnn_gru", signal_root="/data")[-1], CNNGRUClassifier)
    models = [{"name": name, "params": {"epochs": 2, "width": 8}} for name in ("cnn1d", "cnn_gru")]
    raw = _example_spec(small_table, tmp_path, models=models, bootstrap=20)
    raw["validation"]["folds"] = 2
    result = run_study(parse_spec(raw), quiet=True)
    assert set(result.candidates) == {"cnn1d", "cnn_gru"} and not result.failures
    assert all(np.isfinite(c.oof_proba).all() for c in result.candidates.values())
    loaded = load_model(tmp_path / "run" / "model").estimator
    assert isinstance(loaded[-1], CNN1DClassifier | CNNGRUClassifier)
    rows = small_table[["ecg"]].iloc[:3]
    np.testing.assert_allclose(
        loaded.predict_proba(rows), result.final_model.predict_proba(rows), rtol=1e-5
    )


def test_signal_windows_command_writes_the_study_table(tmp_path, cpsc) -> None:
    runner = CliRunner()
    out = tmp_path / "af.csv"
    result = runner.invoke(
        app, ["signal-windows", str(cpsc), "--out", str(out), "--lead", "II", "--step-s", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "141 windows (56 AF) from 18 of 18 records, 6 patients" in result.output
    table = pd.read_csv(out)
    assert len(table) == 141 and table["ecg"].str.endswith("&lead=II").all()
    refused = runner.invoke(app, ["signal-windows", str(cpsc), "--out", str(tmp_path / "x.txt")])
    assert refused.exit_code == 2 and ".csv or .parquet" in refused.output
