"""ECG and PPG processing with NeuroKit2: cleaning, R-peaks, HRV and signal quality.

NeuroKit2 is imported on first use (it takes seconds to import).

Examples
--------
>>> from medpredict.settings import require_data
>>> from medpredict.signals.wfdb_io import read_record
>>> record = read_record(require_data("ecg/cpsc2021/data_21_7.hea"))
>>> window = record.signal[:6000, 1]
>>> peaks = r_peaks(window, record.fs)
>>> 25 <= len(peaks) <= 60
True
>>> features = hrv_features(peaks, record.fs)
>>> 40 < 60_000 / features["HRV_MeanNN"] < 150
True
"""

from __future__ import annotations

import warnings

import numpy as np

from medpredict.optional import require

QUALITY_LEVELS = {"Unacceptable": 0.0, "Barely acceptable": 1.0, "Excellent": 2.0}
TIME_FEATURES = (
    "HRV_MeanNN",
    "HRV_SDNN",
    "HRV_RMSSD",
    "HRV_SDSD",
    "HRV_CVNN",
    "HRV_CVSD",
    "HRV_MedianNN",
    "HRV_MadNN",
    "HRV_MCVNN",
    "HRV_IQRNN",
    "HRV_pNN50",
    "HRV_pNN20",
    "HRV_MinNN",
    "HRV_MaxNN",
)
FREQUENCY_FEATURES = ("HRV_HF", "HRV_VHF", "HRV_TP", "HRV_HFn", "HRV_LnHF")


def _nk():
    return require("neurokit2", extra="signals")


def clean_ecg(signal: np.ndarray, fs: float) -> np.ndarray:
    """Band-pass and power-line cleaning (NeuroKit2's default ECG cleaning)."""
    return np.asarray(_nk().ecg_clean(np.asarray(signal, float), sampling_rate=int(fs)))


def r_peaks(signal: np.ndarray, fs: float, clean: bool = True) -> np.ndarray:
    """R-peak sample indices (NeuroKit2 detector) of one ECG lead."""
    nk = _nk()
    x = clean_ecg(signal, fs) if clean else np.asarray(signal, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.ecg_peaks(x, sampling_rate=int(fs))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def ppg_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Systolic peak sample indices of a PPG signal (NeuroKit2, after cleaning)."""
    nk = _nk()
    cleaned = nk.ppg_clean(np.asarray(signal, float), sampling_rate=int(fs))
    info = nk.ppg_findpeaks(cleaned, sampling_rate=int(fs))
    return np.asarray(info["PPG_Peaks"], dtype=np.int64)


def signal_quality(signal: np.ndarray, fs: float, peaks: np.ndarray | None = None) -> float:
    """Zhao 2018 ECG quality: 2 excellent, 1 barely acceptable, 0 unacceptable (NaN: none)."""
    nk = _nk()
    x = clean_ecg(signal, fs)
    peaks = r_peaks(x, fs, clean=False) if peaks is None else peaks
    if len(peaks) < 3:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            label = nk.ecg_quality(x, rpeaks=peaks, sampling_rate=int(fs), method="zhao2018")
        except (ValueError, IndexError, ZeroDivisionError):
            return float("nan")
    return QUALITY_LEVELS.get(str(label), float("nan"))


def hrv_features(peaks: np.ndarray, fs: float, frequency: bool = True) -> dict[str, float]:
    """Time-domain (and high-frequency) HRV features from R-peaks; NaN when not computable.

    Short windows (tens of seconds) support time-domain measures and the high-frequency
    band only; low-frequency bands need minutes and are not returned.
    """
    nk = _nk()
    names = TIME_FEATURES + (FREQUENCY_FEATURES if frequency else ())
    out = dict.fromkeys(names, float("nan"))
    if len(peaks) < 4:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            time = nk.hrv_time(peaks, sampling_rate=int(fs)).iloc[0]
            out.update({k: float(time[k]) for k in TIME_FEATURES if k in time})
            if frequency:
                freq = nk.hrv_frequency(peaks, sampling_rate=int(fs)).iloc[0]
                out.update({k: float(freq[k]) for k in FREQUENCY_FEATURES if k in freq})
        except (ValueError, IndexError, ZeroDivisionError):
            pass
    return out
