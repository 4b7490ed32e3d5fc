"""The FHIR R4 reader: Bundles, NDJSON, posted Bundles, subjects and every bad-input class.

No FHIR export of real patients exists here, so the resources are small hand-made
fixtures in the FHIR R4 layout (Synthea-style ``urn:uuid:`` references in the Bundle,
``Patient/<id>`` references in the NDJSON files), written into ``tmp_path`` by the
tests. FHIR has no sentinel values (a missing value is a ``dataAbsentReason``), so the
sentinel check has nothing to find here.
"""

from __future__ import annotations

import copy
import gzip
import json

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
    conform,
)
from medpredict.timeline.readers.fhir import (
    events_from_bundle,
    read_fhir,
    resource_rows,
    subject_ids,
)
from medpredict.timeline.validate import (
    AFTER_DEATH,
    BEFORE_BIRTH,
    DUPLICATE,
    IMPLAUSIBLE,
    IMPOSSIBLE_TIME,
    INVALID_RESOURCE,
    MISSING_SUBJECT,
    REASONS,
    UNIT_MISMATCH,
    UNKNOWN_CODE,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ALICE = "6f1c0a4e-3c1b-4d5e-9a7b-2c8d9e0f1a2b"
ALICE_URL = f"urn:uuid:{ALICE}"


def _obs(subject, loinc, value=None, unit=None, when="2020-01-01T09:00:00Z", **more):
    resource = {"resourceType": "Observation", "status": "final",
                "subject": {"reference": subject}, "effectiveDateTime": when,
                "code": {"coding": [{"system": LOINC, "code": loinc}]}}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "system": UCUM, "code": unit, "unit": unit}
    resource.update(more)
    return resource


