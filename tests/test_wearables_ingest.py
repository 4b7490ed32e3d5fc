"""Ingestion: quarantine with reasons, duplicates, ordering, time zones, gaps (real data)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from medpredict.data.errors import DataError
from medpredict.settings import require_data
from medpredict.wearables.quality import parse_times, validate_readings
from medpredict.wearables.readers import read_path, read_stream_csv, read_welltory
from medpredict.wearables.store import WearableStore


@pytest.fixture(scope="module")
def hr_slice() -> pd.DataFrame:
    """The first 3,000 rows of the Stanford participant's real heart-rate stream."""
    path = require_data("wearables/stanford_covid/A0NVTRV_hr.csv.zip")
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    head = "\n".join(text.splitlines()[:3001]) + "\n"
    return read_stream_csv(io.StringIO(head), signal="heart_rate")


def test_bad_rows_are_quarantined_with_reasons_and_counted(hr_slice: pd.DataFrame) -> None:
    bad = pd.DataFrame(
        {
            "person": ["A0NVTRV"] * 7 + [None],
            "signal": [
                "heart_rate",
                "heart_rate",
                "spo2",
                "heart_rate",
                "heart_rate",
                "blood_glucose",
                "heart_rate",
                "heart_rate",
            ],
            "time": [
                "2020-03-10 00:00:01",
                "2020-03-10 00:00:02",
                "2020-03-10 00:00:03",
                "10/03/2020 25:61",
                hr_slice["time"].iloc[10],
                "2020-03-10 00:00:04",
                "2020-03-10 00:00:07",
                "2020-03-10 00:00:08",
            ],
            "value": [0, 300, 101, 70, 55, 5.5, "abc", 70],
            "row": np.arange(9001, 9009),
        }
    )
    exact_dup = hr_slice.iloc[[20]].assign(row=9100)
    shuffled = hr_slice.iloc[::-1]
    batch = pd.concat([shuffled, bad, exact_dup], ignore_index=True)
    store = WearableStore()
    summary = store.append(batch, source="test.csv")

    assert summary.n_input == len(batch)
    assert summary.n_stored + summary.n_quarantined == summary.n_input
    assert summary.n_stored == len(hr_slice)
    assert summary.n_reordered > 0
    reasons = store.quarantine().set_index("row")["reason"]
    assert reasons[9001].startswith("impossible value for heart_rate")
    assert reasons[9002].startswith("impossible value for heart_rate")
    assert reasons[9003] == "impossible value for spo2: expected 50–100 %"
    assert reasons[9004].startswith("unparseable timestamp")
    assert reasons[9005].startswith("conflicting duplicate")
    assert reasons[9006] == "unknown signal 'blood_glucose'"
    assert reasons[9007] == "value is not a number"
    assert reasons[9008] == "missing person"
    assert reasons[9100].startswith("duplicate reading")
    stored = store.readings()
    assert stored["time_utc"].is_monotonic_increasing
    assert len(stored) == len(hr_slice)


def test_reingesting_a_file_quarantines_every_row_as_already_stored(
    hr_slice: pd.DataFrame,
) -> None:
    store = WearableStore()
    store.append(hr_slice, source="first")
    again = store.append(hr_slice.iloc[:50], source="again")
    assert again.n_stored == 0
    assert again.reasons == {"already stored (same person, signal, time and value)": 50}
    later = hr_slice.iloc[100:101].assign(time="2020-03-09 23:00:00")
    assert store.append(later, source="late").n_late == 1
    assert len(store.readings()) == len(hr_slice) + 1
    assert list(store.ingests()["source"]) == ["first", "again", "late"]


def test_welltory_impossible_values_point_at_their_source_rows() -> None:
    folder = require_data("wearables/welltory")
    store = WearableStore()
    summaries = [store.append(f, source=s) for s, f in read_welltory(folder)[0]]
    quarantine = store.quarantine()
    assert sum(s.n_quarantined for s in summaries) == len(quarantine) > 0
    pulse = quarantine[quarantine["signal"] == "heart_rate_min"]
    raw = pd.read_csv(folder / "wearables.csv")
    for row, value in zip(pulse["row"], pulse["value"], strict=True):
        assert raw.loc[row - 2, "pulse_min"] == float(value) < 25
    spo2 = store.daily(signals=["spo2_avg"])["value"]
    assert spo2.between(90, 100).all()


