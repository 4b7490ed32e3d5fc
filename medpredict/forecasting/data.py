"""Counts per location and period, read with every rejected row kept in a quarantine.

Each row of the input either becomes one stored count or one quarantined row with a
named reason (missing location, unparseable date, off-grid date (a time of day, or
another weekday than the rest of weekly data), missing value,
unparseable value, negative count, duplicate row); :class:`Counts` refuses to exist
unless the two add up to the rows read. Two rows for the same location and period with
different counts are an error naming both rows: medpredict will not guess which is right.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"location": ["A", "A", "A", "B"],
...                       "date": ["2024-01-06", "2024-01-13", "2024-01-20", "2024-01-13"],
...                       "value": [3, -1, 5, 2]})
>>> counts = counts_from_table(table, CountsSource(path="x.csv", location_name=None))
>>> counts.series.shape, counts.summary.quarantined, counts.summary.reasons
((3, 2), 1, {'negative count': 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError, describe_rows
from medpredict.forecasting.spec import CountsSource, ForecastSpec

# The location of a table without a location column (``data.location: null``).
SINGLE_SERIES = "all"


@dataclass(frozen=True)
class CountsSummary:
    """What reading did: rows in, stored, quarantined by reason, gaps per location."""

    rows_in: int
    stored: int
    quarantined: int
    reasons: dict[str, int]
    missing_periods: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows_in != self.stored + self.quarantined:
            raise DataError(
                f"{self.rows_in} rows read but {self.stored} stored and {self.quarantined} "
                "quarantined: rows were lost"
            )

    def line(self) -> str:
        """One line for the console and the report."""
        reasons = "; ".join(f"{k}: {v}" for k, v in self.reasons.items()) or "none"
        gaps = sum(self.missing_periods.values())
        return (
            f"{self.rows_in} rows read, {self.stored} stored, {self.quarantined} quarantined "
            f"({reasons}); {gaps} location-periods missing"
        )


@dataclass(frozen=True)
class Counts:
    """Counts as a (period end date × location) table; missing periods are NaN."""

    series: pd.DataFrame
    names: dict[str, str]
    quarantine: pd.DataFrame
    summary: CountsSummary

    @property
    def locations(self) -> list[str]:
        return list(self.series.columns)

    def name(self, location: str) -> str:
        return self.names.get(location, location)


def read_counts(spec: ForecastSpec) -> Counts:
    """Read the spec's counts (a file, or a bundled dataset fetched and checksummed)."""
    source = spec.data
    if source.dataset is not None:
        table = read_table(bundled_counts_path(source.dataset))
    else:
        table = read_table(Path(source.path))
    counts = counts_from_table(table, source, spec.period_days)
    if spec.hierarchy is not None and spec.hierarchy.total not in counts.locations:
        raise DataError(
            f"hierarchy.total {spec.hierarchy.total!r} is not a location in the data"
        )
    if spec.locations is not None:
        unknown = sorted(set(spec.locations) - set(counts.locations))
        if unknown:
            raise DataError(
                f"locations {', '.join(unknown)} are not in the data (it has "
                f"{', '.join(counts.locations[:20])}{' ...' if len(counts.locations) > 20 else ''})"
            )
        keep = list(spec.locations)
        if spec.hierarchy is not None and spec.hierarchy.total not in keep:
            keep.append(spec.hierarchy.total)
        counts = Counts(counts.series[keep], counts.names, counts.quarantine, counts.summary)
    return counts


