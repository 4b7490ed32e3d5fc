"""Reading counts: every row stored or quarantined with a reason, and the spec's checks.

Most tables here are small synthetic ones built for one edge case each; the last tests
read the real FluSight file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

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


def test_every_row_is_stored_or_quarantined_exactly_once():
    """Synthetic: 300 rows of three locations with every kind of defect mixed in at random."""
    rng = np.random.default_rng(7)
    dates = pd.date_range("2023-01-07", periods=100, freq="7D").strftime("%Y-%m-%d")
    rows = [(loc, d, str(rng.poisson(20))) for loc in "ABC" for d in dates]
    # (column, text): a blank location, an impossible date, a Wednesday, three bad counts
    defects = [(0, ""), (1, "2023-02-30"), (1, "2023-01-11"), (2, "-1"), (2, ""), (2, "n/a")]
    for k, i in enumerate(rng.choice(np.arange(5, len(rows)), 60, replace=False)):
        column, text = defects[k % len(defects)]
        rows[i] = tuple(text if c == column else v for c, v in enumerate(rows[i]))
    rows += rows[:5]  # identical repeats of clean rows
    counts = counts_from_table(_table(rows), SOURCE)
    summary = counts.summary
    assert summary.rows_in == len(rows) == summary.stored + summary.quarantined
    assert summary.stored == int(counts.series.notna().sum().sum())
    assert sum(summary.reasons.values()) == summary.quarantined == len(counts.quarantine)
    assert counts.quarantine["row"].is_unique
    kinds = ["missing location", "unparseable date", "off-grid date", "negative count",
             "missing value", "unparseable value"]
    assert summary.reasons == {**dict.fromkeys(kinds, 10), "duplicate row": 5}


def test_weekly_parquet_with_typed_columns(tmp_path):
    """Synthetic Parquet file: real dates, integer locations, a null and a negative count."""
    dates = pd.date_range("2024-01-06", periods=6, freq="7D")
    frame = pd.DataFrame({
        "location": np.repeat([6, 36], 6), "date": np.tile(dates, 2),
        "value": pd.array([5, 6, None, 8, 9, 10, 1, 2, 3, -4, 5, 6], dtype="Int64")})
    frame.to_parquet(tmp_path / "counts.parquet")
    spec = ForecastSpec.model_validate({
        "name": "pq", "data": {"path": str(tmp_path / "counts.parquet"), "location_name": None}})
    counts = read_counts(spec)
    assert counts.locations == ["6", "36"]
    assert counts.series.index.equals(pd.DatetimeIndex(dates, name="date"))
    assert counts.summary.reasons == {"missing value": 1, "negative count": 1}
    np.testing.assert_array_equal(counts.series["6"], [5, 6, np.nan, 8, 9, 10])
    np.testing.assert_array_equal(counts.series["36"], [1, 2, 3, np.nan, 5, 6])


def test_daily_counts_keep_every_weekday_and_reindex_missing_days():
    """Synthetic daily table: seven weekdays, one day absent, one row with a time of day."""
    rows = [("W", d.strftime("%Y-%m-%d"), "4")
            for d in pd.date_range("2025-03-01", periods=10, freq="D") if d.day != 5]
    rows.append(("W", "2025-03-05 08:30", "3"))
    counts = counts_from_table(_table(rows), SOURCE, period_days=1)
    assert counts.series.shape == (10, 1)
    assert counts.summary.reasons == {"off-grid date": 1}
    assert counts.summary.missing_periods == {"W": 1}
    assert np.isnan(counts.series.loc["2025-03-05", "W"])


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
        ({"quantiles": [0.1, 0.5, 0.8]}, "quantiles: .*symmetric"),
        ({"quantiles": [0.5, 0.25, 0.75]}, "quantiles: .*increasing"),
        ({"horizons": [0, -1]}, "horizons: .*non-negative"),
        ({"horizons": [1, 1]}, "horizons: .*distinct"),
        ({"horizon": [1]}, "horizon: Extra inputs are not permitted"),
        ({"data": {"path": "counts.csv", "dataset": "flusight"}}, "data: .*exactly one of"),
        ({"period": "month"}, "period: Input should be 'week' or 'day'"),
        ({"evaluation": {"seasons": [{"name": "x", "start": "2024-05-01",
                                      "end": "2024-01-01"}]}},
         "evaluation.seasons.0: .*season 'x' ends before it starts"),
    ],
)
def test_spec_errors_name_the_field(tmp_path, change, message):
    raw = {"name": "flu", "data": {"path": "counts.csv"}, **change}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message):
        load_forecast_spec(path)


def test_spec_error_names_every_bad_field_and_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: flu\ndata: {path: c.csv}\nhorizons: [-1]\nevaluation: {bootstrap: -5}\n")
    with pytest.raises(SpecError) as err:
        load_forecast_spec(path)
    assert str(err.value).startswith(f"{path}: horizons: ")
    assert "; evaluation.bootstrap: Input should be greater than or equal to 0" in str(err.value)
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_forecast_spec(path)
    path.write_text("- flusight_baseline\n")
    with pytest.raises(SpecError, match="a mapping of fields"):
        load_forecast_spec(path)


def test_spec_resolves_the_data_path_beside_the_spec(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "spec.yaml").write_text(
        "name: flu\ndata: {path: ../data/counts.csv}\nhorizons: [3, 0, 1]\n")
    spec = load_forecast_spec(folder / "spec.yaml")
    assert spec.data.path == (tmp_path / "data" / "counts.csv").resolve()
    assert spec.data.path.is_absolute()
    assert spec.horizons == [0, 1, 3] and spec.steps() == [1, 2, 4]
    absolute = tmp_path / "elsewhere.csv"
    (folder / "other.yaml").write_text(f"name: flu\ndata: {{path: {absolute}}}\n")
    assert load_forecast_spec(folder / "other.yaml").data.path == absolute


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
    quarantine = flusight.quarantine
    assert set(quarantine["reason"]) == {"missing value"}
    assert quarantine["location"].value_counts().to_dict() == {"25": 17, "27": 14, "54": 5}
    assert flusight.series.index[0] == pd.Timestamp("2022-02-05")
    assert flusight.series.index[-1] == pd.Timestamp("2026-06-27")
    assert (flusight.series.index.day_of_week == 5).all()  # Saturdays, FluSight's week ends
    assert flusight.name("06") == "California"
    states = flusight.series.drop(columns="US").sum(axis=1)
    assert (flusight.series["US"] - states).abs().max() <= 75  # the file's own rounding


def test_a_locations_filter_keeps_the_total_and_names_unknown_codes(flusight):
    spec = {"name": "flu", "data": {"dataset": "flusight"}, "hierarchy": {"total": "US"}}
    counts = read_counts(ForecastSpec.model_validate({**spec, "locations": ["06", "36"]}))
    assert counts.locations == ["06", "36", "US"]
    pd.testing.assert_frame_equal(counts.series, flusight.series[["06", "36", "US"]])
    alone = read_counts(ForecastSpec.model_validate(
        {"name": "flu", "data": {"dataset": "flusight"}, "locations": ["48"]}))
    assert alone.locations == ["48"]
    with pytest.raises(DataError, match="locations 99 are not in the data"):
        read_counts(ForecastSpec.model_validate({**spec, "locations": ["06", "99"]}))
    for locations in (None, ["06"]):
        with pytest.raises(DataError, match=r"hierarchy\.total 'XX' is not a location"):
            read_counts(ForecastSpec.model_validate(
                {**spec, "locations": locations, "hierarchy": {"total": "XX"}}))
