r"""PhysioNet/CinC Challenge 2012 files: one ``<RecordID>.txt`` per ICU stay, plus outcomes.

Each file is ``Time,Parameter,Value`` with time ``hh:mm`` since ICU admission over the
first 48 hours. The challenge gives no calendar dates, so every admission is placed at
:data:`ADMISSION` (a nominal date); event times keep their distance from it. Each stay
is one subject (``subject_id`` = RecordID). The ``RecordID`` line becomes the stay's
:data:`~medpredict.timeline.events.ICU_ADMISSION` event; ``Age``, ``Gender``, ``Height``
and ``ICUType`` are static (time NaT); ``Weight`` and the 37 time series are timed
events. ``-1`` is the challenge's marker for a missing descriptor and is quarantined as
a sentinel.

The files are read as one buffer and parsed by pandas' C parser: a Python loop runs per
file, never per row.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "132539.txt").write_text(
...     "Time,Parameter,Value\n00:00,RecordID,132539\n00:00,Age,54\n00:00,Height,-1\n"
...     "00:07,HR,73\n00:37,HR,77\n01:75,HR,80\n")
>>> result = read_physionet2012(folder)
>>> print(result.summary())
rows in 6 = events stored 4 + rows quarantined 2
  sentinel value: 1
  impossible time: 1
>>> result.events["code"].tolist()
['ICU_ADMISSION', 'Age', 'HR', 'HR']
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.timeline.events import ICU_ADMISSION
from medpredict.timeline.validate import (
    IMPOSSIBLE_TIME,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
    Range,
    ReadResult,
    combine_results,
    screen,
)

ADMISSION = pd.Timestamp("2000-01-01 00:00:00")
"""The nominal ICU admission time of every stay (the files give hours since admission)."""

STATIC = ("Age", "Gender", "Height", "ICUType")
TIME_SERIES = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP",
    "MechVent", "Mg", "NIDiasABP", "NIMAP", "NISysABP", "Na", "PaCO2", "PaO2", "pH",
    "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine",
    "WBC", "Weight",
)  # fmt: skip
CODES = (ICU_ADMISSION, *STATIC, *TIME_SERIES)
"""Every code the challenge files define (``RecordID`` is read as the admission)."""

SENTINEL = -1.0
OUTCOME_COLUMNS = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival",
                   "In-hospital_death")  # fmt: skip
_CHUNK_ROWS = 1_000_000  # rows screened at once: bounds the reader's working memory
_RECORD_FILE = re.compile(r"(?:^|/)(\d+)\.txt$")
_TIME = re.compile(r"^(?P<h>\d{1,3}):(?P<m>\d{2})$")


def read_physionet2012(
    records: str | Path,
    outcomes: str | Path | None = None,
    ranges: dict[str, Range] | None = None,
) -> ReadResult:
    """Read challenge record files (a folder or ``.tar.gz``) and optionally the outcomes.

    Parameters
    ----------
    records : path
        A folder of ``<RecordID>.txt`` files (searched recursively) or a ``.tar.gz`` /
        ``.tgz`` archive of them, e.g. ``set-a.tar.gz``.
    outcomes : path, optional
        The outcomes file (``Outcomes-a.txt``): one row per RecordID.
    ranges : mapping, optional
        Range table (default :func:`medpredict.timeline.validate.load_ranges`).

    Returns
    -------
    ReadResult
        Events, quarantined rows (source = record file, line = line in it) and the
        outcomes as ``subject_id`` plus the outcome file's columns.

    Raises
    ------
    DataError
        The path holds no record files, a file lacks the ``Time,Parameter,Value`` header,
        or the outcomes file is malformed (the message names file and row).
    """
    records = Path(records)
    names, ids, texts = [], [], []
    found = sorted(_record_files(records), key=lambda item: int(_RECORD_FILE.search(item[0])[1]))
    for name, content in found:
        header, _, body = content.partition(b"\n")
        if header.strip().replace(b" ", b"") != b"Time,Parameter,Value":
            raise DataError(
                f"{records}: {name} starts with {header[:60]!r}; expected the header "
                "'Time,Parameter,Value'"
            )
        if body and not body.endswith(b"\n"):
            body += b"\n"
        names.append(name)
        ids.append(int(_RECORD_FILE.search(name).group(1)))
        texts.append(body)
    if not names:
        raise DataError(f"{records} holds no challenge record files (<RecordID>.txt)")
    counts = np.array([t.count(b"\n") for t in texts])
    parts = []
    for chunk in _chunks(counts, _CHUNK_ROWS):
        parts.append(
            _read_chunk(
                records,
                [texts[i] for i in chunk],
                [names[i] for i in chunk],
                [ids[i] for i in chunk],
                counts[chunk],
                ranges,
            )
        )
    result = combine_results(parts)
    if outcomes is not None:
        result.outcomes = read_outcomes(outcomes)
    return result


def _chunks(counts: np.ndarray, limit: int) -> list[np.ndarray]:
    """Consecutive file indices holding about ``limit`` rows each (files stay whole)."""
    bounds = np.searchsorted(np.cumsum(counts), np.arange(limit, counts.sum(), limit))
    return [c for c in np.split(np.arange(len(counts)), np.unique(bounds + 1)) if len(c)]


def _read_chunk(records, texts, names, ids, counts, ranges) -> ReadResult:
    raw = pd.read_csv(
        io.BytesIO(b"".join(texts)),
        header=None,
        names=["raw_time", "code", "raw_value"],
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        engine="c",
    )
    if len(raw) != counts.sum():
        raise DataError(f"{records}: a record file has lines with more than three fields")
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    raw["subject_id"] = np.repeat(np.array(ids, dtype=np.int64), counts)
    raw["source"] = pd.Categorical.from_codes(np.repeat(np.arange(len(names)), counts), names)
    raw["line"] = np.arange(len(raw)) - starts + 2
    return _screen(raw, ranges)


def _screen(raw: pd.DataFrame, ranges) -> ReadResult:
    import pyarrow as pa
    import pyarrow.compute as pc

    reasons = pd.Series(None, index=raw.index, dtype=object)
    text = pa.array(raw["raw_time"].array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    parts = pc.extract_regex(text, _TIME.pattern)
    matched = pc.is_valid(parts)
    hours, minutes = (
        pc.if_else(matched, pc.cast(pc.if_else(matched, parts.field(f), "0"), pa.float64()), None)
        .to_numpy(zero_copy_only=False)
        for f in ("h", "m")
    )
    hours = pd.Series(hours, index=raw.index)
    reasons[hours.isna()] = UNPARSEABLE_TIME
    reasons[hours.notna() & (minutes >= 60)] = IMPOSSIBLE_TIME
    offset = pd.to_timedelta(hours * 60 + minutes, unit="min")
    time = (ADMISSION + offset).astype("datetime64[us]")
    code = raw["code"].str.strip()
    is_record = code == "RecordID"
    parsed = pd.to_numeric(raw["raw_value"], errors="coerce")
    reasons[parsed.isna() & reasons.isna() & ~is_record] = UNPARSEABLE_VALUE
    record_value = parsed.where(is_record)
    value = parsed.mask(is_record)
    mismatch = is_record & (record_value != raw["subject_id"]) & reasons.isna()
    reasons[mismatch] = "record id differs from file name"
    code = code.mask(is_record, ICU_ADMISSION)
    time = time.mask(code.isin(STATIC))
    candidates = pd.DataFrame(
        {
            "subject_id": raw["subject_id"],
            "time": time,
            "code": code,
            "numeric_value": value,
            "source": raw["source"],
            "line": raw["line"],
            "raw_time": raw["raw_time"],
            "raw_value": raw["raw_value"],
        }
    )
    return screen(candidates, reasons, ranges=ranges, codes=CODES, sentinels=(SENTINEL,))


def read_outcomes(path: str | Path) -> pd.DataFrame:
    """The challenge outcomes file as ``subject_id`` plus its columns (-1 read as missing).

    Raises
    ------
    DataError
        Missing columns, a RecordID that is not a whole number or is repeated, or an
        ``In-hospital_death`` other than 0/1 (naming the rows).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"outcomes file {path} could not be read as CSV: {err}") from None
    missing = [c for c in OUTCOME_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"outcomes file {path} lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(OUTCOME_COLUMNS)}"
        )
    numbers = frame[list(OUTCOME_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna() | (frame[list(OUTCOME_COLUMNS)] == "")
    if bad.any().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise DataError(
            f"outcomes file {path} row {row + 2}, column {OUTCOME_COLUMNS[column]}: "
            f"{frame.iloc[row, frame.columns.get_loc(OUTCOME_COLUMNS[column])]!r} is not a number"
        )
    ids = numbers["RecordID"]
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        rows = ", ".join(str(i + 2) for i in repeated.index[:10])
        raise DataError(f"outcomes file {path}: RecordID repeated on rows {rows}")
    death = numbers["In-hospital_death"]
    wrong = death[~death.isin([0, 1])]
    if len(wrong):
        rows = ", ".join(str(i + 2) for i in wrong.index[:10])
        raise DataError(f"outcomes file {path}: In-hospital_death must be 0 or 1 (rows {rows})")
    out = numbers.drop(columns="RecordID").mask(numbers.drop(columns="RecordID") == SENTINEL)
    out["In-hospital_death"] = death.astype(int)
    out.insert(0, "subject_id", ids.astype(np.int64))
    return out


def _record_files(records: Path) -> Iterator[tuple[str, bytes]]:
    if records.is_dir():
        for path in sorted(records.rglob("*.txt")):
            if _RECORD_FILE.search(path.name):
                yield path.name, path.read_bytes()
        return
    if not records.is_file():
        raise DataError(f"challenge records {records} not found (a folder or .tar.gz)")
    try:
        with tarfile.open(records, "r:*") as archive:
            for member in archive:
                if member.isfile() and _RECORD_FILE.search(member.name):
                    yield Path(member.name).name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(
            f"{records} could not be read as a .tar.gz of record files: {err}"
        ) from None
