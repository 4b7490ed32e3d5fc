"""From events to one row of features per sample, reading only events up to its index time.

:func:`tabularise` is the one featurisation of a timeline: the study table, external
validation, ``medpredict predict`` and the prediction service all call it, so a model sees
the same features in training and in use. For each sample (a subject at an index time) it
reads the subject's timed events with ``index_time - observation < time <= index_time``
— no event after the index time can reach a feature — and computes:

- per code and look-back window, the aggregates ``count`` (0 when never measured: the
  absence of a measurement is information), ``last``, ``min``, ``max``, ``mean``, ``std``,
  ``slope`` (per hour) and ``time_since_last`` (hours), named ``{code}__{agg}__{window}``;
- per code, a regular grid for the sequence models: the last value in each step of the
  observation window, ``seq__{code}__t{k:03d}`` (k = 0 oldest; NaN = not measured);
- static measurements (events without a time: age, sex, ...) as one column per code.

The aggregation runs in DuckDB over the whole event table at once; nothing loops over
rows in Python. Ties (two values of one code at the same time) resolve to the larger
value, so the result never depends on row order or on DuckDB's threads.

Examples
--------
>>> import pandas as pd
>>> from medpredict.timeline.spec import TimelineSpec
>>> events = pd.DataFrame({
...     "subject_id": [1, 1, 1, 1], "code": ["Age", "HR", "HR", "HR"],
...     "time": [None, "2000-01-01 01:00", "2000-01-01 02:00", "2000-01-01 05:00"],
...     "numeric_value": [70.0, 80.0, 90.0, 200.0]})
>>> samples = pd.DataFrame({"subject_id": [1], "index_time": [pd.Timestamp("2000-01-01 03:00")]})
>>> spec = TimelineSpec.model_validate({"outcome": {"column": "died"}, "observation": "3h",
...     "windows": ["3h"], "aggregates": ["count", "last", "slope"], "step": "1h"})
>>> table = tabularise(events, samples, spec)
>>> table.features.loc[0, ["Age", "HR__count__3h", "HR__last__3h", "HR__slope__3h"]].tolist()
[70.0, 2.0, 90.0, 10.0]
>>> table.features.loc[0, ["seq__HR__t000", "seq__HR__t001", "seq__HR__t002"]].tolist()
[80.0, 90.0, nan]
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medpredict.optional import require
from medpredict.timeline.events import COLUMNS, STANDARD_CODES, conform
from medpredict.timeline.spec import TimelineSpec, duration

GRID_PREFIX = "seq__"
_DUCKDB_CONFIG = {"threads": 2, "memory_limit": "1GB", "preserve_insertion_order": False}
"""Featurisation stays within about 1 GB of DuckDB memory, spilling to disk beyond."""


@dataclass
class Features:
    """Features of each sample (rows in sample order) and each column's kind."""

    features: pd.DataFrame
    kinds: dict[str, str]


def grid_column(code: str, step: int) -> str:
    """The grid column of ``code`` at step ``step`` (0 = oldest)."""
    return f"{GRID_PREFIX}{code}__t{step:03d}"


