"""Read a column of signal references into an array of windows (the ``signal`` column kind).

Each row of the column is a reference (:mod:`medpredict.signals.reference`) to one window
of a WFDB record or ``.npy`` array. :class:`SignalLoader` reads every window into one
float32 array ``(windows, leads, samples)``. A model needs windows that agree, so at fit
every window must share one sampling rate, one set of leads and one length, and at
prediction they must match what the model was fitted on. Every unusable row is reported
together, by row (1-based position in the input) and column: a missing file, a window
outside the record, an unknown lead, a sampling rate that differs from the declared or
fitted one, non-finite samples.

Examples
--------
>>> import pandas as pd
>>> from medpredict.settings import require_data
>>> record = require_data("ecg/cpsc2021/data_8_2.hea").with_suffix("")
>>> refs = pd.DataFrame({"ecg": [f"{record}#start={s}&stop={s + 2000}&lead=II"
...                              for s in (0, 2000, 4000)]})
>>> loader = SignalLoader().fit(refs)
>>> loader.transform(refs).shape, loader.fs_, loader.leads_
((3, 1, 2000), 200.0, ('II',))
>>> bad = pd.DataFrame({"ecg": [f"{record}#start=0&stop=2000&lead=II",
...                             f"{record}#start=0&stop=2000&lead=V1"]})
>>> loader.transform(bad)
Traceback (most recent call last):
...
medpredict.signals.loader.SignalDataError: 1 unusable signal reference(s) in column 'ecg': \
row 2: lead 'V1' is not in data_8_2 (leads I, II)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError
from medpredict.signals.reference import SignalReference, parse_reference
from medpredict.signals.wfdb_io import read_record

_SHOWN = 10


class SignalDataError(DataError):
    """Unusable signal references; ``problems`` maps each 1-based row to what is wrong."""

    def __init__(self, problems: dict[int, str], column: str) -> None:
        self.problems = dict(sorted(problems.items()))
        shown = "; ".join(f"row {row}: {why}" for row, why in list(self.problems.items())[:_SHOWN])
        more = len(self.problems) - _SHOWN
        super().__init__(
            f"{len(self.problems)} unusable signal reference(s) in column {column!r}: {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )


@dataclass
class _Source:
    """A whole signal file: ``(leads, samples)``, its rate and lead names."""

    name: str
    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]


@dataclass
class _Window:
    samples: np.ndarray
    fs: float
    leads: tuple[str, ...]


def _read_source(path: Path, reference: SignalReference) -> _Source:
    if reference.is_array:
        if not path.is_file():
            raise FileNotFoundError(f"file {path} does not exist")
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.ndim not in (1, 2):
            raise ValueError(
                f"{path.name} holds an array of shape {array.shape}; expected (samples,) or "
                "(leads, samples)"
            )
        array = array.reshape(1, -1) if array.ndim == 1 else array
        leads = tuple(str(i) for i in range(array.shape[0]))
        # An array stores no rate: parse_reference requires fs in its reference.
        return _Source(path.name, array, float(reference.fs), leads)
    try:
        record = read_record(path, require_finite=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"WFDB record {path} not found (no {path.name}.hea)") from None
    return _Source(record.record, record.signal.T, record.fs, tuple(record.leads))


def _lead_rows(source: _Source, lead: str | None) -> slice | list[int]:
    if lead is None:
        return slice(None)
    if lead in source.leads:
        return [source.leads.index(lead)]
    if lead.isdigit() and int(lead) < len(source.leads):
        return [int(lead)]
    raise ValueError(f"lead {lead!r} is not in {source.name} (leads {', '.join(source.leads)})")


def _cut(source: _Source, reference: SignalReference) -> _Window:
    fs = source.fs
    if reference.fs is not None and reference.fs != fs:
        raise ValueError(
            f"{source.name} is sampled at {fs:g} Hz but the reference declares "
            f"fs={reference.fs:g}"
        )
    rows = _lead_rows(source, reference.lead)
    start, stop = reference.window(fs, source.signal.shape[1])
    samples = np.asarray(source.signal[rows, start:stop], dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise ValueError(f"{bad} sample(s) of the window in {source.name} are not finite")
    leads = tuple(np.asarray(source.leads)[rows].tolist())
    return _Window(samples, fs, leads)


def _usual(values: list[Any]) -> Any:
    """The most common value (the first seen among equally common ones)."""
    return Counter(values).most_common(1)[0][0]


class SignalLoader(TransformerMixin, BaseEstimator):
    """Column of signal references -> float32 windows ``(n, leads, samples)``.

    Parameters
    ----------
    column : the reference column of a DataFrame input; default: its only column.
    root : folder that relative references resolve from (default: working directory).

    Attributes
    ----------
    column_ : the column read.
    fs_ : the training windows' sampling rate (Hz).
    leads_ : their lead names (``"0"``, ``"1"``, ... for ``.npy`` arrays).
    n_samples_ : their length in samples.
    """

    def __init__(self, column: str | None = None, root: str | None = None) -> None:
        self.column = column
        self.root = root

    def _pick_column(self, X: Any) -> str:
        if not isinstance(X, pd.DataFrame) or self.column is not None:
            return self.column or "signal"
        if X.shape[1] != 1:
            raise DataError(
                f"cannot tell which of the columns {list(X.columns)} holds the signal "
                "references; name it (column=..., or signal_column in a model's params)"
            )
        return str(X.columns[0])

    @staticmethod
    def _values(X: Any, column: str) -> list[Any]:
        if isinstance(X, pd.DataFrame):
            if column not in X.columns:
                raise DataError(
                    f"signal column {column!r} not found; columns are {list(X.columns)}"
                )
            return X[column].tolist()
        if isinstance(X, pd.Series):
            return X.tolist()
        return np.asarray(X, dtype=object).ravel().tolist()

    def _read(self, values: list[Any]) -> tuple[list[_Window | None], dict[int, str]]:
        """Each row's window (None where unusable) and the problems by 1-based row."""
        base = Path(self.root) if self.root else Path.cwd()
        problems: dict[int, str] = {}
        parsed: dict[int, SignalReference] = {}
        by_file: dict[Path, list[int]] = {}
        for row, value in enumerate(values, start=1):
            if value is None or (not isinstance(value, str) and pd.isna(value)) or not str(value):
                problems[row] = "no signal reference"
                continue
            try:
                parsed[row] = parse_reference(str(value))
            except ValueError as err:
                problems[row] = f"{value!r} is not a signal reference: {err}"
                continue
            path = parsed[row].path
            by_file.setdefault(path if path.is_absolute() else base / path, []).append(row)
        windows: list[_Window | None] = [None] * len(values)
        for path, rows in by_file.items():
            try:
                source = _read_source(path, parsed[rows[0]])
            except (OSError, ValueError) as err:
                problems.update(dict.fromkeys(rows, str(err)))
                continue
            for row in rows:
                try:
                    windows[row - 1] = _cut(source, parsed[row])
                except ValueError as err:
                    problems[row] = str(err)
        return windows, problems

    @staticmethod
    def _check(
        windows: list[_Window | None],
        problems: dict[int, str],
        expected: tuple[float, tuple[str, ...], int],
        whose: str,
    ) -> None:
        """Add a problem for each window whose rate, leads or length is not ``expected``."""
        fs, leads, n_samples = expected
        for row, window in enumerate(windows, start=1):
            if window is None:
                continue
            if window.fs != fs:
                problems[row] = f"wrong sampling rate {window.fs:g} Hz; {whose} {fs:g} Hz"
            elif window.leads != leads:
                problems[row] = f"leads {', '.join(window.leads)}; {whose} {', '.join(leads)}"
            elif window.samples.shape[1] != n_samples:
                problems[row] = (
                    f"window of {window.samples.shape[1]} samples; {whose} {n_samples}"
                )

    def _stack(self, windows: list[_Window | None]) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.leads_), self.n_samples_), dtype=np.float32)
        return np.stack([w.samples for w in windows if w is not None])

    def fit(self, X: Any, y: Any = None) -> SignalLoader:
        """Learn the windows' shared sampling rate, leads and length."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then return the training windows (each file is read once)."""
        for attr in ("column_", "fs_", "leads_", "n_samples_"):
            self.__dict__.pop(attr, None)
        column = self._pick_column(X)
        windows, problems = self._read(self._values(X, column))
        usable = [w for w in windows if w is not None]
        if not usable:
            if problems:
                raise SignalDataError(problems, column)
            raise DataError(f"signal column {column!r} has no rows to fit on")
        expected = (
            _usual([w.fs for w in usable]),
            _usual([w.leads for w in usable]),
            _usual([w.samples.shape[1] for w in usable]),
        )
        self._check(windows, problems, expected, "most windows have")
        if problems:
            raise SignalDataError(problems, column)
        self.column_ = column
        self.fs_, self.leads_, self.n_samples_ = expected
        return self._stack(windows)

    def transform(self, X: Any) -> np.ndarray:
        """Read every referenced window; raise once, listing each unusable row."""
        check_is_fitted(self, "fs_")
        windows, problems = self._read(self._values(X, self.column_))
        expected = (self.fs_, self.leads_, self.n_samples_)
        self._check(windows, problems, expected, "the model was fitted on")
        if problems:
            raise SignalDataError(problems, self.column_)
        return self._stack(windows)
