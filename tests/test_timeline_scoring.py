"""Scoring timeline models: batch, ``medpredict predict`` and the service give the study's risks.

Real data: a timeline study is trained once on 400 stays of PhysioNet/CinC 2012 set A
(``ehr/physionet2012``); the stays are then scored from their raw events by
``score_timeline``, by ``medpredict predict`` on a MEDS folder, and by the running service
(JSON MEDS rows and a FHIR Bundle), and every risk must equal the study table's own,
exactly. The bad-input cases (an impossible date, a value that is not a number, a stay
without its admission) are hand-made events in the same layout, because the real files
hold none.
"""

from __future__ import annotations

import json
import sqlite3
import tarfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment
from serve_support import keys, pima_model
from typer.testing import CliRunner

from medpredict.artifact import load_model
from medpredict.cli import app as cli_app
from medpredict.data.errors import DataError
from medpredict.predict import predict_frame
from medpredict.serve.app import create_app
from medpredict.serve.audit import input_hash
from medpredict.serve.config import ServeSettings
from medpredict.settings import require_data
from medpredict.spec import parse_spec
from medpredict.study.runner import run_study
from medpredict.timeline.events import ICU_ADMISSION, write_meds
from medpredict.timeline.readers.fhir import LOINC, events_from_bundle
from medpredict.timeline.readers.physionet2012 import ADMISSION, read_physionet2012
from medpredict.timeline.scoring import (
    prediction_samples,
    score_timeline,
    screen_events,
    timeline_features,
    timeline_of,
)
from medpredict.timeline.spec import TimelineSpec
from medpredict.timeline.table import KEY_COLUMNS, timeline_table
from medpredict.timeline.validate import load_ranges

STAYS = 400
SERVED = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> SimpleNamespace:
    """The study trained once: its model, its table (from the study's own code) and events."""
    base = tmp_path_factory.mktemp("timeline-scoring")
    with tarfile.open(require_data("ehr/physionet2012/set-a.tar.gz")) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".txt")][:STAYS]
        tar.extractall(base / "records", members=members, filter="data")
    ids = {int(Path(m.name).stem) for m in members}
    outcomes = pd.read_csv(require_data("ehr/physionet2012/Outcomes-a.txt"))
    outcomes[outcomes["RecordID"].isin(ids)].to_csv(base / "Outcomes.txt", index=False)
    raw = {
        "name": "icu-24h",
        "data": {"events": {"reader": "physionet2012", "path": "records",
                            "outcomes": "Outcomes.txt"}},
        "timeline": {"index": {"offset": "24h"}, "observation": "24h", "windows": ["6h", "24h"],
                     "outcome": {"column": "In-hospital_death"}, "step": "4h"},
        "target": "died",
        "positive_class": 1,
        "models": ["logistic_regression", "lightgbm"],
        "bootstrap": 50,
        "validation": {"folds": 3, "nested": False},
        "trust": {"learning_curve": False},
        "output_dir": str(base / "run"),
    }
    result = run_study(parse_spec(raw, base_dir=base), quiet=True)
    table = timeline_table(result.spec.data.events, result.spec)
    read = read_physionet2012(base / "records", base / "Outcomes.txt")
    loaded = load_model(result.model_dir)
    batch = predict_frame(loaded, table.frame, keep=list(KEY_COLUMNS))
    return SimpleNamespace(base=base, model_dir=result.model_dir, loaded=loaded, table=table,
                           events=read.events, batch=batch)


@pytest.fixture(scope="module")
def client(study) -> TestClient:
    settings = ServeSettings(keys_file=keys()["file"],
                             audit_url=f"sqlite:///{study.base / 'audit.db'}")
    client = TestClient(create_app([study.model_dir, pima_model()], settings))
    client.headers.update({"X-API-Key": keys()["clinician"]})
    return client


def served_subjects(study) -> list[int]:
    return [int(s) for s in sorted(study.table.frame["subject_id"].unique())[:SERVED]]


def meds_rows(events: pd.DataFrame) -> list[dict]:
    """Events as the JSON objects of a request (MEDS columns; ISO times, null when static)."""
    return [
        {"subject_id": int(e.subject_id),
         "time": None if pd.isna(e.time) else e.time.isoformat(),
         "code": str(e.code),
         "numeric_value": None if pd.isna(e.numeric_value) else float(e.numeric_value)}
        for e in events.itertuples(index=False)
    ]