def feature_codes(events: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The timed and the static codes of ``events`` that can become features, sorted."""
    codes = events[~events["code"].isin(STANDARD_CODES)]
    static = codes["time"].isna()
    timed = sorted(codes.loc[~static & codes["numeric_value"].notna(), "code"].unique())
    return [str(c) for c in timed], [str(c) for c in sorted(codes.loc[static, "code"].unique())]


def tabularise(
    events: pd.DataFrame,
    samples: pd.DataFrame,
    timeline: TimelineSpec,
    timed_codes: Sequence[str] | None = None,
    static_codes: Sequence[str] | None = None,
) -> Features:
    """Features of ``samples`` (``subject_id``, ``index_time``) from ``events``.

    Parameters
    ----------
    events : DataFrame
        Events in the MEDS layout (:mod:`medpredict.timeline.events`).
    samples : DataFrame
        One row per sample: ``subject_id`` and ``index_time``.
    timeline : TimelineSpec
        Observation window, windows, aggregates and grid step.
    timed_codes, static_codes : sequences of str, optional
        The codes that become columns (default: those in ``events``, see
        :func:`feature_codes`). Pass the development data's codes when featurising new
        samples, so the columns are the same.

    Returns
    -------
    Features
        ``features`` with one row per sample (same order) and ``kinds`` (``numeric``,
        ``categorical`` or ``sequence``) of every column.
    """
    duckdb = require("duckdb", extra="timeline")
    if list(events.columns) != list(COLUMNS):
        events = conform(events)
    found_timed, found_static = feature_codes(events)
    timed = list(timed_codes) if timed_codes is not None else found_timed
    static = list(static_codes) if static_codes is not None else found_static
    if timeline.codes is not None:
        timed = [c for c in timed if c in set(timeline.codes)]
    n = len(samples)
    observation_h = duration(timeline.observation) / pd.Timedelta(hours=1)
    windows = sorted(timeline.windows, key=duration)
    window_h = [duration(w) / pd.Timedelta(hours=1) for w in windows]
    steps = 0
    if timeline.step is not None:
        step_h = duration(timeline.step) / pd.Timedelta(hours=1)
        steps = math.ceil(observation_h / step_h - 1e-9)
    layout = _Layout(list(static), timed, windows, list(timeline.aggregates), steps)
    keyed = pd.DataFrame(
        {
            "sample": np.arange(n, dtype=np.int64),
            "subject_id": samples["subject_id"].to_numpy(dtype=np.int64),
            "index_time": pd.to_datetime(samples["index_time"]).astype("datetime64[us]").to_numpy(),
        }
    )
    numeric, texts = _static_values(events, keyed, layout.static)
    layout.numeric_static = list(numeric)
    matrix = np.full((n, len(layout.names)), np.nan, dtype=np.float32)
    matrix[:, layout.count_columns()] = 0.0
    for column, values in enumerate(numeric.values()):
        matrix[:, column] = values
    connection = duckdb.connect(config=_DUCKDB_CONFIG)
    try:
        connection.execute(f"SET temp_directory = '{tempfile.gettempdir()}/medpredict-duckdb'")
        connection.register("samples", keyed)
        connection.register("events", events[["subject_id", "time", "code", "numeric_value"]])
        connection.register("codes", pd.DataFrame({"code": timed, "c": np.arange(len(timed))}))
        windows_table = pd.DataFrame({"w": np.arange(len(windows)), "hours": window_h})
        connection.register("windows", windows_table)
        connection.execute(
            f"""
            CREATE TEMP TABLE seen AS
            SELECT CAST(s.sample AS INTEGER) AS sample, CAST(c.c AS SMALLINT) AS c,
                   CAST(e.numeric_value AS FLOAT) AS v,
                   date_diff('microsecond', e.time, s.index_time) / 3.6e9 AS age
            FROM events e JOIN samples s USING (subject_id) JOIN codes c USING (code)
            WHERE e.numeric_value IS NOT NULL AND e.time <= s.index_time
              AND date_diff('microsecond', e.time, s.index_time) < {observation_h * 3.6e9}
            """
        )
        aggregated = connection.execute(
            """
            SELECT sample, c, CAST(w AS SMALLINT) AS w, CAST(count(*) AS FLOAT) AS count,
                   min(v) AS min, max(v) AS max, CAST(avg(v) AS FLOAT) AS mean,
                   CAST(stddev_samp(v) AS FLOAT) AS std,
                   CAST(regr_slope(v, -age) AS FLOAT) AS slope,
                   CAST(min(age) AS FLOAT) AS time_since_last
            FROM seen JOIN windows ON age < hours GROUP BY ALL
            """
        ).fetchnumpy()
        rows, cs, ws = aggregated["sample"], aggregated["c"], aggregated["w"]
        for a, agg in enumerate(layout.aggregates):
            if agg != "last":
                matrix[rows, layout.aggregate_column(cs, ws, a)] = aggregated[agg]
        del aggregated
        if "last" in layout.aggregates:
            latest = connection.execute(_latest("seen", ["sample", "c"])).fetchnumpy()
            a = layout.aggregates.index("last")
            for w, hours in enumerate(window_h):
                inside = latest["age"] < hours
                matrix[latest["sample"][inside],
                       layout.aggregate_column(latest["c"][inside], w, a)] = latest["v"][inside]
            del latest
        if steps:
            connection.execute(
                f"""
                CREATE TEMP TABLE binned AS
                SELECT sample, c, CAST({steps - 1} - floor(age / {step_h}) AS SMALLINT) AS k,
                       v, age FROM seen
                """
            )
            grid = connection.execute(_latest("binned", ["sample", "c", "k"])).fetchnumpy()
            matrix[grid["sample"], layout.grid_column(grid["c"], grid["k"])] = grid["v"]
            del grid
    finally:
        connection.close()
    features = pd.DataFrame(matrix, columns=layout.names, copy=False)
    for code, values in texts.items():
        features[code] = values
    features = features[[*static, *layout.names[len(layout.numeric_static):]]]
    return Features(features, layout.kinds(texts))


def _latest(table: str, keys: list[str]) -> str:
    """SQL: per ``keys``, the most recent value (the larger one when two share a time)."""
    on = ", ".join(keys)
    return f"""
        WITH recent AS (SELECT {on}, min(age) AS age FROM {table} GROUP BY {on})
        SELECT {on}, max(t.v) AS v, min(t.age) AS age
        FROM {table} t JOIN recent r USING ({on}, age) GROUP BY {on}
    """


@dataclass
class _Layout:
    """Where each feature sits in the float32 matrix: numeric statics, aggregates, grid."""

    static: list[str]
    codes: list[str]
    windows: list[str]
    aggregates: list[str]
    steps: int
    numeric_static: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        aggregate = [
            f"{code}__{agg}__{window}"
            for code in self.codes
            for window in self.windows
            for agg in self.aggregates
        ]
        grid = [grid_column(code, k) for code in self.codes for k in range(self.steps)]
        return [*self.numeric_static, *aggregate, *grid]

    def aggregate_column(self, code: np.ndarray, window: np.ndarray, agg: int) -> np.ndarray:
        start = len(self.numeric_static)
        return start + (code * len(self.windows) + window) * len(self.aggregates) + agg

    def grid_column(self, code: np.ndarray, step: np.ndarray) -> np.ndarray:
        start = len(self.numeric_static) + len(self.codes) * len(self.windows) * len(
            self.aggregates
        )
        return start + code * self.steps + step

    def count_columns(self) -> np.ndarray:
        if "count" not in self.aggregates:
            return np.array([], dtype=int)
        codes, windows = np.meshgrid(
            np.arange(len(self.codes)), np.arange(len(self.windows)), indexing="ij"
        )
        return self.aggregate_column(codes.ravel(), windows.ravel(), self.aggregates.index("count"))

    def kinds(self, texts: dict[str, Any]) -> dict[str, str]:
        kinds = dict.fromkeys(self.numeric_static, "numeric") | dict.fromkeys(texts, "categorical")
        kinds = {c: kinds[c] for c in self.static}
        aggregate_end = len(self.numeric_static) + len(self.codes) * len(self.windows) * len(
            self.aggregates
        )
        names = self.names
        kinds |= dict.fromkeys(names[len(self.numeric_static):aggregate_end], "numeric")
        kinds |= dict.fromkeys(names[aggregate_end:], "sequence")
        return kinds


def _static_values(events, keyed, static: Sequence[str]) -> tuple[dict, dict]:
    """Per static code, each sample's value: numeric codes as floats, others as text."""
    rows = events.loc[events["time"].isna() & events["code"].isin(static)]
    rows = rows.drop_duplicates(["subject_id", "code"], keep="first")
    numeric, texts = {}, {}
    for code in static:
        of_code = rows[rows["code"] == code].set_index("subject_id")
        if len(of_code) and of_code["numeric_value"].notna().all():
            values = keyed["subject_id"].map(of_code["numeric_value"].astype("float64"))
            numeric[code] = values.to_numpy(dtype=np.float64)
        else:
            values = keyed["subject_id"].map(of_code["text_value"].astype(object))
            texts[code] = values.to_numpy(dtype=object)
    return numeric, texts
