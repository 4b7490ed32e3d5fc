"""HRV feature extraction as a scikit-learn transformer over raw ECG windows.

Each window (one lead) is cleaned, its R-peaks found and HRV features computed with
NeuroKit2 (:mod:`medpredict.signals.ecg`), plus the beat count and a signal-quality
grade. The transformer learns nothing, so extracting features once for every window
and then cross-validating a model on them leaks nothing between patients.

Examples
--------
>>> from medpredict.settings import require_data
>>> from medpredict.signals.windows import af_windows
>>> X, meta = af_windows(require_data("ecg/cpsc2021"))  # doctest: +SKIP
>>> HRVFeatures(fs=200).fit_transform(X[:3]).shape  # doctest: +SKIP
(3, 21)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from medpredict.data.errors import DataError
from medpredict.signals.ecg import (
    FREQUENCY_FEATURES,
    TIME_FEATURES,
    hrv_features,
    r_peaks,
    signal_quality,
)


class HRVFeatures(TransformerMixin, BaseEstimator):
    """ECG windows ``(n, samples)`` or ``(n, leads, samples)`` -> HRV feature DataFrame.

    Parameters
    ----------
    fs : sampling rate in Hz.
    lead : lead index used when windows have several leads.
    frequency : include high-frequency-band features.
    quality : include the Zhao 2018 quality grade (costs about 25 ms per window).
    """

    def __init__(
        self, fs: float = 200.0, lead: int = 1, frequency: bool = True, quality: bool = True
    ) -> None:
        self.fs = fs
        self.lead = lead
        self.frequency = frequency
        self.quality = quality

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> HRVFeatures:
        """Record the output feature names; nothing is learned from the data."""
        self.feature_names_out_ = np.array(self._names(), dtype=object)
        return self

    def _names(self) -> list[str]:
        names = ["n_beats", *TIME_FEATURES, *(FREQUENCY_FEATURES if self.frequency else ())]
        return [*names, "quality"] if self.quality else names

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array(self._names(), dtype=object)

    def transform(self, X: np.ndarray) -> pd.DataFrame:
        """One row of features per window."""
        X = np.asarray(X)
        if X.ndim == 3:
            if not 0 <= self.lead < X.shape[1]:
                raise DataError(f"lead {self.lead} not in windows with {X.shape[1]} leads")
            X = X[:, self.lead, :]
        if X.ndim != 2:
            raise DataError(
                f"expected windows of shape (n, samples) or (n, leads, samples), got {X.shape}"
            )
        rows = []
        for window in X:
            peaks = r_peaks(window, self.fs)
            row = {"n_beats": float(len(peaks)), **hrv_features(peaks, self.fs, self.frequency)}
            if self.quality:
                row["quality"] = signal_quality(window, self.fs, peaks)
            rows.append(row)
        return pd.DataFrame(rows, columns=self._names())