def batch_rows(study, subjects: list[int]) -> pd.DataFrame:
    """predict_frame on the study table's rows of ``subjects`` (same rows as a request)."""
    rows = study.table.frame[study.table.frame["subject_id"].isin(subjects)]
    return predict_frame(study.loaded, rows.reset_index(drop=True), keep=list(KEY_COLUMNS))


def post_events(client, events: list[dict], **extra):
    return client.post("/v1/models/icu-24h/timeline", json={"events": events, **extra})


@pytest.mark.slow
def test_the_model_directory_records_its_timeline(study):
    timeline = timeline_of(study.loaded)
    assert timeline.index.offset == "24h" and timeline.step == "4h"
    kinds = {f["name"]: f["kind"] for f in study.loaded.metadata.data_schema["features"]}
    assert set(kinds.values()) == {"numeric", "sequence"}
    assert list(kinds) == study.loaded.metadata.feature_names
    assert study.loaded.metadata.spec["features"] is None  # derived from timeline:


@pytest.mark.slow
def test_features_and_risks_from_raw_events_equal_the_study_table(study):
    samples = prediction_samples(study.events, timeline_of(study.loaded))
    assert (samples["index_time"] == ADMISSION + pd.Timedelta("24h")).all()
    features = timeline_features(study.loaded, study.events, samples)
    table = study.table.frame
    assert features["sample_id"].tolist() == table["sample_id"].tolist()
    columns = study.loaded.metadata.feature_names
    assert list(features.columns) == [*KEY_COLUMNS, *columns]
    pd.testing.assert_frame_equal(features[columns], table[columns], check_exact=True,
                                  check_dtype=False)
    scored = score_timeline(study.loaded, study.events)
    assert scored["sample_id"].tolist() == study.batch["sample_id"].tolist()
    assert (scored["risk"].to_numpy() == study.batch["risk"].to_numpy()).all()
    assert scored["risk"].nunique() > STAYS / 2  # real risks, not a constant


@pytest.mark.slow
def test_served_meds_rows_give_the_batch_risks_and_are_audited(study, client):
    subjects = served_subjects(study)
    events = meds_rows(study.events[study.events["subject_id"].isin(subjects)])
    answer = post_events(client, events)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = batch_rows(study, subjects)
    assert [p["sample_id"] for p in body["predictions"]] == expected["sample_id"].tolist()
    assert [p["risk"] for p in body["predictions"]] == expected["risk"].tolist()
    first = body["predictions"][0]
    assert first["index_time"] == (ADMISSION + pd.Timedelta("24h")).isoformat()
    assert first["risk_band"]["label"] and set(first["probabilities"]) == {"0", "1"}
    assert body["events"] == len(events)
    with sqlite3.connect(study.base / "audit.db") as db:
        row = db.execute("SELECT action, input_sha256, output FROM audit_log WHERE seq = ?",
                         (body["audit_seq"],)).fetchone()
    assert row[0] == "timeline"
    assert row[1] == input_hash({"events": [{**e, "text_value": None, "unit": None}
                                            for e in events],
                                 "index_time": None, "purpose": "care"})
    output = json.loads(row[2])
    assert [o["risk"] for o in output] == expected["risk"].tolist()
    assert str(subjects[0]) not in row[2]  # no subject id, no input value in the log


@pytest.mark.slow
def test_an_event_after_the_index_time_changes_nothing(study, client):
    subject = served_subjects(study)[0]
    events = meds_rows(study.events[study.events["subject_id"] == subject])
    base = post_events(client, events).json()["predictions"][0]
    later = (ADMISSION + pd.Timedelta("30h")).isoformat()
    extreme = [{"subject_id": subject, "time": later, "code": code, "numeric_value": value}
               for code, value in (("HR", 190.0), ("Lactate", 18.0), ("SysABP", 60.0))]
    after = post_events(client, events + extreme).json()["predictions"][0]
    assert after["risk"] == base["risk"]
    # the same events inside the observation window do reach the features
    before = [{**e, "time": (ADMISSION + pd.Timedelta("23h")).isoformat()} for e in extreme]
    frame = pd.DataFrame(events + before)
    read = screen_events(frame, "test", timeline_of(study.loaded), first_line=1)
    samples = prediction_samples(read.events, timeline_of(study.loaded))
    moved = timeline_features(study.loaded, read.events, samples)
    assert moved.loc[0, "HR__max__6h"] == 190.0 and moved.loc[0, "Lactate__max__24h"] == 18.0


