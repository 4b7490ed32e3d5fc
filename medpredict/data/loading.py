"""Read a study's table from a CSV/Parquet file or a bundled dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from medpredict.data.datasets import load_dataset
from medpredict.data.errors import DataError
from medpredict.spec import DataSource


def read_table(source: DataSource) -> pd.DataFrame:
    """Load ``source`` as a DataFrame with a fresh 0..n-1 index.

    CSV columns are read as text where pandas cannot parse every value, so
    unparseable numbers are reported by the checks rather than silently coerced.
    """
    if source.dataset is not None:
        return load_dataset(source.dataset).reset_index(drop=True)
    path = Path(source.path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".txt", ".gz"):
        try:
            frame = pd.read_csv(path, low_memory=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{path} could not be read as CSV: {err}") from err
    else:
        raise DataError(f"{path}: expected a .csv or .parquet file, got {suffix or 'no suffix'!r}")
    return frame.reset_index(drop=True)


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a table (values, column names and order)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()
