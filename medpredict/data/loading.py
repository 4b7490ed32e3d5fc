"""Read a study's table from a CSV/Parquet file or a bundled dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medpredict.data.checks import (
    PARQUET_SUFFIXES,
    check_has_rows,
    check_table_file,
    check_unique_column_names,
)
from medpredict.data.errors import DataError

if TYPE_CHECKING:
    from medpredict.spec import DataSource


def read_table(source: DataSource) -> pd.DataFrame:
    """Load ``source`` as a DataFrame with a fresh 0..n-1 index.

    CSV columns are read as text where pandas cannot parse every value, so
    unparseable numbers are reported by the checks rather than silently coerced.
    """
    if source.dataset is not None:
        from medpredict.data.datasets import load_dataset

        return load_dataset(source.dataset).reset_index(drop=True)
    return read_file(Path(source.path))


def read_file(path: Path, what: str = "data file") -> pd.DataFrame:
    """Read a CSV or Parquet table of patients with a fresh 0..n-1 index.

    Parameters
    ----------
    path : ``.csv`` (``.txt``, ``.gz``) or ``.parquet`` (``.pq``) file.
    what : how error messages name the file (e.g. ``"input file"``).

    Raises
    ------
    DataError
        Naming the file, when it is missing, not CSV/Parquet, unreadable, empty, has
        no data rows, or repeats a column name.
    """
    check_table_file(path, what)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(path, what)
        header = [str(c) for c in frame.columns]
    else:
        frame, header = _read_csv(path, what)
    check_unique_column_names(header, f"{what} {path}")
    check_has_rows(frame, f"{what} {path}")
    return frame.reset_index(drop=True)


def _read_csv(path: Path, what: str) -> tuple[pd.DataFrame, list[str]]:
    """The table and its header exactly as written (pandas renames repeated names)."""
    try:
        frame = pd.read_csv(path, low_memory=False)
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{what} {path} is empty: expected a header line of column names, then data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
        raise DataError(
            f"{what} {path} could not be read as CSV (expected UTF-8 comma-separated "
            f"text): {err}"
        ) from None
    return frame, list(header.iloc[0])


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{what} {path} could not be read as Parquet: {err}") from None


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a table (values, column names and order)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()
