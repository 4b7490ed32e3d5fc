"""The timeline core: PhysioNet 2012 reading and screening, MEDS files, cohorts, features.

Real data: PhysioNet/CinC 2012 set A (``ehr/physionet2012``). The bad-input cases are small
hand-made record files in the challenge's exact layout (synthetic values), because the
real files hold few of them.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medpredict.data.errors import DataError, SpecError
from medpredict.settings import require_data
from medpredict.spec import parse_spec
from medpredict.timeline.cohort import define_cohort
from medpredict.timeline.events import ICU_ADMISSION, conform, read_meds, write_meds
from medpredict.timeline.features import tabularise
from medpredict.timeline.readers.physionet2012 import ADMISSION, read_physionet2012
from medpredict.timeline.spec import TimelineSpec
from medpredict.timeline.validate import (
    AFTER_DEATH,
    BEFORE_BIRTH,
    DUPLICATE,
    IMPLAUSIBLE,
    IMPOSSIBLE_TIME,
    SENTINEL,
    UNIT_MISMATCH,
    UNKNOWN_CODE,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
    screen,
)


@pytest.fixture(scope="module")
def set_a():
    records = require_data("ehr/physionet2012/set-a.tar.gz")
    outcomes = require_data("ehr/physionet2012/Outcomes-a.txt")
    return read_physionet2012(records, outcomes)


def _record(folder: Path, record_id: int, lines: list[str]) -> Path:
    path = folder / f"{record_id}.txt"
    path.write_text("Time,Parameter,Value\n" + "\n".join(lines) + "\n")
    return path


def test_set_a_is_read_whole_with_nothing_lost(set_a):
    assert set_a.rows_in == len(set_a.events) + len(set_a.quarantine)
    assert set_a.events["subject_id"].nunique() == 4000
    assert (set_a.events["code"] == ICU_ADMISSION).sum() == 4000
    assert len(set_a.outcomes) == 4000 and set_a.outcomes["In-hospital_death"].sum() == 554
    assert set(set_a.quarantine["reason"]) <= {SENTINEL, IMPLAUSIBLE}
    assert set_a.events["time"].max() <= ADMISSION + pd.Timedelta("48h")
    static = set_a.events[set_a.events["time"].isna()]
    assert set(static["code"]) == {"Age", "Gender", "Height", "ICUType"}
    assert "rows in 1,757,980" in set_a.summary()


def test_folder_and_archive_read_the_same(tmp_path, set_a):
    archive = require_data("ehr/physionet2012/set-a.tar.gz")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".txt")][:25]
        tar.extractall(tmp_path, members=members, filter="data")
    small = tmp_path / "small.tar.gz"
    with tarfile.open(small, "w:gz") as tar:
        for member in members:
            tar.add(tmp_path / member.name, arcname=member.name)
    from_folder = read_physionet2012(tmp_path / "set-a")
    from_archive = read_physionet2012(small)
    pd.testing.assert_frame_equal(from_folder.events, from_archive.events)
    ids = from_folder.events["subject_id"].unique()
    expected = set_a.events[set_a.events["subject_id"].isin(ids)].reset_index(drop=True)
    assert len(from_folder.events) == len(expected)


def test_every_bad_input_class_has_a_named_reason(tmp_path):
    _record(tmp_path, 1, [
        "00:00,RecordID,1", "00:00,Age,-1", "00:00,Gender,1", "00:00,Height,170",
        "00:00,ICUType,2", "00:00,Weight,80",
        "00:10,HR,80", "00:10,HR,80",      # duplicate
        "01:75,HR,81",                     # 75 minutes: not a real time
        "ab:cd,HR,82",                     # not a time
        "02:00,HR,fast",                   # not a number
        "02:00,HR,900",                    # impossible heart rate
        "03:00,Heartbeat,70",              # not a challenge variable
    ])
    result = read_physionet2012(tmp_path)
    reasons = dict(zip(result.quarantine["line"], result.quarantine["reason"], strict=True))
    assert reasons == {
        3: SENTINEL, 9: DUPLICATE, 10: IMPOSSIBLE_TIME, 11: UNPARSEABLE_TIME,
        12: UNPARSEABLE_VALUE, 13: IMPLAUSIBLE, 14: UNKNOWN_CODE,
    }
    row = result.quarantine.set_index("line").loc[10]
    assert (row["time"], row["source"]) == ("01:75", "1.txt")
    assert result.rows_in == 13 and len(result.events) == 6


def test_record_id_must_match_the_file(tmp_path):
    _record(tmp_path, 5, ["00:00,RecordID,6", "00:05,HR,70"])
    result = read_physionet2012(tmp_path)
    assert result.quarantine["reason"].tolist() == ["record id differs from file name"]


def test_wrong_header_and_empty_folder_are_named(tmp_path):
    with pytest.raises(DataError, match="holds no challenge record files"):
        read_physionet2012(tmp_path)
    (tmp_path / "7.txt").write_text("Time;Parameter;Value\n00:00;HR;70\n")
    with pytest.raises(DataError, match=r"7\.txt starts with .*expected the header"):
        read_physionet2012(tmp_path)


def test_outcomes_file_is_checked(tmp_path):
    from medpredict.timeline.readers.physionet2012 import read_outcomes

    path = tmp_path / "Outcomes.txt"
    path.write_text("RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
                    "1,10,2,5,-1,0\n2,12,3,4,-1,2\n")
    with pytest.raises(DataError, match=r"In-hospital_death must be 0 or 1 \(rows 3\)"):
        read_outcomes(path)


def test_times_dates_birth_death_and_units_are_screened():
    """Synthetic calendar events (the challenge files have no dates or units)."""
    raw_time = pd.Series(["2026-02-28 10:00", "2026-02-30 10:00", "1950-01-01 00:00",
                          "1940-06-01 00:00", "2026-03-05 00:00", "2026-03-01 00:00",
                          "2026-03-01 09:00"])
    time = pd.to_datetime(raw_time, format="%Y-%m-%d %H:%M", errors="coerce")
    candidates = pd.DataFrame({
        "subject_id": 1, "time": time,
        "code": ["HR", "HR", "MEDS_BIRTH", "HR", "HR", "MEDS_DEATH", "Temp"],
        "numeric_value": [70.0, 71.0, np.nan, 72.0, 73.0, np.nan, 98.6],
        "unit": [None, None, None, None, None, None, "degF"],
        "source": "events.csv", "line": np.arange(2, 9), "raw_time": raw_time,
    })
    reasons = pd.Series([None] * 7, dtype=object)
    reasons[time.isna()] = IMPOSSIBLE_TIME
    result = screen(candidates, reasons)
    assert result.quarantine.set_index("line")["reason"].to_dict() == {
        3: IMPOSSIBLE_TIME, 5: BEFORE_BIRTH, 6: AFTER_DEATH, 8: UNIT_MISMATCH,
    }
    assert result.quarantine.set_index("line").loc[3, "time"] == "2026-02-30 10:00"


def test_meds_round_trip_is_schema_checked(tmp_path, set_a):
    import meds
    import pyarrow.parquet as pq

    subset = set_a.events[set_a.events["subject_id"] < 132600]
    folder = write_meds(subset, tmp_path / "meds", name="physionet2012-a", shard_rows=2000)
    shards = sorted((folder / "data").glob("*.parquet"))
    assert len(shards) > 1
    for shard in shards:
        meds.DataSchema.validate(pq.read_table(shard))
    back = read_meds(folder)
    assert len(back) == len(subset)
    assert back.groupby("subject_id").size().equals(subset.groupby("subject_id").size())
    assert (folder / "metadata" / "dataset.json").is_file()
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"subject_id": ["x"], "time": [None], "code": ["HR"]}).to_parquet(bad)
    with pytest.raises(DataError, match="does not follow the MEDS data schema"):
        read_meds(bad)


def _spec(**timeline):
    return TimelineSpec.model_validate({"outcome": {"column": "In-hospital_death"}, **timeline})


def test_no_event_after_the_index_time_reaches_a_feature(set_a):
    events = set_a.events[set_a.events["subject_id"].isin([132539, 132540, 132541])]
    timeline = _spec(index={"offset": "24h"}, observation="24h", windows=["6h", "24h"])
    samples = define_cohort(events, timeline, set_a.outcomes, "died").samples
    before = tabularise(events, samples, timeline)
    index = samples["index_time"].iloc[0]
    later = pd.DataFrame({
        "subject_id": [samples["subject_id"].iloc[0]] * 3, "code": ["HR", "GCS", "Lactate"],
        "time": [index + pd.Timedelta("1us"), index + pd.Timedelta("1h"),
                 index + pd.Timedelta("20h")], "numeric_value": [250.0, 3.0, 30.0]})
    after = tabularise(pd.concat([events, conform(later)], ignore_index=True), samples, timeline)
    pd.testing.assert_frame_equal(before.features, after.features)
    at_index = conform(later.assign(time=index))
    moved = tabularise(pd.concat([events, at_index], ignore_index=True), samples, timeline)
    assert not moved.features.equals(before.features)  # the check itself can fail


def test_features_do_not_depend_on_row_order(set_a):
    events = set_a.events[set_a.events["subject_id"] < 132700]
    timeline = _spec()
    samples = define_cohort(events, timeline, set_a.outcomes, "died").samples
    shuffled = events.sample(frac=1.0, random_state=0)
    first = tabularise(events, samples, timeline).features
    second = tabularise(shuffled, samples, timeline).features
    pd.testing.assert_frame_equal(first, second)
    assert (first.filter(like="__count__") >= 0).all().all()
    assert first["HR__count__48h"].median() > 24


def test_cohort_with_an_outcome_code_gap_and_horizon():
    """Synthetic timelines: an outcome event within, after and before the horizon."""
    t0 = pd.Timestamp("2020-01-01")
    rows = []
    for subject, death_after in [(1, "30h"), (2, "100h"), (3, "10h"), (4, None)]:
        rows += [(subject, t0, ICU_ADMISSION, np.nan), (subject, t0 + pd.Timedelta("2h"),
                 "HR", 80.0), (subject, t0 + pd.Timedelta("60h"), "HR", 85.0)]
        if death_after:
            rows.append((subject, t0 + pd.Timedelta(death_after), "MEDS_DEATH", np.nan))
    rows.append((5, t0, ICU_ADMISSION, np.nan))
    rows.append((5, t0 + pd.Timedelta("3h"), "HR", 70.0))  # followed only to 3 h
    events = conform(pd.DataFrame(rows, columns=["subject_id", "time", "code", "numeric_value"]))
    timeline = TimelineSpec.model_validate({
        "index": {"offset": "12h"}, "observation": "12h", "windows": ["12h"], "gap": "6h",
        "horizon": "24h", "outcome": {"code": "MEDS_DEATH"}})
    cohort = define_cohort(events, timeline, target="died")
    labels = dict(zip(cohort.samples["subject_id"], cohort.samples["died"], strict=True))
    assert labels == {1: 1, 2: 0, 4: 0}
    assert cohort.samples.set_index("subject_id").loc[1, "outcome_time"] == t0 + pd.Timedelta(
        "30h")
    removed = {s.label: s.excluded for s in cohort.flow if s.excluded}
    assert removed == {
        "in care at the index time (not died or discharged before)": 1,
        "followed to the end of the 24h horizon or the outcome": 1,
    }


def test_landmarks_make_one_sample_per_index_time(set_a):
    events = set_a.events[set_a.events["subject_id"] < 132560]
    timeline = _spec(index={"landmarks": ["24h", "6h", "12h"]}, inclusion={"min_age": 16})
    samples = define_cohort(events, timeline, set_a.outcomes, "died").samples
    per_subject = samples.groupby("subject_id").size()
    assert per_subject.max() == 3
    assert samples["sample_id"].iloc[:3].str.endswith(("@6h", "@12h", "@24h")).all()


def test_spec_checks_timeline_fields():
    base = {"name": "t", "target": "died", "positive_class": 1,
            "data": {"events": {"reader": "physionet2012", "path": "x"}}}
    with pytest.raises(SpecError, match="data from events needs a timeline"):
        parse_spec(base)
    with pytest.raises(SpecError, match="not a duration"):
        parse_spec({**base, "timeline": {"outcome": {"column": "d"}, "observation": "2 days"}})
    with pytest.raises(SpecError, match="longer than the observation window"):
        parse_spec({**base, "timeline": {"outcome": {"column": "d"}, "windows": ["72h"]}})
    with pytest.raises(SpecError, match="outcome code needs a horizon"):
        parse_spec({**base, "timeline": {"outcome": {"code": "MEDS_DEATH"}}})
    with pytest.raises(SpecError, match="leave features out"):
        parse_spec({**base, "timeline": {"outcome": {"column": "d"}}, "features": {"a": "numeric"}})
    spec = parse_spec({**base, "timeline": {"outcome": {"column": "d"}}})
    assert (spec.id_column, spec.patient_column) == ("sample_id", "subject_id")


def test_a_birth_without_a_death_is_screened():
    """Synthetic: a living patient (birth recorded, no death) with one event before birth."""
    candidates = pd.DataFrame({
        "subject_id": [1, 1, 1], "code": ["MEDS_BIRTH", "HR", "HR"],
        "time": pd.to_datetime(["1960-01-01", "1950-01-01", "2020-01-01"]),
        "numeric_value": [np.nan, 80.0, 81.0], "source": "x.csv", "line": [2, 3, 4]})
    result = screen(candidates, pd.Series([None] * 3, dtype=object))
    assert result.quarantine["reason"].tolist() == [BEFORE_BIRTH]
    assert len(result.events) == 2
