"""Fixed-length ECG windows labelled from rhythm annotations.

A window is labelled AF (1) when at least ``af_threshold`` of its samples lie inside an
annotated ``AFIB`` episode; its exact AF fraction is kept so mixed windows can be
inspected or dropped. Windows never cross record boundaries, and each carries its
patient and record so splits can be made by patient.

Examples
--------
>>> import pandas as pd
>>> episodes = pd.DataFrame({"start": [0, 1000], "end": [1000, 3000], "rhythm": ["N", "AFIB"]})
>>> w = label_windows(episodes, n_samples=3000, fs=100, window_s=10, step_s=5)
>>> w["af_fraction"].tolist(), w["label"].tolist()
([0.0, 0.5, 1.0, 1.0, 1.0], [0, 1, 1, 1, 1])
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError, DataWarning
from medpredict.signals.wfdb_io import read_record, rhythm_intervals


def label_windows(
    episodes: pd.DataFrame,
    n_samples: int,
    fs: float,
    window_s: float = 30.0,
    step_s: float = 10.0,
    af_threshold: float = 0.5,
    af_label: str = "AFIB",
) -> pd.DataFrame:
    """Window start/stop samples with their AF fraction and 0/1 label.

    Parameters
    ----------
    episodes : rhythm episodes (``start``, ``end``, ``rhythm``) as from
        :func:`~medpredict.signals.wfdb_io.rhythm_intervals`.
    n_samples, fs : record length (samples) and sampling rate (Hz).
    window_s, step_s : window length and stride in seconds.
    af_threshold : AF fraction at or above which a window is labelled 1.
    af_label : rhythm name marking atrial fibrillation.
    """
    length, step = round(window_s * fs), round(step_s * fs)
    if length <= 0 or step <= 0:
        raise ValueError(f"window_s and step_s must be positive, got {window_s}, {step_s}")
    af = np.zeros(n_samples + 1, dtype=np.int64)
    for start, end in episodes.loc[episodes["rhythm"] == af_label, ["start", "end"]].to_numpy():
        af[min(start, n_samples)] += 1
        af[min(end, n_samples)] -= 1
    covered = np.concatenate([[0], np.cumsum(np.cumsum(af)[:n_samples] > 0)])
    starts = np.arange(0, n_samples - length + 1, step)
    fraction = (covered[starts + length] - covered[starts]) / length
    return pd.DataFrame(
        {
            "start": starts,
            "stop": starts + length,
            "af_fraction": fraction,
            "label": (fraction >= af_threshold).astype(int),
        }
    )


def af_windows(
    folder: str | Path,
    window_s: float = 30.0,
    step_s: float = 10.0,
    af_threshold: float = 0.5,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Every window of every WFDB record in ``folder`` with its label and patient.

    Records shorter than one window yield none; they are named in a ``DataWarning``.
    For a study table with a quarantine of unusable records and windows, see
    :func:`medpredict.signals.cohort.af_window_table`.

    Returns
    -------
    X : float32 array ``(windows, leads, samples)``.
    meta : DataFrame with ``patient``, ``record``, ``start``, ``stop``, ``af_fraction``,
        ``label`` and ``fs`` per window.
    """
    headers = sorted(Path(folder).glob("*.hea"))
    if not headers:
        raise FileNotFoundError(f"{folder}: no WFDB records (.hea files)")
    arrays, metas, short = [], [], []
    for header in headers:
        record = read_record(header)
        windows = label_windows(
            rhythm_intervals(header),
            len(record.signal),
            record.fs,
            window_s,
            step_s,
            af_threshold,
        )
        if windows.empty:
            short.append(record.record)
            continue
        length = int(windows["stop"].iloc[0] - windows["start"].iloc[0])
        index = windows["start"].to_numpy()[:, None] + np.arange(length)
        arrays.append(record.signal[index].transpose(0, 2, 1))
        metas.append(windows.assign(patient=record.patient, record=record.record, fs=record.fs))
    if not metas:
        raise DataError(f"{folder}: every record is shorter than one {window_s} s window")
    if short:
        warnings.warn(
            f"{len(short)} record(s) shorter than one {window_s:g} s window left out: "
            f"{', '.join(short)}",
            DataWarning,
            stacklevel=2,
        )
    meta = pd.concat(metas, ignore_index=True)
    columns = ["patient", "record", "start", "stop", "af_fraction", "label", "fs"]
    return np.concatenate(arrays).astype(np.float32), meta[columns]