@pytest.mark.slow
def test_an_index_time_past_the_data_is_scored_now(study, client):
    subject = served_subjects(study)[0]
    events = meds_rows(study.events[study.events["subject_id"] == subject])
    at = (ADMISSION + pd.Timedelta("24h")).isoformat()
    explicit = post_events(client, events, index_time=at).json()["predictions"][0]
    default = post_events(client, events).json()["predictions"][0]
    assert explicit["risk"] == default["risk"] and explicit["sample_id"] == f"{subject}@24h"
    late = post_events(client, events, index_time=(ADMISSION + pd.Timedelta("60h")).isoformat())
    assert late.status_code == 200, late.text
    prediction = late.json()["predictions"][0]
    assert prediction["sample_id"] == f"{subject}@60h"
    assert any("after the subject's last event" in w for w in prediction["warnings"])


@pytest.mark.slow
def test_bad_events_are_refused_with_their_reasons_and_no_values(study, client):
    subject = served_subjects(study)[0]
    events = meds_rows(study.events[study.events["subject_id"] == subject])
    bad = [
        {"subject_id": subject, "time": "01/01/2000 04:00", "code": "HR", "numeric_value": 71.5},
        {"subject_id": subject, "time": "2000-02-30T01:00", "code": "HR", "numeric_value": 72.5},
        {"subject_id": subject, "time": "2000-01-01T02:00", "code": "HR",
         "numeric_value": "seventy"},
        {"subject_id": subject, "time": "2000-01-01T03:00", "code": "HR",
         "numeric_value": 987.654},
    ]
    answer = post_events(client, events + bad)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["quarantined"] == {"unparseable time": 1, "impossible time": 1,
                                     "unparseable value": 1, "implausible value": 1}
    lines = {row["line"]: row["reason"] for row in detail["rows"]}
    assert lines == {len(events) + 1: "unparseable time", len(events) + 2: "impossible time",
                     len(events) + 3: "unparseable value", len(events) + 4: "implausible value"}
    assert all(row["code"] == "HR" for row in detail["rows"])
    for value in ("987.654", "seventy", "2000-02-30", "01/01/2000", "71.5"):
        assert value not in answer.text


@pytest.mark.slow
def test_a_subject_without_its_anchor_is_refused_by_name(study, client):
    subject = served_subjects(study)[0]
    events = [e for e in meds_rows(study.events[study.events["subject_id"] == subject])
              if e["code"] != ICU_ADMISSION]
    answer = post_events(client, events)
    assert answer.status_code == 422
    assert f"no {ICU_ADMISSION} event" in answer.json()["detail"]
    assert str(subject) in answer.json()["detail"]


@pytest.mark.slow
def test_rows_of_features_are_refused_by_a_timeline_model(study, client):
    values = study.table.frame.iloc[0][study.loaded.metadata.feature_names]
    row = {k: None if pd.isna(v) else float(v) for k, v in values.items()}
    answer = client.post("/v1/models/icu-24h/predict", json={"rows": [row]})
    assert answer.status_code == 400
    assert "/v1/models/icu-24h/timeline" in answer.json()["detail"]


UCUM = {"bpm": "/min", "breaths/min": "/min", "mmHg": "mm[Hg]", "degC": "Cel",
        "10^3/uL": "10*3/uL", "IU/L": "U/L", "ug/L": "ng/mL"}
"""The range table's units as UCUM writes them (the FHIR reader maps them back)."""


