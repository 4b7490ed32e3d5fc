"""The MIMIC-style table reader: mappings, clean reads, every bad-input class, CSV.gz.

No MIMIC data exists here (MIMIC-IV and MIMIC-III need credentialed PhysioNet access), so
every table is a small hand-made fixture written into ``tmp_path`` with the real MIMIC-IV /
MIMIC-III file names and column layouts.
"""

from __future__ import annotations

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
    read_meds,
    write_meds,
)
from medpredict.timeline.readers.mimic import read_mimic
from medpredict.timeline.readers.tables import load_mapping, parse_times
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

PATIENTS = """subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod
10001,F,60,2150,2011 - 2013,
10002,M,70,2160,2014 - 2016,2160-05-10
"""
ADMISSIONS = """subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,discharge_location
10001,20001,2150-03-01 10:00:00,2150-03-05 12:00:00,,EW EMER.,HOME
10002,20002,2160-05-01 08:00:00,2160-05-10 09:00:00,2160-05-10 09:00:00,URGENT,DIED
"""
ICUSTAYS = """subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los
10001,20001,30001,MICU,MICU,2150-03-01 12:00:00,2150-03-03 12:00:00,2.0
"""
CHART_HEADER = (
    "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,"
    "valueuom,warning\n"
)
CLEAN_CHART = [
    "10001,20001,30001,1,2150-03-01 13:00:00,,220045,80,80,bpm,0",
    "10001,20001,30001,1,2150-03-01 14:00:00,,220179,120,120,mmHg,0",
    "10001,20001,30001,1,2150-03-01 13:00:00,,223761,98.6,98.6,°F,0",
    "10001,20001,30001,1,2150-03-01 13:00:00,,220210,18,18,insp/min,0",
    "10001,20001,30001,1,2150-03-01 13:30:00,,224054,3,3,,0",
]
LABEVENTS = """labevent_id,subject_id,hadm_id,specimen_id,itemid,charttime,value,valuenum,valueuom
1,10001,20001,5,50912,2150-03-01 11:00:00,1.2,1.2,mg/dL
2,10001,20001,5,50983,2150-03-01 11:00:00,140,140,mEq/L
3,10002,20002,6,51301,2160-05-02 07:00:00,11.5,11.5,K/uL
4,10002,20002,6,51237,2160-05-02 07:00:00,NEG,,
"""
DIAGNOSES = """subject_id,hadm_id,seq_num,icd_code,icd_version
10001,20001,1,A419,10
"""
PRESCRIPTIONS = """subject_id,hadm_id,starttime,stoptime,drug
10002,20002,2160-05-01 09:00:00,2160-05-02 09:00:00,Heparin
"""


