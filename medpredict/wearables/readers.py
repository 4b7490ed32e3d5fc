"""Turn wearable exports into long-form readings (``person, signal, time, value, row``).

Supported inputs
----------------
* **Long CSV**: columns ``person``, ``signal``, ``time``, ``value``.
* **Fitbit-style stream CSV** (minute or second resolution, optionally ``.zip``/``.gz``):
  a time column (``datetime``, ``time``, ``timestamp``, ``date``) and one value column
  named after the signal (``heartrate``, ``heart_rate``, ``bpm``, ``steps``, ``spo2``, ...).
  The person comes from a ``user``/``person``/``id`` column, else from the file name
  before the first underscore (``A0NVTRV_hr.csv.zip`` -> ``A0NVTRV``).
* **Welltory export** folder (``participants.csv``, ``wearables.csv``, ``sleep.csv``,
  ``blood_pressure.csv``, ``hrv_measurements.csv``).

Every reader keeps the 1-based source ``row`` so quarantined rows can be found in the file.
In wide daily files an empty cell means "not measured" and yields no reading.

Examples
--------
>>> import pandas as pd, io
>>> text = "datetime,heartrate\\n2020-03-10 00:00:06,83\\n2020-03-10 00:00:11,0\\n"
>>> read_stream_csv(io.StringIO(text), person="p1").to_dict("list")["signal"]
['heart_rate', 'heart_rate']
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from medpredict.data.checks import check_columns_present
from medpredict.data.errors import DataError

TIME_COLUMNS = ("datetime", "time", "timestamp", "date_time", "date", "start_time")
PERSON_COLUMNS = ("person", "user", "user_id", "user_code", "id", "participant")
VALUE_ALIASES = {
    "heartrate": "heart_rate",
    "heart_rate": "heart_rate",
    "hr": "heart_rate",
    "bpm": "heart_rate",
    "steps": "steps",
    "step": "steps",
    "st": "steps",
    "spo2": "spo2",
    "oxygen_saturation": "spo2",
    "temperature": "temperature",
    "skin_temperature": "temperature",
    "systolic": "systolic",
    "diastolic": "diastolic",
    "rmssd": "hrv_rmssd",
    "sdnn": "hrv_sdnn",
    "environment_exposure": "env_noise_db",
    "headphone_exposure": "headphone_db",
}
LONG_COLUMNS = ("person", "signal", "time", "value")
Batch = tuple[str, pd.DataFrame]


_UNREADABLE = (UnicodeDecodeError, OSError, EOFError, zipfile.BadZipFile, pa.ArrowInvalid)


def _unreadable(source: str | Path | IO[str], err: Exception) -> DataError:
    name = Path(source).name if isinstance(source, (str, Path)) else "stream"
    return DataError(
        f"{name} could not be read as a CSV file (expected UTF-8 comma-separated text, "
        f"optionally .zip or .gz): {err}"
    )


def _header(source: str | Path | IO[str]) -> list[str]:
    """Column names from the first line, without decompressing the whole file."""
    try:
        line = _first_line(source)
    except _UNREADABLE as err:
        raise _unreadable(source, err) from None
    return next(csv.reader([line]), [])


def _first_line(source: str | Path | IO[str]) -> str:
    if not isinstance(source, (str, Path)):
        line = source.readline()
        source.seek(0)
    elif str(source).endswith(".zip"):
        with zipfile.ZipFile(source) as archive:
            member = archive.namelist()[0]
            with archive.open(member) as raw:
                line = io.TextIOWrapper(raw, encoding="utf-8").readline()
    elif str(source).endswith(".gz"):
        with gzip.open(source, "rt", encoding="utf-8") as handle:
            line = handle.readline()
    else:
        with open(source, encoding="utf-8") as handle:
            line = handle.readline()
    return line


def _lower_map(columns: list[str] | pd.Index) -> dict[str, str]:
    return {str(c).strip().lower(): c for c in columns}


def read_stream_csv(
    source: str | Path | IO[str], person: str | None = None, signal: str | None = None
) -> pd.DataFrame:
    """Read a one-signal stream CSV (Fitbit style) into long-form readings.

    Parameters
    ----------
    source : path (``.csv``, ``.csv.zip``, ``.csv.gz``) or open text buffer.
    person : person id when the file has no person column.
    signal : signal name when the value column's name is not a known alias.
    """
    name = Path(source).name if isinstance(source, (str, Path)) else "stream"
    columns = _header(source)
    lower = _lower_map(columns)
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    if time_col is None:
        raise DataError(
            f"{name}: no time column; expected one of {list(TIME_COLUMNS)}, found {columns}"
        )
    person_col = next((lower[c] for c in PERSON_COLUMNS if c in lower), None)
    value_col = next((lower[c] for c in VALUE_ALIASES if c in lower), None)
    if signal is None:
        if value_col is None:
            raise DataError(
                f"{name}: cannot tell which column holds the values; expected one of "
                f"{sorted(VALUE_ALIASES)}, found {columns} (or pass signal=)"
            )
        signal = VALUE_ALIASES[str(value_col).strip().lower()]
    elif value_col is None:
        others = [c for c in columns if c not in (time_col, person_col)]
        others = [c for c in others if not str(c).startswith("Unnamed")]
        if len(others) != 1:
            raise DataError(f"{name}: expected one value column besides time, found {others}")
        value_col = others[0]
    usecols = [c for c in (person_col, time_col, value_col) if c is not None]
    try:
        table, malformed = _read_columns(source, usecols, time_col, person_col, value_col)
    except _UNREADABLE as err:
        raise _unreadable(source, err) from None
    n = table.num_rows
    line = np.ones(n + len(malformed), dtype=bool)
    line[[m[0] - 2 for m in malformed]] = False
    rows = np.flatnonzero(line) + 2
    if person_col is not None:
        persons = table.column(person_col).to_pandas()
    else:
        persons = person or name.split("_")[0].split(".")[0]
    frame = pd.DataFrame(
        {
            "person": persons,
            "signal": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [signal]),
            "time": table.column(time_col).to_pandas(),
            "value": table.column(value_col).to_pandas(),
            "row": rows,
        }
    )
    return _with_malformed(frame, malformed, len(columns), person or "", signal)


def _with_malformed(
    frame: pd.DataFrame,
    malformed: list[tuple[int, str, int]],
    n_columns: int,
    person: str = "",
    signal: str = "",
) -> pd.DataFrame:
    """``frame`` plus one reading per malformed line, carrying its line number and reason."""
    if not malformed:
        return frame
    bad = pd.DataFrame(
        {
            "person": person,
            "signal": signal,
            "time": "",
            "value": [m[1] for m in malformed],
            "row": [m[0] for m in malformed],
            "reason": [
                f"malformed CSV row: {m[2]} fields, expected {n_columns}" for m in malformed
            ],
        }
    )
    return pd.concat([frame, bad], ignore_index=True)


def _read_columns(
    source: str | Path | IO[str],
    usecols: list[str],
    time_col: str,
    person_col: str | None,
    value_col: str,
) -> tuple[pa.Table, list[tuple[int, str, int]]]:
    """Read ``usecols`` with pyarrow on one thread; malformed rows are returned, not lost."""
    data = _raw_bytes(source)
    types = {time_col: pa.string(), value_col: pa.float64()}
    if person_col is not None:
        types[person_col] = pa.dictionary(pa.int32(), pa.string())
    try:
        return _parse(data, usecols, types)
    except pa.ArrowInvalid:
        types[value_col] = pa.string()
        return _parse(data, usecols, types)


def _raw_bytes(source: str | Path | IO[str]) -> bytes:
    """The whole (decompressed) file."""
    if not isinstance(source, (str, Path)):
        return source.read().encode("utf-8")
    if str(source).endswith(".zip"):
        with zipfile.ZipFile(source) as archive:
            return archive.read(archive.namelist()[0])
    if str(source).endswith(".gz"):
        with gzip.open(source, "rb") as handle:
            return handle.read()
    return Path(source).read_bytes()


def _parse(
    data: bytes,
    usecols: list[str],
    types: dict[str, pa.DataType],
    strings_can_be_null: bool = False,
) -> tuple[pa.Table, list[tuple[int, str, int]]]:
    malformed: list[tuple[int, str, int]] = []

    def keep(row: pcsv.InvalidRow) -> str:
        malformed.append((row.number, row.text, row.actual_columns))
        return "skip"

    table = pcsv.read_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(use_threads=False),
        parse_options=pcsv.ParseOptions(invalid_row_handler=keep),
        convert_options=pcsv.ConvertOptions(
            include_columns=usecols, column_types=types, strings_can_be_null=strings_can_be_null
        ),
    )
    return table, malformed


def read_long_csv(path: str | Path) -> pd.DataFrame:
    """Read a long-form CSV with ``person, signal, time, value`` columns (any letter case).

    Every cell is read as text (the checks parse values and times); a line with the wrong
    number of fields becomes a quarantine row with its line number.
    """
    columns = _header(path)
    lower = _lower_map(columns)
    check_columns_present(lower, LONG_COLUMNS, role="long-format", where=Path(path).name)
    usecols = [lower[c] for c in LONG_COLUMNS]
    try:
        table, malformed = _parse(
            _raw_bytes(path), usecols, dict.fromkeys(usecols, pa.string()), True
        )
    except _UNREADABLE as err:
        raise _unreadable(path, err) from None
    frame = table.to_pandas().set_axis(list(LONG_COLUMNS), axis=1)
    line = np.ones(len(frame) + len(malformed), dtype=bool)
    line[[m[0] - 2 for m in malformed]] = False
    frame["row"] = np.flatnonzero(line) + 2
    return _with_malformed(frame, malformed, len(columns))


_WELLTORY_DAILY = {
    "resting_pulse": "resting_hr",
    "pulse_average": "heart_rate_avg",
    "pulse_min": "heart_rate_min",
    "pulse_max": "heart_rate_max",
    "average_spo2_value": "spo2_avg",
    "body_temperature_avg": "temperature_avg",
    "steps_count": "daily_steps",
    "active_calories_burned": "active_calories",
    "average_headphone_exposure": "headphone_db_avg",
    "average_environment_exposure": "env_noise_db_avg",
}


def _melt(
    frame: pd.DataFrame, time_col: str, mapping: dict[str, str], scale: dict[str, float]
) -> pd.DataFrame:
    """Wide -> long, one reading per non-empty cell, keeping the source row."""
    parts = []
    for column, signal in mapping.items():
        present = frame[column].notna()
        value = frame.loc[present, column]
        if column in scale:
            value = pd.to_numeric(value, errors="coerce") * scale[column]
        parts.append(
            pd.DataFrame(
                {
                    "person": frame.loc[present, "user_code"],
                    "signal": signal,
                    "time": frame.loc[present, time_col],
                    "value": value,
                    "row": np.flatnonzero(present.to_numpy()) + 2,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def read_welltory(folder: str | Path) -> tuple[list[Batch], pd.DataFrame]:
    """Read a Welltory COVID-19 export into batches of readings and the participants.

    SpO2 is stored there as a fraction (0.96) and is converted to percent; sleep
    sessions on the same day are summed into hours asleep; HRV measurements give
    ``hrv_rmssd`` and ``hrv_sdnn`` readings, blood-pressure measurements ``systolic``
    and ``diastolic``.

    Returns
    -------
    batches : list of ``(file name, readings)``.
    participants : ``participants.csv`` as read.
    """
    folder = Path(folder)
    for required in ("participants.csv", "wearables.csv"):
        if not (folder / required).exists():
            raise DataError(f"{folder}: not a Welltory export (no {required})")
    participants = pd.read_csv(folder / "participants.csv", dtype={"user_code": str})
    batches: list[Batch] = []
    daily = pd.read_csv(folder / "wearables.csv", dtype={"user_code": str, "day": str})
    batches.append(
        ("wearables.csv", _melt(daily, "day", _WELLTORY_DAILY, {"average_spo2_value": 100.0}))
    )
    if (folder / "sleep.csv").exists():
        sleep = pd.read_csv(folder / "sleep.csv", dtype={"user_code": str, "day": str})
        sleep["row"] = np.arange(len(sleep)) + 2
        sleep["hours"] = pd.to_numeric(sleep["sleep_duration"], errors="coerce") / 3600
        total = sleep.groupby(["user_code", "day"], sort=False).agg(
            value=("hours", lambda h: h.sum(min_count=1)), row=("row", "first")
        )
        total = total.reset_index().rename(columns={"user_code": "person", "day": "time"})
        batches.append(("sleep.csv", total.assign(signal="sleep_hours")))
    if (folder / "blood_pressure.csv").exists():
        bp = pd.read_csv(folder / "blood_pressure.csv", dtype={"user_code": str})
        mapping = {"systolic": "systolic", "diastolic": "diastolic"}
        batches.append(("blood_pressure.csv", _melt(bp, "measurement_datetime", mapping, {})))
    if (folder / "hrv_measurements.csv").exists():
        hrv = pd.read_csv(
            folder / "hrv_measurements.csv",
            dtype={"user_code": str},
            usecols=["user_code", "measurement_datetime", "rmssd", "sdnn"],
        )
        mapping = {"rmssd": "hrv_rmssd", "sdnn": "hrv_sdnn"}
        batches.append(("hrv_measurements.csv", _melt(hrv, "measurement_datetime", mapping, {})))
    return batches, participants


def _is_long(path: Path) -> bool:
    lower = _lower_map(_header(path))
    return all(c in lower for c in LONG_COLUMNS)


def read_path(path: str | Path) -> list[Batch]:
    """Read a file or a folder of exports into ``(source name, readings)`` batches.

    A folder holding ``participants.csv`` and ``wearables.csv`` is read as a Welltory
    export; otherwise every ``*.csv``, ``*.csv.zip`` and ``*.csv.gz`` file in it is read
    as a long CSV or a stream CSV.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "participants.csv").exists() and (path / "wearables.csv").exists():
            return read_welltory(path)[0]
        files = sorted(
            p for p in path.iterdir() if p.name.endswith((".csv", ".csv.zip", ".csv.gz"))
        )
        if not files:
            raise DataError(f"{path}: no .csv, .csv.zip or .csv.gz files")
        return [batch for f in files for batch in read_path(f)]
    if _is_long(path):
        return [(path.name, read_long_csv(path))]
    return [(path.name, read_stream_csv(path, signal=_signal_from_name(path.name)))]


def _signal_from_name(name: str) -> str | None:
    """``A0NVTRV_hr.csv.zip`` -> ``heart_rate``; ``None`` when the name does not say."""
    stem = name.split(".")[0].lower()
    suffix = stem.rsplit("_", 1)[-1] if "_" in stem else ""
    return VALUE_ALIASES.get(suffix)
