"""The one event model: a long table of patient events in the MEDS layout.

Every timeline reader produces, and every cohort and featuriser consumes, a pandas
DataFrame with the columns of the Medical Event Data Standard (MEDS) data schema:

=================  =====================  ===============================================
column             dtype                  meaning
=================  =====================  ===============================================
``subject_id``     int64                  the patient (or, for challenge data, the stay)
``time``           datetime64[us]         when it happened; NaT for static measurements
``code``           string                 what happened (``HR``, ``LAB//50912``, ...)
``numeric_value``  float32                its value, NaN when it has none
``text_value``     string                 a text value, when the event has one
``unit``           string                 the unit as recorded (an extra MEDS column)
=================  =====================  ===============================================

Readers write standard codes for the moments cohorts are defined from
(:data:`BIRTH`, :data:`DEATH`, :data:`ICU_ADMISSION`, ...). :func:`write_meds` stores a
MEDS dataset (``data/*.parquet`` plus ``metadata/dataset.json`` and
``metadata/codes.parquet``) that MEDS tools read; :func:`read_meds` reads one back and
checks its schema.

Examples
--------
>>> import pandas as pd
>>> events = conform(pd.DataFrame({
...     "subject_id": [1, 1], "time": ["2020-01-01 08:00", "2020-01-01 09:30"],
...     "code": ["HR", "HR"], "numeric_value": [72.0, 80.0]}))
>>> [str(t) for t in events.dtypes]
['int64', 'datetime64[us]', 'string', 'float32', 'string', 'string']
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.optional import require

BIRTH = "MEDS_BIRTH"
DEATH = "MEDS_DEATH"
HOSPITAL_ADMISSION = "HOSPITAL_ADMISSION"
HOSPITAL_DISCHARGE = "HOSPITAL_DISCHARGE"
ICU_ADMISSION = "ICU_ADMISSION"
ICU_DISCHARGE = "ICU_DISCHARGE"
STANDARD_CODES = (
    BIRTH,
    DEATH,
    HOSPITAL_ADMISSION,
    HOSPITAL_DISCHARGE,
    ICU_ADMISSION,
    ICU_DISCHARGE,
)
"""Codes that readers write for the moments a cohort is defined from."""

COLUMNS = ("subject_id", "time", "code", "numeric_value", "text_value", "unit")
REQUIRED = ("subject_id", "time", "code")
_DTYPES = {
    "subject_id": "int64",
    "time": "datetime64[us]",
    "code": "string",
    "numeric_value": "float32",
    "text_value": "string",
    "unit": "string",
}


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in COLUMNS})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the canonical columns in order and dtypes; optional columns added.

    Raises
    ------
    DataError
        A required column is missing, or a value cannot take the column's type (the
        message names the column).
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"event table lacks column(s) {', '.join(missing)}; expected the MEDS columns "
            f"{', '.join(COLUMNS)}"
        )
    out = {}
    for column in COLUMNS:
        values = frame[column] if column in frame.columns else pd.Series(
            pd.NA, index=frame.index, dtype=_DTYPES[column]
        )
        try:
            if column == "time":
                values = pd.to_datetime(values).astype("datetime64[us]")
            else:
                values = values.astype(_DTYPES[column])
        except (TypeError, ValueError) as err:
            raise DataError(
                f"event column {column!r} cannot be read as {_DTYPES[column]}: {err}"
            ) from None
        out[column] = values.reset_index(drop=True)
    return pd.DataFrame(out)


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events ordered by subject, then time (static measurements first), then code."""
    order = np.lexsort(
        (
            events["code"].to_numpy(dtype=object),
            events["time"].to_numpy(dtype="datetime64[us]").astype(np.int64),
            events["time"].notna().to_numpy(),
            events["subject_id"].to_numpy(),
        )
    )
    return events.iloc[order].reset_index(drop=True)


def write_meds(
    events: pd.DataFrame, folder: str | Path, name: str, shard_rows: int = 5_000_000
) -> Path:
    """Store ``events`` as a MEDS dataset in ``folder``; return the folder.

    Subjects are never split across shards (``data/0.parquet``, ``data/1.parquet``, ...).
    ``metadata/codes.parquet`` lists every code with its event count and
    ``metadata/dataset.json`` names the dataset and the MEDS version.
    """
    meds = require("meds", extra="timeline")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    data = folder / meds.data_subdirectory
    data.mkdir(parents=True, exist_ok=True)
    (folder / meds.code_metadata_filepath).parent.mkdir(parents=True, exist_ok=True)
    events = sort_events(conform(events))
    subjects = events["subject_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, subjects[1:] != subjects[:-1]])
    cuts = [0]
    for start in starts:
        if start - cuts[-1] >= shard_rows:
            cuts.append(int(start))
    cuts.append(len(events))
    for shard, (low, high) in enumerate(pairwise(cuts)):
        table = pa.Table.from_pandas(events.iloc[low:high], preserve_index=False)
        pq.write_table(meds.DataSchema.align(table), data / f"{shard}.parquet")
    codes = events.groupby("code", observed=True).size().rename("count").reset_index()
    codes["description"] = ""
    codes["parent_codes"] = [[] for _ in range(len(codes))]
    pq.write_table(
        pa.Table.from_pandas(codes[["code", "description", "parent_codes"]], preserve_index=False),
        folder / meds.code_metadata_filepath,
    )
    (folder / meds.dataset_metadata_filepath).write_text(
        json.dumps(
            {
                "dataset_name": name,
                "etl_name": "medpredict",
                "meds_version": _meds_version(meds),
                "created_at": pd.Timestamp.now("UTC").isoformat(),
            },
            indent=2,
        )
    )
    return folder


def read_meds(path: str | Path) -> pd.DataFrame:
    """Read a MEDS dataset folder (or one of its Parquet shards) as an event table.

    Raises
    ------
    DataError
        The path holds no MEDS data, or a shard does not follow the MEDS data schema.
    """
    meds = require("meds", extra="timeline")
    import pyarrow.parquet as pq

    path = Path(path)
    shards = sorted((path / meds.data_subdirectory).glob("*.parquet")) if path.is_dir() else [path]
    if not shards or not all(s.is_file() for s in shards):
        raise DataError(f"{path} holds no MEDS data: expected data/*.parquet shards")
    frames = []
    for shard in shards:
        table = pq.read_table(shard)
        try:
            meds.DataSchema.validate(table)
        except Exception as err:  # the meds package raises several kinds of schema error
            raise DataError(f"{shard} does not follow the MEDS data schema: {err}") from None
        frames.append(table.to_pandas())
    return conform(pd.concat(frames, ignore_index=True))


def _meds_version(meds: object) -> str:
    from importlib.metadata import version

    return version("meds")
