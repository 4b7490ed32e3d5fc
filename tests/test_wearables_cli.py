"""The monitor command on a slice of the real Stanford Fitbit export."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from medpredict.settings import require_data
from medpredict.wearables.cli import monitor

app = typer.Typer()
app.command("monitor")(monitor)


@app.callback()
def _root() -> None:
    """Local app so the command is addressed by name, as in ``medpredict monitor``."""


def _slice(folder: Path, days: int = 45) -> None:
    """Write the first ``days`` days of the participant's streams as plain CSVs."""
    for name in ("A0NVTRV_hr.csv", "A0NVTRV_steps.csv"):
        with zipfile.ZipFile(require_data(f"wearables/stanford_covid/{name}.zip")) as archive:
            with archive.open(name) as handle:
                frame = pd.read_csv(handle)
        cutoff = pd.Timestamp("2020-03-10") + pd.Timedelta(days=days)
        frame[pd.to_datetime(frame["datetime"]) < cutoff].to_csv(folder / name, index=False)
    with open(folder / "A0NVTRV_hr.csv", "a") as handle:
        handle.write("999999,A0NVTRV,2020-04-30 10:00:00,0\n")


def test_monitor_writes_alerts_timeline_and_quarantine(tmp_path: Path) -> None:
    data = tmp_path / "export"
    data.mkdir()
    _slice(data)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["monitor", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 quarantined (impossible value for heart_rate" in result.output
    alerts = pd.read_csv(out / "alerts.csv")
    assert set(alerts.columns) >= {"person", "date", "detector", "level", "drivers", "insights"}
    assert set(alerts["level"]) <= {"yellow", "red"}
    assert json.loads((out / "alerts.json").read_text()) or alerts.empty
    html = (out / "timeline.html").read_text()
    assert "<img" in html and "not a diagnosis" in html and "A0NVTRV" in html
    quarantine = pd.read_csv(out / "quarantine.csv")
    assert quarantine["row"].tolist() == [sum(1 for _ in open(data / "A0NVTRV_hr.csv"))]
    ingest = json.loads((out / "ingest.json").read_text())
    assert [i["source"] for i in ingest["ingests"]] == ["A0NVTRV_hr.csv", "A0NVTRV_steps.csv"]


def _text(output: str) -> str:
    """The command's message with the terminal box drawing and line wraps removed."""
    return " ".join(output.replace("│", " ").split())


def test_monitor_reports_bad_input_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no .csv, .csv.zip or .csv.gz files" in _text(result.output)
    result = CliRunner().invoke(app, ["monitor", str(tmp_path), "--detectors", "nope"])
    assert result.exit_code == 2 and "unknown detectors ['nope']" in _text(result.output)


def test_monitor_names_an_unknown_time_zone_and_an_unreadable_file(tmp_path: Path) -> None:
    readings = tmp_path / "readings.csv"
    readings.write_text("person,signal,time,value\np1,heart_rate,2020-03-10 00:00:00,60\n")
    result = CliRunner().invoke(app, ["monitor", str(readings), "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2, result.output
    assert "unknown time zone 'Mars/Olympus'" in _text(result.output)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(128, 256)) * 20)
    result = CliRunner().invoke(app, ["monitor", str(garbage), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "garbage.csv could not be read as a CSV file" in _text(result.output)


def test_monitor_quarantines_a_long_csv_line_with_the_wrong_field_count(tmp_path: Path) -> None:
    # Synthetic: three readings, the second with one field too many.
    readings = tmp_path / "readings.csv"
    readings.write_text(
        "person,signal,time,value\np1,heart_rate,2020-03-10 00:00:00,60\n"
        "p1,heart_rate,2020-03-10 00:01:00,61,99\np1,heart_rate,2020-03-10 00:02:00,62\n"
    )
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["monitor", str(readings), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ingest = json.loads((out / "ingest.json").read_text())["ingests"][0]
    assert (ingest["n_input"], ingest["n_stored"], ingest["n_quarantined"]) == (3, 2, 1)
    quarantine = pd.read_csv(out / "quarantine.csv")
    assert quarantine["row"].tolist() == [3]
    assert quarantine["reason"].tolist() == ["malformed CSV row: 5 fields, expected 4"]
