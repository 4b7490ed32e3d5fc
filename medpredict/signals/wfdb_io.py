"""Read WFDB records (signal, header comments) and rhythm annotations.

Examples
--------
>>> from medpredict.settings import require_data
>>> record = read_record(require_data("ecg/cpsc2021/data_101_6.hea"))
>>> record.patient, record.fs, record.leads
('101', 200.0, ['I', 'II'])
>>> rhythm_intervals(record.path).head(2).to_dict("list")
{'start': [0, 3132], 'end': [3132, 5639], 'rhythm': ['N', 'AFIB']}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError


@dataclass
class EcgRecord:
    """One WFDB record: ``signal`` is ``(samples, leads)`` in physical units (mV)."""

    path: Path
    signal: np.ndarray
    fs: float
    leads: list[str]
    comments: list[str] = field(default_factory=list)

    @property
    def record(self) -> str:
        """Record name (file stem)."""
        return self.path.name

    @property
    def patient(self) -> str:
        """Patient id from a ``data_<patient>_<record>`` name (CPSC 2021), else the name."""
        parts = self.record.split("_")
        return parts[1] if len(parts) == 3 and parts[0] == "data" else self.record


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".hea", ".dat", ".mat", ".atr") else path


def read_record(path: str | Path, require_finite: bool = True) -> EcgRecord:
    """Read a WFDB record given its path without extension, or with ``.hea``, ``.dat`` or
    ``.mat`` (the MATLAB-format records PhysioNet/CinC challenges ship, with their header).

    Raises
    ------
    FileNotFoundError
        When the record has no header file.
    DataError
        Naming the record when its files cannot be read, or (with ``require_finite``)
        when any sample is not finite.
    """
    import wfdb

    stem = _stem(path)
    if not stem.with_suffix(".hea").exists():
        raise FileNotFoundError(f"{stem}.hea: WFDB header not found")
    try:
        record = wfdb.rdrecord(str(stem))
    except (OSError, ValueError) as err:
        raise DataError(f"{stem.name}: not a readable WFDB record ({err})") from err
    signal = np.asarray(record.p_signal, dtype=np.float32)
    if require_finite and not np.isfinite(signal).all():
        bad = np.flatnonzero(~np.isfinite(signal).all(axis=1))
        raise DataError(f"{stem.name}: {bad.size} samples are not finite (first at {bad[0]})")
    return EcgRecord(stem, signal, float(record.fs), list(record.sig_name), list(record.comments))


def rhythm_intervals(path: str | Path, extension: str = "atr") -> pd.DataFrame:
    """Rhythm episodes from ``(AFIB``/``(N``-style annotations as half-open sample ranges.

    The first episode starts at sample 0 (normal rhythm unless annotated otherwise) and
    the last ends at the record's length. Columns: ``start``, ``end``, ``rhythm``.
    """
    import wfdb

    stem = _stem(path)
    header = wfdb.rdheader(str(stem))
    annotation = wfdb.rdann(str(stem), extension)
    changes = [
        (int(sample), note.strip().lstrip("(").rstrip("\x00"))
        for sample, note in zip(annotation.sample, annotation.aux_note, strict=True)
        if note and note.strip().startswith("(")
    ]
    starts, rhythms = [0], ["N"]
    for sample, rhythm in changes:
        if sample <= starts[-1]:
            rhythms[-1] = rhythm
        elif rhythm != rhythms[-1]:
            starts.append(sample)
            rhythms.append(rhythm)
    ends = [*starts[1:], int(header.sig_len)]
    frame = pd.DataFrame({"start": starts, "end": ends, "rhythm": rhythms})
    return frame[frame["end"] > frame["start"]].reset_index(drop=True)