def fhir_bundle(events: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """A Bundle of each subject's Patient, ICU Encounter and LOINC-coded Observations.

    Returns the Bundle and the events it carries: the timed events whose code has a
    LOINC code in the FHIR reader's table, and the ICU admission.
    """
    loinc = {}
    for code, mapped in LOINC.items():
        loinc.setdefault(mapped.code, code)
    carried = events[events["time"].notna()
                     & events["code"].isin([*loinc, ICU_ADMISSION])].reset_index(drop=True)
    ranges = load_ranges()
    resources = []
    for subject in sorted(carried["subject_id"].unique()):
        resources.append({"resourceType": "Patient", "id": str(subject), "gender": "female"})
    for e in carried.itertuples(index=False):
        when = e.time.isoformat() + "Z"
        patient = {"reference": f"Patient/{e.subject_id}"}
        if e.code == ICU_ADMISSION:
            resources.append({
                "resourceType": "Encounter", "status": "finished", "subject": patient,
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                          "code": "IMP"},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "305351004",
                                      "display": "Admission to intensive care unit"}]}],
                "period": {"start": when}})
            continue
        quantity = {"value": float(e.numeric_value)}
        unit = ranges[e.code].unit if e.code in ranges else None
        if unit is not None:
            quantity |= {"system": "http://unitsofmeasure.org", "code": UCUM.get(unit, unit)}
        resources.append({
            "resourceType": "Observation", "status": "final", "subject": patient,
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc[e.code]}]},
            "effectiveDateTime": when, "valueQuantity": quantity})
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r}
                        for r in resources]}
    return bundle, carried


def post_bundle(client, bundle: dict, **params):
    return client.post("/fhir/RiskAssessment/$timeline", json=bundle, params=params,
                       headers={"Content-Type": "application/fhir+json"})