def _write(folder: Path, name: str, text: str, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if gz:
        path = folder / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
    return path


def _mimic4(root: Path, chart: list[str] = CLEAN_CHART, gz: bool = False) -> Path:
    hosp, icu = root / "hosp", root / "icu"
    _write(hosp, "patients", PATIENTS, gz)
    _write(hosp, "admissions", ADMISSIONS, gz)
    _write(icu, "icustays", ICUSTAYS, gz)
    _write(icu, "chartevents", CHART_HEADER + "\n".join(chart) + "\n", gz)
    _write(hosp, "labevents", LABEVENTS, gz)
    _write(hosp, "diagnoses_icd", DIAGNOSES, gz)
    _write(hosp, "prescriptions", PRESCRIPTIONS, gz)
    return root


def _events(result, code: str) -> pd.DataFrame:
    return result.events[result.events["code"] == code]


def test_shipped_mappings_load_and_map_common_items():
    for name in ("mimic4", "mimic3"):
        mapping = load_mapping(name)
        assert set(mapping.tables) == {"patients", "admissions", "icustays", "labevents",
                                       "chartevents", "diagnoses_icd", "prescriptions"}
    iv = load_mapping("mimic4")
    chart = iv.tables["chartevents"].events[0].codes
    assert (chart["220045"].code, chart["220179"].code, chart["220050"].code) == (
        "HR", "NISysABP", "SysABP")
    assert chart["223761"].units["°F"].to == "degC"
    labs = iv.tables["labevents"].events[0].codes
    assert {labs[i].code for i in ("50912", "50813", "50983", "50971", "51301", "51265")} == {
        "Creatinine", "Lactate", "Na", "K", "WBC", "Platelets"}
    iii = load_mapping("mimic3")
    assert iii.tables["chartevents"].events[0].codes["211"].code == "HR"
    assert iii.tables["chartevents"].events[0].codes["51"].code == "SysABP"
    assert iii.tables["patients"].subject == "SUBJECT_ID"


def test_clean_mimic4_read(tmp_path):
    result = read_mimic(_mimic4(tmp_path), mapping="mimic4")
    assert result.quarantine.empty, result.quarantine
    assert result.tables == {"patients": 2, "admissions": 2, "icustays": 1, "chartevents": 5,
                             "labevents": 4, "diagnoses_icd": 1, "prescriptions": 1}
    assert result.not_read == ()
    # patients: 2 births + 1 dod + 2 genders; admissions: 2 x 2 + 1 deathtime; icu: 2
    assert result.rows_in == 5 + 5 + 2 + 5 + 4 + 1 + 1 == len(result.events)
    events = result.events
    assert [str(t) for t in conform(events).dtypes] == [str(t) for t in events.dtypes]
    assert str(events["time"].dtype) == "datetime64[us]"
    assert str(events["numeric_value"].dtype) == "float32"
    birth = _events(result, BIRTH).set_index("subject_id")["time"]
    assert birth[10001] == pd.Timestamp("2090-01-01") and birth[10002] == pd.Timestamp("2090-01-01")
    death = _events(result, DEATH)
    assert sorted(death["time"].astype(str)) == ["2160-05-10 00:00:00", "2160-05-10 09:00:00"]
    gender = _events(result, "GENDER").set_index("subject_id")
    assert gender["time"].isna().all() and gender.loc[10001, "text_value"] == "F"
    for code, when in ((HOSPITAL_ADMISSION, "2150-03-01 10:00"), (HOSPITAL_DISCHARGE,
                       "2150-03-05 12:00"), (ICU_ADMISSION, "2150-03-01 12:00"),
                       (ICU_DISCHARGE, "2150-03-03 12:00")):  # fmt: skip
        row = _events(result, code)
        assert row.loc[row["subject_id"] == 10001, "time"].iloc[0] == pd.Timestamp(when)
    assert _events(result, ICU_ADMISSION)["text_value"].iloc[0] == "MICU"
    hr = _events(result, "HR")
    assert hr["numeric_value"].tolist() == [80.0] and hr["unit"].iloc[0] == "bpm"
    temp = _events(result, "Temp")
    assert temp["numeric_value"].iloc[0] == pytest.approx(37.0, abs=1e-4)
    assert temp["unit"].iloc[0] == "degC"
    assert _events(result, "RespRate")["unit"].iloc[0] == "breaths/min"
    assert _events(result, "CHART//224054")["numeric_value"].iloc[0] == 3.0
    na = _events(result, "Na")
    assert (na["numeric_value"].iloc[0], na["unit"].iloc[0]) == (140.0, "mmol/L")
    assert _events(result, "WBC")["unit"].iloc[0] == "10^3/uL"
    assert _events(result, "Creatinine")["text_value"].isna().all()  # "1.2" is the number
    text_lab = _events(result, "LAB//51237")
    assert np.isnan(text_lab["numeric_value"].iloc[0]) and text_lab["text_value"].iloc[0] == "NEG"
    diagnosis = _events(result, "DIAGNOSIS//ICD//10//A419")
    assert diagnosis["time"].iloc[0] == pd.Timestamp("2150-03-05 12:00")
    assert _events(result, "MEDICATION//Heparin")["subject_id"].tolist() == [10002]


BAD_CHART = [
    *CLEAN_CHART,
    "10001,20001,30001,1,2150-02-30 10:00:00,,220045,80,80,bpm,0",  # line 7: impossible
    "10001,20001,30001,1,yesterday,,220045,80,80,bpm,0",  # line 8: unparseable time
    "10001,20001,30001,1,2150-03-01,,220045,80,80,bpm,0",  # line 9: date only, not allowed
    "10001,20001,30001,1,2150-03-01 15:00:00,,220045,abc,abc,bpm,0",  # 10: unparseable value
    "10001,20001,30001,1,2150-03-01 15:00:00,,220045,999999,999999,bpm,0",  # 11: sentinel
    "10001,20001,30001,1,2150-03-01 16:00:00,,220045,500,500,bpm,0",  # 12: implausible
    "10001,20001,30001,1,2150-03-01 16:00:00,,223762,37,37,K,0",  # 13: unit mismatch
    "10001,20001,30001,1,2080-03-01 16:00:00,,220045,70,70,bpm,0",  # 14: before birth
    "10002,20002,,1,2160-06-01 16:00:00,,220045,70,70,bpm,0",  # 15: after death
    "10001,20001,30001,1,2150-03-01 13:00:00,,220045,80,80,bpm,0",  # 16: duplicate of 2
    "10001,20001,30001,1,2150-03-01 17:00:00,,,80,80,bpm,0",  # 17: no item id
    "10001,20001,30001,1,2150-03-01 17:00:00,,HR,80,80,bpm,0",  # 18: item id not a number
    ",20001,30001,1,2150-03-01 17:00:00,,220045,80,80,bpm,0",  # 19: no subject
]


def test_every_bad_input_class_is_quarantined_with_its_reason(tmp_path):
    folder = _mimic4(tmp_path, BAD_CHART)
    _write(folder / "hosp", "diagnoses_icd", DIAGNOSES + "10001,29999,2,I10,10\n")
    result = read_mimic(folder)
    quarantine = result.quarantine
    chart = quarantine[quarantine["source"] == "chartevents.csv"].set_index("line")["reason"]
    assert chart.to_dict() == {
        7: IMPOSSIBLE_TIME, 8: UNPARSEABLE_TIME, 9: UNPARSEABLE_TIME, 10: UNPARSEABLE_VALUE,
        11: SENTINEL, 12: IMPLAUSIBLE, 13: UNIT_MISMATCH, 14: BEFORE_BIRTH, 15: AFTER_DEATH,
        16: DUPLICATE, 17: UNKNOWN_CODE, 18: UNKNOWN_CODE, 19: MISSING_SUBJECT,
    }
    row = quarantine[quarantine["line"] == 7].iloc[0]
    assert (row["time"], row["code"], row["value"]) == ("2150-02-30 10:00:00", "HR", "80")
    assert quarantine.loc[quarantine["line"] == 18, "code"].iloc[0] == "CHART//HR"
    missing = quarantine[quarantine["source"] == "diagnoses_icd.csv"].iloc[0]
    assert missing["reason"] == UNPARSEABLE_TIME and missing["line"] == 3
    assert missing["time"] == "no admissions row with hadm_id 29999"
    assert result.rows_in == len(result.events) + len(quarantine)
    assert len(result.events) == 23  # the clean read's 23 events, each exactly once


def test_parse_times_tells_impossible_from_unparseable():
    times, reasons = parse_times(
        pd.Series(["2130-02-30 10:00:00", "2130-01-01 25:00:00", "2130-01-01T08:00:00.5",
                   "2130-01-01", "01/02/2130 10:00", ""]),
        date_ok=np.array([False, False, False, True, False, False]),
    )
    assert reasons.tolist() == [IMPOSSIBLE_TIME, IMPOSSIBLE_TIME, None, None,
                                UNPARSEABLE_TIME, UNPARSEABLE_TIME]
    assert times[2] == pd.Timestamp("2130-01-01 08:00:00.5") and times[3] == pd.Timestamp(
        "2130-01-01")


def test_mimic3_csv_gz_with_upper_case_layout(tmp_path):
    _write(tmp_path, "PATIENTS", "ROW_ID,SUBJECT_ID,GENDER,DOB,DOD,DOD_HOSP,DOD_SSN,EXPIRE_FLAG\n"
           "1,249,F,2075-03-13 00:00:00,2152-01-01 00:00:00,,,1\n", gz=True)
    _write(tmp_path, "ADMISSIONS", "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,DISCHTIME,DEATHTIME,"
           "ADMISSION_TYPE,DISCHARGE_LOCATION\n1,249,116935,2149-12-17 20:41:00,"
           "2149-12-31 14:55:00,,EMERGENCY,HOME HEALTH CARE\n", gz=True)
    _write(tmp_path, "ICUSTAYS", "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,FIRST_CAREUNIT,"
           "LAST_CAREUNIT,INTIME,OUTTIME,LOS\n1,249,116935,215044,MICU,MICU,2149-12-18 20:58:00,"
           "2149-12-20 15:14:00,1.8\n", gz=True)
    _write(tmp_path, "CHARTEVENTS", "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,ITEMID,CHARTTIME,"
           "STORETIME,CGID,VALUE,VALUENUM,VALUEUOM\n"
           "1,249,116935,215044,211,2149-12-18 21:00:00,,1,86,86,BPM\n"
           "2,249,116935,215044,678,2149-12-18 21:00:00,,1,100.4,100.4,Deg. F\n"
           "3,249,116935,215044,51,2149-12-18 21:00:00,,1,131,131,mmHg\n", gz=True)
    _write(tmp_path, "DIAGNOSES_ICD", "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n"
           "1,249,116935,1,0389\n", gz=True)
    result = read_mimic(tmp_path, mapping="mimic3")
    assert result.quarantine.empty, result.quarantine
    assert set(result.tables) == {"patients", "admissions", "icustays", "chartevents",
                                  "diagnoses_icd"}
    assert result.not_read == ("labevents", "prescriptions")
    assert _events(result, BIRTH)["time"].iloc[0] == pd.Timestamp("2075-03-13")
    hr = _events(result, "HR")
    assert (hr["numeric_value"].iloc[0], hr["unit"].iloc[0]) == (86.0, "bpm")
    temp = _events(result, "Temp")["numeric_value"].iloc[0]
    assert temp == pytest.approx(38.0, abs=1e-4)
    assert _events(result, "SysABP")["numeric_value"].iloc[0] == 131.0
    assert _events(result, "DIAGNOSIS//ICD//9//0389")["time"].iloc[0] == pd.Timestamp(
        "2149-12-31 14:55:00")
    assert _events(result, ICU_ADMISSION)["subject_id"].tolist() == [249]


def test_missing_column_names_table_key_and_column(tmp_path):
    folder = _mimic4(tmp_path)
    _write(folder / "hosp", "labevents", LABEVENTS.replace("valuenum", "value_num"))
    with pytest.raises(DataError, match=r"table 'labevents' \(labevents.csv\) lacks column "
                       r"'valuenum'.*key 'value'"):
        read_mimic(folder)


def test_join_needs_its_table(tmp_path):
    _write(tmp_path, "diagnoses_icd", DIAGNOSES)
    with pytest.raises(DataError, match="'diagnoses_icd' takes its time from table 'admissions'"):
        read_mimic(tmp_path)


def test_mapping_errors_name_table_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  labevents:\n    subject: subject_id\n    events:\n"
                   "      - {code: 'LAB//{itemid}', tme: charttime}\n")
    with pytest.raises(DataError, match=r"table 'labevents', event 1: unknown key\(s\) \['tme'\]"):
        read_mimic(tmp_path, mapping=bad)
    bad.write_text("tables:\n  labevents:\n    events:\n      - {code: X}\n")
    with pytest.raises(DataError, match=r"table 'labevents': missing key\(s\) 'subject'"):
        load_mapping(bad)
    bad.write_text("tables:\n  d:\n    subject: s\n    events:\n"
                   "      - {code: 'D//{x}', time: {join: nowhere, by: k, column: t}}\n")
    with pytest.raises(DataError, match="joins table 'nowhere'"):
        load_mapping(bad)
    with pytest.raises(DataError, match="neither a shipped mapping"):
        load_mapping("mimic5")