def bundled_counts_path(name: str) -> Path:
    """Path of a bundled count table, downloaded and checked when not on this machine."""
    from medpredict.data.download import fetch
    from medpredict.data.reference import reference_dataset

    if name != "flusight":
        raise DataError(f"unknown count dataset {name!r}; expected 'flusight'")
    dataset = reference_dataset("flusight")
    return fetch([dataset.name], quiet=True)[0]


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as strings-as-read (dates and counts are parsed later)."""
    if not path.exists():
        raise FileNotFoundError(f"count table {path} does not exist")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if path.suffix.lower() in {".csv", ".txt", ".gz"}:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise DataError(f"count table {path}: expected a .csv or .parquet file")


def counts_from_table(table: pd.DataFrame, source: CountsSource, period_days: int = 7) -> Counts:
    """Screen a raw table into :class:`Counts`; every rejected row is quarantined."""
    needed = [c for c in (source.location, source.date, source.value) if c is not None]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(
            f"count table has no column {', '.join(map(repr, missing))} (columns: "
            f"{', '.join(map(str, table.columns))}); set data.location/date/value in the spec "
            "(data.location: null for a single series)"
        )
    if source.location is None:
        location = pd.Series(SINGLE_SERIES, index=table.index, dtype="string")
    else:
        location = table[source.location].astype("string").str.strip()
    rows = pd.DataFrame({
        "row": np.arange(len(table)) + 2,
        "location": location,
        "raw_date": table[source.date].astype("string"),
        "raw_value": table[source.value].astype("string").str.strip(),
    })
    rows["date"] = pd.to_datetime(rows["raw_date"], errors="coerce", format="mixed")
    rows["value"] = pd.to_numeric(rows["raw_value"], errors="coerce")
    reason = pd.Series(pd.NA, index=rows.index, dtype="string")
    blank_value = rows["raw_value"].isna() | rows["raw_value"].isin(["", "NA", "NaN", "nan"])
    _mark(reason, rows["location"].isna() | (rows["location"] == ""), "missing location")
    _mark(reason, rows["date"].isna(), "unparseable date")
    _mark(reason, blank_value, "missing value")
    _mark(reason, rows["value"].isna(), "unparseable value")
    _mark(reason, rows["value"] < 0, "negative count")
    dated = rows["date"].notna()
    _mark(reason, dated & (rows["date"] != rows["date"].dt.normalize()), "off-grid date")
    if period_days > 1:
        weekday = rows.loc[dated, "date"].dt.day_of_week.mode()
        if len(weekday):
            _mark(reason, dated & (rows["date"].dt.day_of_week != weekday.iloc[0]), "off-grid date")
    usable = reason.isna()
    _mark(reason, usable & _duplicates(rows, usable), "duplicate row")
    kept = rows[reason.isna()]
    quarantine = rows.loc[reason.notna(), ["row", "location", "raw_date", "raw_value"]]
    quarantine = quarantine.rename(columns={"raw_date": "date", "raw_value": "value"})
    quarantine["reason"] = reason[reason.notna()]
    series = kept.pivot(index="date", columns="location", values="value").sort_index()
    if len(series):
        grid = pd.date_range(series.index[0], series.index[-1], freq=f"{period_days}D")
        series = series.reindex(grid)
    if int(series.notna().sum().sum()) != len(kept):
        raise DataError("counts were lost when aligning periods to the grid; please report this")
    series.index.name = "date"
    series.columns.name = None
    series = series[sorted(series.columns, key=_location_order)].astype(float)
    names = {}
    if source.location_name and source.location_name in table.columns:
        pairs = pd.DataFrame({"l": rows["location"], "n": table[source.location_name]})
        names = dict(pairs.dropna().drop_duplicates("l").itertuples(index=False, name=None))
    summary = CountsSummary(
        rows_in=len(rows),
        stored=len(kept),
        quarantined=len(quarantine),
        reasons={k: int(v) for k, v in quarantine["reason"].value_counts().items()},
        missing_periods={c: int(n) for c, n in series.isna().sum().items() if n},
    )
    return Counts(series, names, quarantine.reset_index(drop=True), summary)


def _mark(reason: pd.Series, where: pd.Series, text: str) -> None:
    reason[where.fillna(False).astype(bool) & reason.isna()] = text


def _duplicates(rows: pd.DataFrame, usable: pd.Series) -> pd.Series:
    """Repeated location-periods with the same count; conflicting counts are an error."""
    candidates = rows[usable]
    keys = ["location", "date"]
    repeated = candidates[candidates.duplicated(keys, keep=False)]
    conflicts = repeated.groupby(keys)["value"].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        (location, date), _ = next(iter(conflicts.items()))
        clash = repeated[(repeated["location"] == location) & (repeated["date"] == date)]
        raise DataError(
            f"{len(conflicts)} location-periods have conflicting counts, e.g. location "
            f"{location!r} on {date.date()}: {describe_rows(clash['row'].tolist())} give "
            f"{', '.join(str(v) for v in clash['value'])}; keep one row per location and period"
        )
    return candidates.duplicated(keys, keep="first").reindex(rows.index, fill_value=False)


def _location_order(code: str) -> tuple[int, str]:
    return (0, code.zfill(8)) if code.isdigit() else (1, code)