def _bundle(*resources) -> dict:
    entries = []
    for resource in resources:
        url = ALICE_URL if resource.get("id") == ALICE else None
        entries.append({"fullUrl": url or f"urn:uuid:r{len(entries)}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


PATIENTS = [
    {"resourceType": "Patient", "id": ALICE, "birthDate": "1960-05-01", "gender": "female"},
    {"resourceType": "Patient", "id": "42", "birthDate": "1950", "gender": "male",
     "deceasedDateTime": "2022-01-01T00:00:00Z"},
]
CLEAN = [
    *PATIENTS,
    {"resourceType": "Encounter", "status": "finished", "subject": {"reference": ALICE_URL},
     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
     "period": {"start": "2020-01-01T08:00:00Z", "end": "2020-01-05T12:00:00Z"}},
    {"resourceType": "Encounter", "status": "finished", "subject": {"reference": ALICE_URL},
     "class": {"code": "IMP"}, "type": [{"text": "Intensive care unit stay"}],
     "period": {"start": "2020-01-02T10:00:00+01:00"}},
    {"resourceType": "Encounter", "status": "finished", "subject": {"reference": "Patient/42"},
     "class": {"code": "AMB"}, "period": {"start": "2021-06-01"}},
    _obs(ALICE_URL, "8867-4", 72, "/min"),
    {**_obs(ALICE_URL, "85354-9"), "component": [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "system": UCUM, "code": "mm[Hg]"}}]},
    _obs(ALICE_URL, "8310-5", 98.6, "[degF]"),
    _obs(ALICE_URL, "718-7", 13.0, "g/dL"),
    _obs(ALICE_URL, "72166-2", valueCodeableConcept={"text": "Never smoker"}),
    {"resourceType": "Condition", "subject": {"reference": ALICE_URL},
     "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A41.9"}]},
     "onsetDateTime": "2020-01-01T08:30:00Z"},
    {"resourceType": "Condition", "subject": {"reference": "Patient/42"},
     "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
     "recordedDate": "2021-06-01"},
    {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
     "subject": {"reference": ALICE_URL}, "authoredOn": "2020-01-01T10:00:00Z",
     "medicationCodeableConcept": {"coding": [
         {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "5224"}]}},
    {"resourceType": "Medication", "id": "med-1", "code": {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1719"}]}},
    {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
     "subject": {"reference": "Patient/42"}, "authoredOn": "2021-06-01",
     "medicationReference": {"reference": "Medication/med-1"}},
    {"resourceType": "Practitioner", "id": "dr-1"},
]


def _code(result, code: str) -> pd.DataFrame:
    return result.events[result.events["code"] == code]


def test_clean_bundle(tmp_path):
    path = tmp_path / "alice.json"
    path.write_text(json.dumps(_bundle(*CLEAN)))
    result = read_fhir(path)
    assert result.quarantine.empty, result.quarantine
    assert result.tables == {"Patient": 2, "Encounter": 3, "Observation": 5, "Condition": 2,
                             "MedicationRequest": 2}
    assert result.not_read == ("Practitioner",)
    # patients 2 + 3, encounters 2 + 1 + 1, observations 1 + 2 + 1 + 1 + 1, 2 + 2
    assert result.rows_in == len(result.events) == 5 + 4 + 6 + 4
    events = result.events
    assert [str(t) for t in conform(events).dtypes] == [str(t) for t in events.dtypes]
    subjects = result.subjects.set_index("fhir_id")["subject_id"]
    alice, bob = subjects[ALICE], subjects["42"]
    assert bob == 42 and alice >= 2**62 and str(result.subjects["subject_id"].dtype) == "int64"
    birth = _code(result, BIRTH).set_index("subject_id")["time"]
    assert birth[alice] == pd.Timestamp("1960-05-01") and birth[bob] == pd.Timestamp("1950-01-01")
    assert _code(result, DEATH)["time"].tolist() == [pd.Timestamp("2022-01-01")]
    gender = _code(result, "GENDER")
    assert gender["time"].isna().all()
    assert gender.set_index("subject_id")["text_value"].to_dict() == {alice: "female", bob: "male"}
    assert _code(result, HOSPITAL_ADMISSION)["time"].tolist() == [pd.Timestamp("2020-01-01 08:00")]
    assert _code(result, HOSPITAL_DISCHARGE)["time"].tolist() == [pd.Timestamp("2020-01-05 12:00")]
    assert _code(result, ICU_ADMISSION)["time"].tolist() == [pd.Timestamp("2020-01-02 09:00")]
    assert _code(result, "ENCOUNTER//AMB")["subject_id"].tolist() == [42]
    value = {c: (float(_code(result, c)["numeric_value"].iloc[0]), _code(result, c)["unit"].iloc[0])
             for c in ("HR", "SysABP", "DiasABP", "LOINC//718-7")}
    assert value == {"HR": (72.0, "bpm"), "SysABP": (120.0, "mmHg"), "DiasABP": (80.0, "mmHg"),
                     "LOINC//718-7": (13.0, "g/dL")}
    temp = _code(result, "Temp")
    assert temp["numeric_value"].iloc[0] == pytest.approx(37.0, abs=1e-4)
    assert temp["unit"].iloc[0] == "degC"
    smoking = _code(result, "LOINC//72166-2")
    assert smoking["text_value"].tolist() == ["Never smoker"]
    assert np.isnan(smoking["numeric_value"].iloc[0])
    assert _code(result, "ICD10//A41.9")["time"].tolist() == [pd.Timestamp("2020-01-01 08:30")]
    assert _code(result, "SNOMED//44054006")["subject_id"].tolist() == [42]
    assert _code(result, "RXNORM//5224")["subject_id"].tolist() == [alice]
    assert _code(result, "RXNORM//1719")["subject_id"].tolist() == [42]


def test_events_from_bundle_matches_the_file_reader(tmp_path):
    bundle = _bundle(*CLEAN)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    posted = events_from_bundle(copy.deepcopy(bundle))
    pd.testing.assert_frame_equal(posted.events, read_fhir(path).events)
    pd.testing.assert_frame_equal(posted.subjects, read_fhir(path).subjects)
    with pytest.raises(DataError, match="is not a Bundle"):
        events_from_bundle({"resourceType": "Patient", "id": "1"})


def test_ndjson_folder_and_gz(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(
        "\n".join(json.dumps(p) for p in PATIENTS) + "\n\n")
    observations = [_obs(f"Patient/{ALICE}", "8867-4", 70, "/min"),
                    _obs("Patient/42", "2160-0", 1.2, "mg/dL", when="2021-06-01T08:00:00Z")]
    (folder / "Observation.ndjson.gz").write_bytes(
        gzip.compress("\n".join(json.dumps(o) for o in observations).encode()))
    result = read_fhir(folder)
    assert result.quarantine.empty, result.quarantine
    assert result.tables == {"Patient": 2, "Observation": 2}
    hr = _code(result, "HR")
    assert hr["subject_id"].tolist() == result.subjects.loc[
        result.subjects["fhir_id"] == ALICE, "subject_id"].tolist()
    creatinine = _code(result, "Creatinine")
    assert (creatinine["subject_id"].iloc[0], creatinine["unit"].iloc[0]) == (42, "mg/dL")


def test_every_bad_input_class_is_quarantined_with_its_reason(tmp_path):
    bad = [
        _obs("Patient/42", "8867-4", 80, "/min", when="2020-02-30T08:00:00Z"),  # line 3
        _obs("Patient/42", "8867-4", 80, "/min", when="yesterday"),  # line 4
        _obs("Patient/42", "8867-4", "abc", "/min"),  # line 5: value not a number
        _obs("Patient/42", "8867-4", 400, "/min"),  # line 6: implausible
        _obs("Patient/42", "2160-0", 97, "umol/L"),  # line 7: unit mismatch
        _obs("Patient/42", "8867-4", 60, "/min", when="1949-06-01T08:00:00Z"),  # 8: before birth
        _obs("Patient/42", "8867-4", 60, "/min", when="2023-01-01T08:00:00Z"),  # 9: after death
        _obs("Patient/42", "8867-4", 80, "/min"),  # line 10
        _obs("Patient/42", "8867-4", 80, "/min"),  # line 11: duplicate of 10
        {**_obs("Patient/42", "x", 1), "code": {"coding": [  # line 12: no LOINC coding
            {"system": "http://snomed.info/sct", "code": "364075005"}]}},
        {k: v for k, v in _obs("Patient/42", "8867-4", 80, "/min").items()
         if k != "status"},  # line 13: status is required
        {**_obs("Patient/42", "8867-4", 81, "/min"), "status": "entered-in-error"},  # line 14
        _obs("Group/7", "8867-4", 80, "/min"),  # line 15: not a patient
    ]
    lines = [json.dumps(p) for p in PATIENTS] + [json.dumps(o) for o in bad] + ["{not json"]
    (tmp_path / "all.ndjson").write_text("\n".join(lines) + "\n")
    result = read_fhir(tmp_path / "all.ndjson")
    reasons = result.quarantine.set_index("line")["reason"].to_dict()
    assert reasons == {
        3: IMPOSSIBLE_TIME, 4: UNPARSEABLE_TIME, 5: UNPARSEABLE_VALUE, 6: IMPLAUSIBLE,
        7: UNIT_MISMATCH, 8: BEFORE_BIRTH, 9: AFTER_DEATH, 11: DUPLICATE, 12: UNKNOWN_CODE,
        13: INVALID_RESOURCE, 14: INVALID_RESOURCE, 15: MISSING_SUBJECT, 16: INVALID_RESOURCE,
    }
    quarantine = result.quarantine.set_index("line")
    assert quarantine.loc[3, "time"] == "2020-02-30T08:00:00Z"
    assert quarantine.loc[12, "code"] == "http://snomed.info/sct|364075005"
    assert "status" in quarantine.loc[13, "value"]
    assert quarantine.loc[14, "value"] == "entered-in-error"
    assert quarantine.loc[16, "value"] == "{not json"
    assert set(result.quarantine["source"]) == {"all.ndjson"}
    assert result.rows_in == len(result.events) + len(result.quarantine) == 5 + 14
    assert INVALID_RESOURCE in REASONS


def test_invalid_resource_in_a_posted_bundle():
    patient = {"resourceType": "Patient", "id": "a b", "birthDate": "1970-01-01"}
    result = events_from_bundle(_bundle(patient, *PATIENTS))
    assert result.quarantine[["line", "code", "reason"]].values.tolist() == [
        [1, "Patient", INVALID_RESOURCE]]
    assert "id" in result.quarantine["value"].iloc[0]


def test_resource_rows_and_subject_ids_are_reusable():
    rows = resource_rows(_obs("Patient/5", "8867-4", 70, "/min"), source="post", line=3)
    assert rows == [("post", 3, "5", "2020-01-01T09:00:00Z", "HR", "70", None, "/min",
                     "8867-4", None)]
    first = subject_ids(["abc", "7"])
    again = subject_ids(["7", "abc", "zzz"])
    assert first.set_index("fhir_id")["subject_id"]["abc"] == again.set_index(
        "fhir_id")["subject_id"]["abc"]
    assert first.set_index("fhir_id")["subject_id"]["7"] == 7


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="holds no FHIR files"):
        read_fhir(tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match=r"broken\.json is not JSON"):
        read_fhir(tmp_path)
