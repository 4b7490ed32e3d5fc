"""The OMOP CDM v5.4 reader: clean reads, every bad-input class, CSV.gz and Parquet tables.

No OMOP CDM database exists here, so every table is a small hand-made fixture written
into ``tmp_path`` with the CDM v5.4 table names and (lower-case) column layout; the
concept ids are those of the OHDSI standard vocabularies.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medpredict.data.errors import DataError
from medpredict.timeline.events import (
    BIRTH,
    DEATH,
    HOSPITAL_ADMISSION,
    HOSPITAL_DISCHARGE,
    ICU_ADMISSION,
    ICU_DISCHARGE,
    conform,
)
from medpredict.timeline.readers.omop import CDM_TABLES, load_omop_mapping, read_omop
from medpredict.timeline.validate import (
    AFTER_DEATH,
    BEFORE_BIRTH,
    DUPLICATE,
    IMPLAUSIBLE,
    IMPOSSIBLE_TIME,
    MISSING_SUBJECT,
    SENTINEL,
    UNIT_MISMATCH,
    UNKNOWN_CODE,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
)

PERSON = (
    "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,"
    "race_concept_id,ethnicity_concept_id,location_id,provider_id,care_site_id,"
    "person_source_value,gender_source_value,gender_source_concept_id,race_source_value,"
    "race_source_concept_id,ethnicity_source_value,ethnicity_source_concept_id\n"
    "1,8532,1960,5,,,8527,38003564,,,,p1,F,0,,0,,0\n"
    "2,8507,1950,,,1950-03-04 06:30:00,8527,38003564,,,,p2,M,0,,0,,0\n"
)
VISITS = (
    "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,"
    "visit_end_date,visit_end_datetime,visit_type_concept_id,provider_id,care_site_id,"
    "visit_source_value,visit_source_concept_id,admitted_from_concept_id,"
    "admitted_from_source_value,discharged_to_concept_id,discharged_to_source_value,"
    "preceding_visit_occurrence_id\n"
    "10,1,9201,2020-01-01,2020-01-01 08:00:00,2020-01-05,2020-01-05 12:00:00,32817,,,,0,0,,0,,\n"
    "11,1,32037,2020-01-02,2020-01-02 10:00:00,2020-01-03,,32817,,,,0,0,,0,,\n"
    "12,2,9202,2021-06-01,,2021-06-01,,32817,,,,0,0,,0,,\n"
)
CONDITIONS = (
    "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
    "condition_start_datetime,condition_end_date,condition_end_datetime,"
    "condition_type_concept_id,condition_status_concept_id,stop_reason,provider_id,"
    "visit_occurrence_id,visit_detail_id,condition_source_value,condition_source_concept_id,"
    "condition_status_source_value\n"
    "100,1,132797,2020-01-01,,,,32817,0,,,10,,A41.9,0,\n"
)
MEASUREMENT_HEADER = (
    "measurement_id,person_id,measurement_concept_id,measurement_date,measurement_datetime,"
    "measurement_time,measurement_type_concept_id,operator_concept_id,value_as_number,"
    "value_as_concept_id,unit_concept_id,range_low,range_high,provider_id,visit_occurrence_id,"
    "visit_detail_id,measurement_source_value,measurement_source_concept_id,unit_source_value,"
    "unit_source_concept_id,value_source_value,measurement_event_id,meas_event_field_concept_id\n"
)


def _m(person, concept, date, datetime, value, unit_concept, unit_source):
    return (f"1,{person},{concept},{date},{datetime},,32817,0,{value},0,{unit_concept},,,,10,,"
            f"src,0,{unit_source},0,{value},,0")


CLEAN_MEASUREMENTS = [
    _m(1, 3027018, "2020-01-01", "2020-01-01 09:00:00", 80, 8541, "/min"),
    _m(1, 3016723, "2020-01-01", "2020-01-01 09:00:00", 1.1, 8840, ""),
    _m(1, 3004249, "2020-01-01", "2020-01-01 09:00:00", 120, 8876, "mm[Hg]"),
    _m(1, 3000963, "2020-01-02", "", 13.5, 8713, "g/dL"),
    _m(1, 3020891, "2020-01-02", "2020-01-02 09:00:00", 98.6, 0, "[degF]"),
]
OBSERVATIONS = (
    "observation_id,person_id,observation_concept_id,observation_date,observation_datetime,"
    "observation_type_concept_id,value_as_number,value_as_string,value_as_concept_id,"
    "qualifier_concept_id,unit_concept_id,provider_id,visit_occurrence_id,visit_detail_id,"
    "observation_source_value,observation_source_concept_id,unit_source_value,"
    "qualifier_source_value,value_source_value,observation_event_id,obs_event_field_concept_id\n"
    "200,1,4275495,2020-01-01,,32817,,current smoker,0,0,0,,10,,smk,0,,,,,0\n"
)
DRUGS = (
    "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,"
    "drug_exposure_start_datetime,drug_exposure_end_date,drug_exposure_end_datetime,"
    "verbatim_end_date,drug_type_concept_id,stop_reason,refills,quantity,days_supply,sig,"
    "route_concept_id,lot_number,provider_id,visit_occurrence_id,visit_detail_id,"
    "drug_source_value,drug_source_concept_id,route_source_value,dose_unit_source_value\n"
    "300,1,1361711,2020-01-01,2020-01-01 10:00:00,2020-01-02,,,32817,,,1,1,,0,,,10,,hep,0,,\n"
)
DEATH_TABLE = (
    "person_id,death_date,death_datetime,death_type_concept_id,cause_concept_id,"
    "cause_source_value,cause_source_concept_id\n2,2022-01-01,,32817,0,,0\n"
)


def _write(folder: Path, name: str, text: str, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if gz:
        (folder / f"{name}.csv.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / f"{name}.csv").write_text(text)


def _cdm(folder: Path, measurements=CLEAN_MEASUREMENTS, gz: bool = False) -> Path:
    for name, text in (("person", PERSON), ("visit_occurrence", VISITS),
                       ("condition_occurrence", CONDITIONS), ("observation", OBSERVATIONS),
                       ("drug_exposure", DRUGS), ("death", DEATH_TABLE),
                       ("measurement", MEASUREMENT_HEADER + "\n".join(measurements) + "\n")):
        _write(folder, name, text, gz)
    return folder


def _code(result, code: str) -> pd.DataFrame:
    return result.events[result.events["code"] == code]


def test_clean_read(tmp_path):
    result = read_omop(_cdm(tmp_path))
    assert result.quarantine.empty, result.quarantine
    assert result.tables == {"person": 2, "visit_occurrence": 3, "condition_occurrence": 1,
                             "measurement": 5, "observation": 1, "drug_exposure": 1, "death": 1}
    assert result.rows_in == 2 * 2 + 3 * 2 + 1 + 5 + 1 + 1 + 1 == len(result.events)
    events = result.events
    assert [str(t) for t in conform(events).dtypes] == [str(t) for t in events.dtypes]
    birth = _code(result, BIRTH).set_index("subject_id")["time"]
    assert birth[1] == pd.Timestamp("1960-05-01") and birth[2] == pd.Timestamp("1950-03-04 06:30")
    gender = _code(result, "GENDER").set_index("subject_id")["text_value"]
    assert gender.to_dict() == {1: "female", 2: "male"}
    assert _code(result, HOSPITAL_ADMISSION)["time"].tolist() == [pd.Timestamp("2020-01-01 08:00")]
    assert _code(result, HOSPITAL_DISCHARGE)["time"].tolist() == [pd.Timestamp("2020-01-05 12:00")]
    assert _code(result, ICU_ADMISSION)["time"].tolist() == [pd.Timestamp("2020-01-02 10:00")]
    assert _code(result, ICU_DISCHARGE)["time"].tolist() == [pd.Timestamp("2020-01-03")]
    assert _code(result, "VISIT//9202")["subject_id"].tolist() == [2]
    assert _code(result, "VISIT_END//9202")["time"].tolist() == [pd.Timestamp("2021-06-01")]
    assert _code(result, "CONDITION//132797")["time"].tolist() == [pd.Timestamp("2020-01-01")]
    assert _code(result, "DRUG//1361711")["time"].tolist() == [pd.Timestamp("2020-01-01 10:00")]
    smoker = _code(result, "OBSERVATION//4275495")
    assert smoker["text_value"].tolist() == ["current smoker"]
    assert np.isnan(smoker["numeric_value"].iloc[0])
    assert _code(result, DEATH)["time"].tolist() == [pd.Timestamp("2022-01-01")]
    values = {c: (_code(result, c)["numeric_value"].iloc[0], _code(result, c)["unit"].iloc[0])
              for c in ("HR", "Creatinine", "SysABP", "MEASUREMENT//3000963")}
    assert values == {"HR": (80.0, "bpm"), "Creatinine": (np.float32(1.1), "mg/dL"),
                      "SysABP": (120.0, "mmHg"), "MEASUREMENT//3000963": (13.5, "g/dL")}
    temp = _code(result, "Temp")
    assert temp["numeric_value"].iloc[0] == pytest.approx(37.0, abs=1e-4)
    assert temp["unit"].iloc[0] == "degC"


BAD_MEASUREMENTS = [
    *CLEAN_MEASUREMENTS,
    _m(1, 0, "2020-01-03", "", 5, 0, ""),  # line 7: no matching concept
    _m(1, 3027018, "2020-02-30", "", 80, 8541, "/min"),  # line 8: impossible date
    _m(1, 3027018, "soon", "", 80, 8541, "/min"),  # line 9: unparseable
    _m(1, 3027018, "2020-01-03", "", "abc", 8541, "/min"),  # line 10: not a number
    _m(1, 3027018, "2020-01-03", "", 400, 8541, "/min"),  # line 11: implausible
    _m(1, 3016723, "2020-01-03", "", 97, 0, "umol/L"),  # line 12: unit mismatch
    _m(1, 3016723, "2020-01-04", "", 1.0, 12345, ""),  # line 13: unit concept not mapped
    _m(1, 3027018, "1950-01-01", "", 80, 8541, "/min"),  # line 14: before birth
    _m(2, 3027018, "2023-01-01", "", 80, 8541, "/min"),  # line 15: after death
    _m(1, 3027018, "2020-01-01", "2020-01-01 09:00:00", 80, 8541, "/min"),  # 16: duplicate
    _m("", 3027018, "2020-01-03", "", 80, 8541, "/min"),  # line 17: no person
    _m(1, "x", "2020-01-03", "", 80, 8541, "/min"),  # line 18: concept id not a number
    _m(1, 3027018, "2020-01-03 25:00:00", "", 80, 8541, "/min"),  # 19: hour 25
]


def test_every_bad_input_class_is_quarantined_with_its_reason(tmp_path):
    folder = _cdm(tmp_path, BAD_MEASUREMENTS)
    _write(folder, "person", PERSON + "3,8532,1970,13,1,,8527,0,,,,p3,F,0,,0,,0\n")
    result = read_omop(folder)
    quarantine = result.quarantine
    measured = quarantine[quarantine["source"] == "measurement.csv"].set_index("line")["reason"]
    assert measured.to_dict() == {
        7: UNKNOWN_CODE, 8: IMPOSSIBLE_TIME, 9: UNPARSEABLE_TIME, 10: UNPARSEABLE_VALUE,
        11: IMPLAUSIBLE, 12: UNIT_MISMATCH, 13: UNIT_MISMATCH, 14: BEFORE_BIRTH,
        15: AFTER_DEATH, 16: DUPLICATE, 17: MISSING_SUBJECT, 18: UNKNOWN_CODE,
        19: IMPOSSIBLE_TIME,
    }
    assert quarantine.loc[quarantine["line"] == 7, "code"].iloc[0] == "MEASUREMENT//0"
    person = quarantine[quarantine["source"] == "person.csv"]
    assert person[["line", "code", "time", "reason"]].values.tolist() == [
        [4, BIRTH, "1970-13-01", IMPOSSIBLE_TIME]]
    assert result.rows_in == len(result.events) + len(quarantine)
    assert len(result.events) == 19 + 1  # the clean read plus person 3's gender


def test_sentinels_and_concept_map_from_a_custom_mapping(tmp_path):
    mapping = tmp_path / "site.yaml"
    mapping.write_text("codes: {3027018: {code: HR, units: {/min: {to: bpm}}}}\n"
                       "unit_concepts: {8541: /min}\nsentinels: [99999]\n")
    folder = tmp_path / "cdm"
    _write(folder, "measurement", MEASUREMENT_HEADER + "\n".join([
        _m(1, 3027018, "2020-01-01", "", 99999, 8541, ""),
        _m(1, 3027018, "2020-01-01", "", 70, 8541, ""),
        _m(1, 3016723, "2020-01-01", "", 1.0, 8840, "mg/dL"),
    ]) + "\n")
    result = read_omop(folder, mapping=mapping)
    assert result.quarantine[["line", "reason"]].values.tolist() == [[2, SENTINEL]]
    assert result.events["code"].tolist() == ["HR", "MEASUREMENT//3016723"]
    assert result.events["unit"].tolist() == ["bpm", "mg/dL"]
    assert result.not_read == tuple(sorted(set(CDM_TABLES) - {"measurement"}))


def test_csv_gz_and_parquet_tables(tmp_path):
    _cdm(tmp_path, gz=True)
    (tmp_path / "measurement.csv.gz").unlink()
    pd.DataFrame({
        "measurement_id": [1, 2], "person_id": [1, 1],
        "measurement_concept_id": [3027018, 3016723],
        "measurement_date": [dt.date(2020, 1, 1), dt.date(2020, 1, 2)],
        "measurement_datetime": pd.to_datetime(["2020-01-01 09:15", None]),
        "value_as_number": [88.0, 0.9], "unit_concept_id": [8541, 8840],
        "unit_source_value": [None, None],
    }).to_parquet(tmp_path / "measurement.parquet")
    result = read_omop(tmp_path)
    assert result.quarantine.empty, result.quarantine
    hr = _code(result, "HR")
    assert hr["time"].tolist() == [pd.Timestamp("2020-01-01 09:15")]
    assert (hr["numeric_value"].iloc[0], hr["unit"].iloc[0]) == (88.0, "bpm")
    creatinine = _code(result, "Creatinine")
    assert creatinine["time"].tolist() == [pd.Timestamp("2020-01-02")]
    assert len(result.events) == result.rows_in == 19 - 3  # two measurements, not five


def test_missing_column_names_table_and_column(tmp_path):
    _write(tmp_path, "condition_occurrence", CONDITIONS.replace("condition_concept_id",
                                                                "condition_id"))
    with pytest.raises(DataError, match=r"OMOP table 'condition_occurrence' "
                       r"\(condition_occurrence.csv\) lacks column 'condition_concept_id'"):
        read_omop(tmp_path)


def test_mapping_errors_name_the_key(tmp_path):
    with pytest.raises(DataError, match=r"unknown key\(s\) \['concepts'\]"):
        load_omop_mapping({"concepts": {}})
    with pytest.raises(DataError, match="item id 'HR' is not a whole number"):
        load_omop_mapping({"codes": {"HR": "HR"}})
    with pytest.raises(DataError, match="holds none of the OMOP tables"):
        read_omop(tmp_path)


def test_large_person_ids_are_read_exactly(tmp_path):
    big = 2**53 + 1  # a float would round it to 2**53
    _write(tmp_path, "death", "person_id,death_date,death_datetime,death_type_concept_id\n"
           f"{big},2022-01-01,,32817\n{2**63 - 1},2022-01-01,,32817\n"
           "99999999999999999999,2022-01-01,,32817\n")
    _write(tmp_path, "person", "person_id,gender_concept_id,year_of_birth\n"
           f"{big},8532,1960\n{2**63 - 1},8507,1970\n")
    result = read_omop(tmp_path)
    assert sorted(result.events["subject_id"].tolist()) == [big] * 3 + [2**63 - 1] * 3
    assert result.quarantine[["source", "line", "reason"]].values.tolist() == [
        ["death.csv", 4, MISSING_SUBJECT]]