@pytest.mark.slow
def test_a_fhir_bundle_gives_the_risks_of_the_events_it_carries(study, client):
    subjects = served_subjects(study)
    bundle, carried = fhir_bundle(study.events[study.events["subject_id"].isin(subjects)])
    read = events_from_bundle(bundle)
    assert len(read.quarantine) == 0, read.summary()
    got = read.events[["subject_id", "time", "code", "numeric_value"]]
    got = got[got["code"] != "GENDER"].sort_values(["subject_id", "time", "code", "numeric_value"])
    want = carried[["subject_id", "time", "code", "numeric_value"]].sort_values(
        ["subject_id", "time", "code", "numeric_value"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_dtype=False, check_exact=True)
    answer = post_bundle(client, bundle)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    entries = [e["resource"] for e in answer.json()["entry"]]
    for resource in entries:
        RiskAssessment.model_validate(resource)
    expected = score_timeline(study.loaded, carried)
    assert [r["subject"]["reference"] for r in entries] == [f"Patient/{s}" for s in subjects]
    assert [r["prediction"][0]["probabilityDecimal"] for r in entries] == [
        round(r, 6) for r in expected["risk"]]
    with sqlite3.connect(study.base / "audit.db") as db:
        action, output = db.execute(
            "SELECT action, output FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert action == "fhir:timeline"
    assert [o["risk"] for o in json.loads(output)] == expected["risk"].tolist()
    # fewer measurements than the MEDS rows: the FHIR risks are those of the carried events
    assert expected["risk"].tolist() != batch_rows(study, subjects)["risk"].tolist()


@pytest.mark.slow
def test_a_fhir_bundle_with_a_bad_observation_is_refused(study, client):
    subject = served_subjects(study)[0]
    bundle, _ = fhir_bundle(study.events[study.events["subject_id"] == subject])
    observation = next(e["resource"] for e in bundle["entry"]
                       if e["resource"]["resourceType"] == "Observation")
    observation["effectiveDateTime"] = "2000-02-30T01:00:00Z"
    answer = post_bundle(client, bundle, model="icu-24h")
    assert answer.status_code == 422
    outcome = OperationOutcome.model_validate(answer.json())
    texts = [issue.diagnostics for issue in outcome.issue]
    assert texts[0].startswith("1 event(s) refused: impossible time")
    assert any(t.endswith(": impossible time") and t.startswith("line ") for t in texts)
    assert "2000-02-30" not in answer.text


@pytest.mark.slow
def test_cli_predict_on_a_meds_folder_gives_the_study_risks(study, tmp_path):
    folder = write_meds(study.events, tmp_path / "meds", "icu-new")
    output = tmp_path / "risks.csv"
    result = CliRunner().invoke(cli_app, ["predict", "--model", str(study.model_dir),
                                          "--input", str(folder), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert f"wrote {STAYS} risk(s)" in result.stdout
    assert "rows in" in result.stderr and "quarantined 0" in result.stderr
    written = pd.read_csv(output)
    assert list(written.columns[:4]) == [*KEY_COLUMNS, "risk"]
    assert written["sample_id"].tolist() == study.batch["sample_id"].tolist()
    assert (written["risk"].to_numpy() == study.batch["risk"].to_numpy()).all()


@pytest.mark.slow
def test_cli_refuses_a_patient_table_for_a_timeline_model(study, tmp_path):
    table = tmp_path / "rows.csv"
    study.table.frame.head(5).drop(columns=["died"]).to_csv(table, index=False)
    result = CliRunner().invoke(cli_app, ["predict", "--model", str(study.model_dir),
                                          "--input", str(table), "--output",
                                          str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert "is a timeline model: --input must hold events" in result.stderr


@pytest.mark.slow
def test_a_tabular_model_refuses_events(study, client, tmp_path):
    subject = served_subjects(study)[0]
    answer = post_events(client, meds_rows(study.events[study.events["subject_id"] == subject]))
    moved = client.post("/v1/models/pima/timeline", json={"events": [
        {"subject_id": 1, "time": None, "code": "Age", "numeric_value": 50}]})
    assert answer.status_code == 200 and moved.status_code == 400
    assert "is not a timeline model" in moved.json()["detail"]
    folder = write_meds(study.events[study.events["subject_id"] == subject], tmp_path / "m", "x")
    result = CliRunner().invoke(cli_app, ["predict", "--model", str(pima_model()), "--input",
                                          str(folder), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert "scores rows of patient data" in result.stderr and "holds events" in result.stderr


# Hand-made events (synthetic): the edge cases of placing index times.
TIMELINE = TimelineSpec.model_validate({"index": {"offset": "6h"}, "observation": "6h",
                                        "windows": ["6h"], "outcome": {"column": "died"}})


def _events() -> pd.DataFrame:
    return screen_events(pd.DataFrame({
        "subject_id": [1, 1, 2, 3],
        "time": ["2000-01-01T00:00", "2000-01-01T02:00", "2000-01-01T00:00", "2000-01-01T01:00"],
        "code": [ICU_ADMISSION, "HR", ICU_ADMISSION, "HR"],
        "numeric_value": [None, 80.0, None, 90.0],
    }), "test", first_line=1).events


def test_samples_need_the_anchor_event():
    with pytest.raises(DataError, match=r"no ICU_ADMISSION event.*1 subject\(s\): 3"):
        prediction_samples(_events(), TIMELINE)
    events = _events()
    two = prediction_samples(events[events["subject_id"] < 3], TIMELINE)
    assert two["sample_id"].tolist() == ["1@6h", "2@6h"]


def test_given_index_times_as_a_mapping_a_series_or_one_time():
    events = _events()
    events = events[events["subject_id"] < 3]
    by_map = prediction_samples(events, TIMELINE, {2: "2000-01-01T03:30", 1: "2000-01-02"})
    assert by_map["sample_id"].tolist() == ["1@24h", "2@3.5h"]
    series = pd.Series([pd.Timestamp("2000-01-02"), pd.Timestamp("2000-01-01 03:30")],
                       index=[1, 2])
    assert prediction_samples(events, TIMELINE, series).equals(by_map)
    now = prediction_samples(events, TIMELINE, "2000-01-01T12:00+02:00")
    assert now["index_time"].astype(str).tolist() == ["2000-01-01 10:00:00"] * 2
    with pytest.raises(DataError, match="before the ICU_ADMISSION event"):
        prediction_samples(events, TIMELINE, {1: "1999-12-31T23:00"})
    with pytest.raises(DataError, match="not an ISO 8601 time"):
        prediction_samples(events, TIMELINE, {1: "tomorrow"})
    with pytest.raises(DataError, match="without events: 1 subject"):
        prediction_samples(events, TIMELINE, {9: "2000-01-01T03:00"})


def test_screening_names_the_lines_of_a_bad_subject_id():
    frame = pd.DataFrame({"subject_id": [1, "x"], "time": [None, None], "code": ["Age", "Age"],
                          "numeric_value": [50.0, 60.0]})
    with pytest.raises(DataError, match=r"whole number \(MEDS\), on line\(s\) 3"):
        screen_events(frame, "stays.csv", TIMELINE)
    static = screen_events(frame.head(1), "stays.csv").events
    assert static["time"].isna().all() and static["numeric_value"].tolist() == [50.0]
