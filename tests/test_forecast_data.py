"""Reading counts: every row stored or quarantined with a reason, and the spec's checks.

Most tables here are small synthetic ones built for one edge case each; the last tests
read the real FluSight file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medpredict.data.errors import DataError, SpecError
from medpredict.forecasting.data import CountsSummary, counts_from_table, read_counts
from medpredict.forecasting.spec import CountsSource, ForecastSpec, load_forecast_spec

SOURCE = CountsSource(path="counts.csv", location_name=None)


def _table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["location", "date", "value"])


def _reasons(rows: list[tuple[str, str, str]], period_days: int = 7) -> dict[str, int]:
    counts = counts_from_table(_table(rows), SOURCE, period_days)
    assert counts.summary.rows_in == counts.summary.stored + counts.summary.quarantined
    return counts.summary.reasons


GOOD = [("A", "2024-01-06", "3"), ("A", "2024-01-13", "4"), ("B", "2024-01-06", "1")]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("A", "2024-01-20", "-2"), "negative count"),
        (("A", "not a date", "2"), "unparseable date"),
        (("A", "2024-02-30", "2"), "unparseable date"),
        (("A", "2024-01-17", "2"), "off-grid date"),  # a Wednesday among Saturdays
        (("A", "2024-01-20 13:00", "2"), "off-grid date"),
        (("A", "2024-01-20", ""), "missing value"),
        (("A", "2024-01-20", "NA"), "missing value"),
        (("A", "2024-01-20", "many"), "unparseable value"),
        (("", "2024-01-20", "2"), "missing location"),
        (("A", "2024-01-13", "4"), "duplicate row"),
    ],
)
def test_each_bad_row_is_quarantined_with_its_reason(row, reason):
    assert _reasons([*GOOD, row]) == {reason: 1}


def test_quarantine_keeps_the_file_row_and_raw_text():
    counts = counts_from_table(_table([*GOOD, ("B", "2024-01-13", "-5")]), SOURCE)
    row = counts.quarantine.iloc[0]
    assert (row["row"], row["location"], row["date"], row["value"]) == (5, "B", "2024-01-13", "-5")
    assert np.isnan(counts.series.loc["2024-01-13", "B"])


def test_conflicting_duplicates_name_both_rows_and_the_location():
    with pytest.raises(DataError, match=r"location 'A' on 2024-01-13: rows 3, 5 give 4, 9;"):
        counts_from_table(_table([*GOOD, ("A", "2024-01-13", "9")]), SOURCE)


def test_a_missing_column_is_named_with_the_columns_present():
    table = _table(GOOD).rename(columns={"value": "admissions"})
    expected = r"no column 'value' \(columns: location, date, admissions\)"
    with pytest.raises(DataError, match=expected):
        counts_from_table(table, SOURCE)


def test_missing_periods_become_nan_and_are_counted():
    counts = counts_from_table(_table([("A", "2024-01-06", "3"), ("A", "2024-01-27", "5")]), SOURCE)
    assert counts.series["A"].tolist()[0] == 3.0
    assert counts.series["A"].isna().sum() == 2
    assert counts.summary.missing_periods == {"A": 2}


def test_single_series_daily_counts_from_parquet(tmp_path):
    days = pd.date_range("2025-01-01", periods=40, freq="D")
    frame = pd.DataFrame({"day": days, "admitted": np.arange(40)})
    frame.to_parquet(tmp_path / "ward.parquet")
    spec = ForecastSpec.model_validate({
        "name": "ward", "period": "day",
        "data": {"path": str(tmp_path / "ward.parquet"), "location": None, "date": "day",
                 "value": "admitted", "location_name": None}})
    counts = read_counts(spec)
    assert counts.locations == ["all"]
    assert counts.series.shape == (40, 1)
    assert counts.series["all"].iloc[-1] == 39


def test_counts_summary_refuses_lost_rows():
    with pytest.raises(DataError, match="rows were lost"):
        CountsSummary(rows_in=10, stored=8, quarantined=1, reasons={})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantiles": [0.1, 0.5, 0.8]}, "symmetric"),
        ({"quantiles": [0.5, 0.25, 0.75]}, "increasing"),
        ({"horizons": [0, -1]}, "non-negative"),
        ({"horizons": [1, 1]}, "distinct"),
        ({"horizon": [1]}, "Extra inputs"),
        ({"evaluation": {"seasons": [{"name": "x", "start": "2024-05-01",
                                      "end": "2024-01-01"}]}}, "ends before it starts"),
    ],
)
def test_spec_errors_name_the_field(tmp_path, change, message):
    raw = {"name": "flu", "data": {"path": "counts.csv"}, **change}
    path = tmp_path / "spec.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message):
        load_forecast_spec(path)


def test_spec_resolves_the_data_path_beside_the_spec(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: flu\ndata: {path: counts.csv}\n")
    assert load_forecast_spec(tmp_path / "spec.yaml").data.path == tmp_path / "counts.csv"


@pytest.fixture(scope="module")
def flusight():
    return read_counts(ForecastSpec.model_validate(
        {"name": "flu", "data": {"dataset": "flusight"}, "hierarchy": {"total": "US"}}))


def test_flusight_reads_every_row_and_quarantines_the_missing_weeks(flusight):
    summary = flusight.summary
    assert flusight.series.shape == (230, 53)
    assert (summary.rows_in, summary.stored, summary.reasons) == (
        12190, 12154, {"missing value": 36})
    assert summary.missing_periods == {"25": 17, "27": 14, "54": 5}
    assert flusight.name("06") == "California"
    states = flusight.series.drop(columns="US").sum(axis=1)
    assert (flusight.series["US"] - states).abs().max() <= 75  # the file's own rounding


def test_a_locations_filter_keeps_the_total_and_names_unknown_codes():
    spec = {"name": "flu", "data": {"dataset": "flusight"}, "hierarchy": {"total": "US"}}
    counts = read_counts(ForecastSpec.model_validate({**spec, "locations": ["06", "36"]}))
    assert counts.locations == ["06", "36", "US"]
    with pytest.raises(DataError, match="locations 99 are not in the data"):
        read_counts(ForecastSpec.model_validate({**spec, "locations": ["06", "99"]}))
    with pytest.raises(DataError, match=r"hierarchy\.total 'XX'"):
        read_counts(ForecastSpec.model_validate({**spec, "hierarchy": {"total": "XX"}}))