def test_mixed_time_zones_keep_each_readings_local_day() -> None:
    """Synthetic edge case: offsets, naive local times and a clock-change gap."""
    raw = pd.DataFrame(
        {
            "person": "p1",
            "signal": "resting_hr",
            "time": [
                "2020-03-28 23:30:00+01:00",
                "2020-03-29 06:00:00-07:00",
                "2020-03-30 08:00:00",
            ],
            "value": [60, 61, 62],
        }
    )
    result = validate_readings(raw, timezone="Europe/Berlin")
    assert result.offsets_seen == [-420, 60, 120]
    store = WearableStore()
    store.append(raw, timezone="Europe/Berlin")
    days = store.daily()["day"].dt.strftime("%Y-%m-%d").tolist()
    assert days == ["2020-03-28", "2020-03-29", "2020-03-30"]
    utc, _, reason = parse_times(pd.Series(["2020-03-29 02:30:00"]), "Europe/Berlin")
    assert utc.isna().all() and "clock change" in reason.iloc[0]


def test_malformed_csv_lines_are_quarantined_not_lost() -> None:
    text = "datetime,heartrate\n2020-03-10 00:00:06,83\n2020-03-10 00:00:11,84,9\n"
    frame = read_stream_csv(io.StringIO(text), person="p1")
    result = validate_readings(frame)
    assert len(result.accepted) == 1
    assert result.quarantine["reason"].iloc[0] == "malformed CSV row: 3 fields, expected 2"
    assert result.quarantine["row"].iloc[0] == 3
    with pytest.raises(DataError, match="no time column"):
        read_stream_csv(io.StringIO("when,heartrate\n1,2\n"))


def test_stanford_stream_gaps_and_parquet_export(tmp_path) -> None:
    batches = read_path(require_data("wearables/stanford_covid"))
    assert {s for s, _ in batches} == {"A0NVTRV_hr.csv.zip", "A0NVTRV_steps.csv.zip"}
    with WearableStore(tmp_path / "store.duckdb", threads=1) as store:
        summaries = [store.append(f, source=s) for s, f in batches]
        assert [s.n_input for s in summaries] == [372_105, 94_980]
        assert all(s.n_quarantined == 0 for s in summaries)
        gaps = store.gaps()
        assert len(gaps) == sum(s.gaps for s in summaries) > 0
        assert (gaps["hours"] > 1).all()
        paths = store.to_parquet(tmp_path / "parquet")
    assert pd.read_parquet(paths[0]).shape[0] == 372_105 + 94_980
    with WearableStore(tmp_path / "store.duckdb") as reopened:
        assert reopened.persons() == ["A0NVTRV"]


def test_an_impossible_date_is_quarantined_not_rolled_into_the_next_month(tmp_path) -> None:
    # Synthetic: 30 February does not exist; 2 March 10:00 is a genuine reading.
    path = tmp_path / "readings.csv"
    path.write_text(
        "person,signal,time,value\np1,heart_rate,2026-02-30 10:00:00,70\n"
        "p1,heart_rate,2026-03-02 10:00:00,71\np1,heart_rate,2026-02-30 10:00,72\n"
    )
    ((source, frame),) = read_path(path)
    with WearableStore() as store:
        summary = store.append(frame, source=source)
        stored = store.readings()
        quarantine = store.quarantine()
    assert summary.n_input == summary.n_stored + summary.n_quarantined == 3
    assert stored["value"].tolist() == [71.0]
    assert str(stored["time_utc"].iloc[0]) == "2026-03-02 10:00:00"
    assert quarantine["row"].tolist() == [2, 4]
    assert quarantine["reason"].tolist() == [
        "impossible calendar date '2026-02-30 10:00:00' (row 2): no such day in that month",
        "impossible calendar date '2026-02-30 10:00' (row 4): no such day in that month",
    ]
