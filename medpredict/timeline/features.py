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
value, so the result never depends on row order.

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medpredict.optional import require
from medpredict.timeline.events import COLUMNS, STANDARD_CODES, conform
from medpredict.timeline.spec import TimelineSpec, duration

GRID_PREFIX = "seq__"


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
    keyed = pd.DataFrame(
        {
            "sample": np.arange(n, dtype=np.int64),
            "subject_id": samples["subject_id"].to_numpy(dtype=np.int64),
            "index_time": pd.to_datetime(samples["index_time"]).astype("datetime64[us]").to_numpy(),
        }
    )
    timed_events = events.loc[
        events["time"].notna() & events["numeric_value"].notna() & events["code"].isin(timed),
        ["subject_id", "time", "code", "numeric_value"],
    ]
    connection = duckdb.connect()
    try:
        connection.register("samples", keyed)
        connection.register("events", timed_events)
        windows_table = pd.DataFrame({"w": np.arange(len(windows)), "hours": window_h})
        connection.register("windows", windows_table)
        connection.execute(
            f"""
            CREATE TEMP TABLE seen AS
            SELECT s.sample, e.code, CAST(e.numeric_value AS DOUBLE) AS v,
                   date_diff('microsecond', e.time, s.index_time) / 3.6e9 AS age_h
            FROM events e JOIN samples s USING (subject_id)
            WHERE e.time <= s.index_time AND date_diff('microsecond', e.time, s.index_time)
                  < {observation_h * 3.6e9}
            """
        )
        aggregated = connection.execute(
            """
            SELECT sample, code, w, count(*) AS count, arg_min(v, [age_h, -v]) AS last,
                   min(v) AS min, max(v) AS max, avg(v) AS mean, stddev_samp(v) AS std,
                   regr_slope(v, -age_h) AS slope, min(age_h) AS time_since_last
            FROM seen JOIN windows ON age_h < hours GROUP BY sample, code, w
            """
        ).df()
        grid = None
        if timeline.step is not None:
            step_h = duration(timeline.step) / pd.Timedelta(hours=1)
            steps = math.ceil(observation_h / step_h - 1e-9)
            grid = connection.execute(
                f"""
                SELECT sample, code, {steps - 1} - CAST(floor(age_h / {step_h}) AS BIGINT) AS k,
                       arg_min(v, [age_h, -v]) AS v
                FROM seen GROUP BY ALL
                """
            ).df()
    finally:
        connection.close()
    blocks, kinds = [], {}
    statics = _static_columns(events, keyed, static)
    blocks.append(statics)
    kinds |= {c: ("numeric" if pd.api.types.is_numeric_dtype(statics[c]) else "categorical")
              for c in statics.columns}
    aggregate_block = _aggregate_columns(aggregated, n, timed, windows, timeline.aggregates)
    blocks.append(aggregate_block)
    kinds |= dict.fromkeys(aggregate_block.columns, "numeric")
    if grid is not None:
        grid_block = _grid_columns(grid, n, timed, steps)
        blocks.append(grid_block)
        kinds |= dict.fromkeys(grid_block.columns, "sequence")
    return Features(pd.concat(blocks, axis=1), kinds)


def _static_columns(events, keyed, static: Sequence[str]) -> pd.DataFrame:
    rows = events.loc[events["time"].isna() & events["code"].isin(static)]
    rows = rows.drop_duplicates(["subject_id", "code"], keep="first")
    out = {}
    for code in static:
        of_code = rows[rows["code"] == code].set_index("subject_id")
        numeric = of_code["numeric_value"].notna().all() and len(of_code)
        values = of_code["numeric_value"].astype("float64") if numeric else of_code["text_value"]
        column = keyed["subject_id"].map(values)
        out[code] = column.astype("float64") if numeric else column.astype(object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(keyed)))


def _aggregate_columns(aggregated, n, codes, windows, aggregates) -> pd.DataFrame:
    code_index = {c: i for i, c in enumerate(codes)}
    shape = (n, len(codes), len(windows))
    columns, names = [], []
    rows = aggregated["sample"].to_numpy()
    cs = aggregated["code"].map(code_index).to_numpy()
    ws = aggregated["w"].to_numpy()
    for agg in aggregates:
        values = np.zeros(shape, dtype=np.float32) if agg == "count" else np.full(
            shape, np.nan, dtype=np.float32
        )
        values[rows, cs, ws] = aggregated[agg].to_numpy(dtype=np.float64)
        columns.append(values)
    stacked = np.stack(columns, axis=-1).reshape(n, -1)
    names = [
        f"{code}__{agg}__{window}" for code in codes for window in windows for agg in aggregates
    ]
    return pd.DataFrame(stacked, columns=names)


def _grid_columns(grid, n, codes, steps) -> pd.DataFrame:
    code_index = {c: i for i, c in enumerate(codes)}
    values = np.full((n, len(codes), steps), np.nan, dtype=np.float32)
    values[grid["sample"].to_numpy(), grid["code"].map(code_index).to_numpy(),
           grid["k"].to_numpy()] = grid["v"].to_numpy(dtype=np.float64)
    names = [grid_column(code, k) for code in codes for k in range(steps)]
    return pd.DataFrame(values.reshape(n, -1), columns=names)