def test_folder_without_tables_is_an_error(tmp_path):
    (tmp_path / "notes.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="holds none of the MIMIC tables"):
        read_mimic(tmp_path)


def test_parquet_table_and_custom_mapping(tmp_path):
    pd.DataFrame({"subject_id": [1, 2], "charttime": pd.to_datetime(
        ["2150-01-01 08:00", "2150-01-01 09:00"]), "itemid": [220045, 220045],
        "valuenum": [72.0, 0.0], "valueuom": ["bpm", "bpm"]}).to_parquet(
        tmp_path / "chartevents.parquet")
    mapping = tmp_path / "vitals.yaml"
    mapping.write_text("sentinels: [0]\ntables:\n  chartevents:\n    subject: subject_id\n"
                       "    events:\n      - code: 'CHART//{itemid}'\n        time: charttime\n"
                       "        value: valuenum\n        unit: valueuom\n"
                       "        codes: {220045: HR}\n")
    result = read_mimic(tmp_path, mapping=mapping)
    assert result.events["time"].tolist() == [pd.Timestamp("2150-01-01 08:00")]
    assert result.quarantine[["line", "reason"]].values.tolist() == [[2, SENTINEL]]


def test_round_trip_through_meds(tmp_path):
    result = read_mimic(_mimic4(tmp_path / "mimic"))
    back = read_meds(write_meds(result.events, tmp_path / "meds", "mimic-demo"))
    assert len(back) == len(result.events)
    key = ["subject_id", "time", "code"]
    left = result.events.sort_values(key).reset_index(drop=True)
    right = back.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)
