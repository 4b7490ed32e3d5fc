"""HRV feature extraction as scikit-learn transformers over ECG windows.

Each window (one lead) is cleaned, its R-peaks found and HRV features computed with
NeuroKit2 (:mod:`medpredict.signals.ecg`), plus the beat count and a signal-quality
grade. :class:`HRVFeatures` takes window arrays; :class:`SignalHRVFeatures` takes a
column of signal references (a study's ``signal`` column), reads the windows with
:class:`~medpredict.signals.loader.SignalLoader` and uses their own sampling rate.
Neither learns anything from the windows, so extracting features once for every window
and then cross-validating a model on them leaks nothing between patients.

Examples
--------
>>> import pandas as pd
>>> from medpredict.settings import require_data
>>> record = require_data("ecg/cpsc2021/data_21_7.hea").with_suffix("")
>>> refs = pd.DataFrame({"ecg": [f"{record}#start={s}s&stop={s + 15}s&lead=II"
...                              for s in (0, 15)]})
>>> features = SignalHRVFeatures(quality=False).fit_transform(refs)
>>> features.shape, bool((60_000 / features["HRV_MeanNN"]).between(40, 150).all())
((2, 20), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError
from medpredict.signals.ecg import (
    FREQUENCY_FEATURES,
    TIME_FEATURES,
    hrv_features,
    r_peaks,
    signal_quality,
)
from medpredict.signals.loader import SignalLoader


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


class SignalHRVFeatures(TransformerMixin, BaseEstimator):
    """Column of single-lead signal references -> HRV feature DataFrame.

    The windows are read with :class:`~medpredict.signals.loader.SignalLoader`, which
    learns their sampling rate at fit; HRV is computed at that rate. HRV needs one lead:
    references to several leads are refused, asking for one (``lead=II``).

    Parameters
    ----------
    column : the reference column of a DataFrame input; default: its only column.
    root : folder that relative references resolve from (default: working directory).
    frequency, quality : as for :class:`HRVFeatures`.

    Attributes
    ----------
    loader_ : the fitted loader.
    hrv_ : the :class:`HRVFeatures` at the windows' sampling rate.
    """

    def __init__(
        self,
        column: str | None = None,
        root: str | None = None,
        frequency: bool = True,
        quality: bool = True,
    ) -> None:
        self.column = column
        self.root = root
        self.frequency = frequency
        self.quality = quality

    def fit(self, X: Any, y: Any = None) -> SignalHRVFeatures:
        """Fit the loader (sampling rate, lead, window length); nothing else is learned."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit, then return the training windows' features (each window is read once)."""
        loader = SignalLoader(self.column, self.root)
        windows = loader.fit_transform(X)
        if len(loader.leads_) != 1:
            raise DataError(
                f"signal column {loader.column_!r} references {len(loader.leads_)} leads "
                f"({', '.join(loader.leads_)}); HRV features use one: name it in each "
                "reference (e.g. ...&lead=II)"
            )
        self.loader_ = loader
        self.hrv_ = HRVFeatures(loader.fs_, 0, self.frequency, self.quality).fit(windows)
        return self.hrv_.transform(windows)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The HRV feature names, in output order."""
        return HRVFeatures(frequency=self.frequency, quality=self.quality).get_feature_names_out()

    def transform(self, X: Any) -> pd.DataFrame:
        """One row of features per referenced window."""
        check_is_fitted(self, "hrv_")
        return self.hrv_.transform(self.loader_.transform(X))
