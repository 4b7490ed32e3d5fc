"""From a folder of annotated WFDB records to a study table of labelled ECG windows.

:func:`af_window_table` cuts every record into fixed-length windows labelled from its
rhythm annotations (:func:`~medpredict.signals.windows.label_windows`: AF when at least
``af_threshold`` of the window lies inside an ``(AFIB`` episode) and writes one row per
window:

``patient``
    patient id (``data_<patient>_<record>`` names, as in CPSC 2021; else the record name).
``record``
    record name.
``<column>`` (default ``ecg``)
    the window's signal reference, ``<record path>#start=..&stop=..&fs=..[&lead=..]``
    in samples, with the absolute record path.
``label``
    1 for an AF window, 0 otherwise.
``af_fraction``
    the share of the window inside annotated AF. It is derived from the outcome, so it
    must never be a feature: declare ``features`` in the spec.

Nothing is dropped silently: a record that cannot be used (unreadable, no annotation
file, lacking the requested lead, shorter than one window) and a window with
non-finite samples go to the ``quarantine`` table with the reason, and are counted.
With ``medpredict signal-windows`` the study table and its quarantine are written as
CSV or Parquet (by suffix), so an AF study is a spec over that table.

Examples
--------
>>> from medpredict.settings import require_data
>>> windows = af_window_table(require_data("ecg/cpsc2021"), window_s=30, step_s=30, lead="II")
>>> len(windows.table), int(windows.table["label"].sum()), len(windows.quarantine)
(141, 56, 0)
>>> windows.table.columns.tolist()
['patient', 'record', 'ecg', 'label', 'af_fraction']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.signals.reference import format_reference
from medpredict.signals.wfdb_io import EcgRecord, read_record, rhythm_intervals
from medpredict.signals.windows import label_windows

QUARANTINE_COLUMNS = ["record", "start", "stop", "reason"]


@dataclass
class WindowTable:
    """A study table of windows and what was kept out of it.

    Attributes
    ----------
    table : one row per usable window (see the module docstring).
    quarantine : one row per unusable record (``start``/``stop`` empty) or window,
        with the ``reason``.
    records : how many records the folder holds.
    """

    table: pd.DataFrame
    quarantine: pd.DataFrame
    records: int

    def summary(self) -> str:
        """One line: windows, AF windows, patients, and what was quarantined."""
        whole = int(self.quarantine["start"].isna().sum())
        windows = len(self.quarantine) - whole
        return (
            f"{len(self.table)} windows ({int(self.table['label'].sum())} AF) from "
            f"{self.table['record'].nunique()} of {self.records} records, "
            f"{self.table['patient'].nunique()} patients; quarantined: {whole} record(s), "
            f"{windows} window(s)"
        )

    def write(self, path: str | Path) -> list[Path]:
        """Write the table to ``path`` (``.csv`` or ``.parquet``) and, when any row was
        quarantined, the quarantine beside it (``<stem>.quarantine<suffix>``)."""
        path = Path(path)
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise DataError(f"{path}: write the window table as .csv or .parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        written = [path]
        frames = [(self.table, path)]
        if len(self.quarantine):
            written.append(path.with_name(f"{path.stem}.quarantine{path.suffix}"))
            frames.append((self.quarantine, written[-1]))
        for frame, target in frames:
            if target.suffix.lower() == ".csv":
                frame.to_csv(target, index=False)
            else:
                frame.to_parquet(target, index=False)
        return written


def _record_windows(
    record: EcgRecord,
    column: str,
    window_s: float,
    step_s: float,
    af_threshold: float,
    lead: str | None,
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """The record's window rows and quarantined windows."""
    if lead is not None and lead not in record.leads:
        raise DataError(f"lead {lead!r} is not in the record (leads {', '.join(record.leads)})")
    n_samples = len(record.signal)
    if n_samples < round(window_s * record.fs):
        raise DataError(
            f"the record is {n_samples / record.fs:.1f} s long, shorter than one "
            f"{window_s:g} s window"
        )
    windows = label_windows(
        rhythm_intervals(record.path), n_samples, record.fs, window_s, step_s, af_threshold
    )
    signal = record.signal if lead is None else record.signal[:, [record.leads.index(lead)]]
    finite = np.concatenate([[0], np.cumsum(np.isfinite(signal).all(axis=1))])
    starts, stops = windows["start"].to_numpy(), windows["stop"].to_numpy()
    bad = finite[stops] - finite[starts] < stops - starts
    quarantined = [
        {"record": record.record, "start": int(a), "stop": int(b),
         "reason": f"{int(b - a - (finite[b] - finite[a]))} sample(s) are not finite"}
        for a, b in zip(starts[bad], stops[bad], strict=True)
    ]
    kept = windows[~bad]
    rows = pd.DataFrame({
        "patient": record.patient,
        "record": record.record,
        column: [
            format_reference(record.path.resolve(), a, b, record.fs, lead)
            for a, b in zip(kept["start"], kept["stop"], strict=True)
        ],
        "label": kept["label"].to_numpy(),
        "af_fraction": kept["af_fraction"].to_numpy(),
    })
    return rows, quarantined


def af_window_table(
    folder: str | Path,
    column: str = "ecg",
    window_s: float = 30.0,
    step_s: float = 10.0,
    af_threshold: float = 0.5,
    lead: str | None = None,
) -> WindowTable:
    """Every window of every annotated WFDB record in ``folder``, one row per window.

    Parameters
    ----------
    folder : folder of WFDB records (``.hea``/``.dat``) with rhythm annotations (``.atr``).
    column : name of the signal-reference column.
    window_s, step_s : window length and stride in seconds.
    af_threshold : AF fraction at or above which a window is labelled 1.
    lead : the one lead to reference (e.g. ``"II"``), as HRV features need; default:
        every lead (for the raw-window networks).

    Raises
    ------
    FileNotFoundError
        When ``folder`` holds no WFDB header.
    DataError
        When no record yields a window (the message lists each record's reason).
    """
    headers = sorted(Path(folder).glob("*.hea"))
    if not headers:
        raise FileNotFoundError(f"{folder}: no WFDB records (.hea files)")
    tables, quarantined = [], []
    for header in headers:
        try:
            if not header.with_suffix(".atr").is_file():
                raise DataError("no rhythm annotation file (.atr)")
            record = read_record(header, require_finite=False)
            rows, bad_windows = _record_windows(
                record, column, window_s, step_s, af_threshold, lead
            )
        except (OSError, ValueError) as err:
            reason = str(err).removeprefix(f"{header.stem}: ")
            quarantined.append({"record": header.stem, "reason": reason})
            continue
        tables.append(rows)
        quarantined.extend(bad_windows)
    quarantine = pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS).astype(
        {"start": "Int64", "stop": "Int64"}
    )
    if not tables:
        listed = "; ".join(f"{r['record']}: {r['reason']}" for r in quarantined[:10])
        raise DataError(f"{folder}: no usable window in any record ({listed})")
    table = pd.concat(tables, ignore_index=True)
    return WindowTable(table, quarantine, len(headers))
