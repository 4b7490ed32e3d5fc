"""Raw feature table -> network inputs: numbers scaled, categories as integer codes.

:class:`TabularEncoder` is fitted inside the training fold of every model that takes
raw input (the deep networks, the hybrids). Numeric columns get the training median for
missing values plus a missing-indicator column, then a standard or normal-quantile
scaling; categorical columns (object, string, category dtype) become integer codes
``1..K`` with ``0`` for missing or unseen values, or one-hot columns for classical heads.
Its whole fitted state is NumPy arrays and lists, so it serialises with skops.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"age": [50.0, None, 70.0], "sex": ["F", "M", None]})
>>> enc = TabularEncoder().fit(frame)
>>> numeric, codes = enc.encode(frame)
>>> numeric.shape, codes.ravel().tolist(), enc.cardinalities_
((3, 2), [1, 2, 0], [3])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medpredict.data.errors import DataError

_N_QUANTILES = 256
_QUANTILE_CLIP = 1e-4


def _is_categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column))


def _as_frame(X: Any, names: list[str] | None = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(f"expected a 2-d feature table, got an array of shape {array.shape}")
    columns = names or [f"x{i}" for i in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


def _numeric_values(column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        parsed = pd.to_numeric(column, errors="coerce")
        bad = column.notna() & parsed.isna()
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
            raise DataError(
                f"column {name!r} was numeric when the model was fitted but holds "
                f"non-numbers at rows {rows} (0-based positions)"
            )
        values = parsed.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        rows = np.flatnonzero(np.isinf(values))[:5].tolist()
        raise DataError(f"column {name!r} holds infinite values at rows {rows} (0-based)")
    return values


class TabularEncoder(TransformerMixin, BaseEstimator):
    """Impute, scale and code a raw feature table, fitted on training rows only.

    Parameters
    ----------
    numeric : {"quantile", "standard"}
        ``"quantile"`` maps each numeric column through its training quantiles to a
        standard normal (robust to skew and outliers); ``"standard"`` subtracts the mean
        and divides by the standard deviation.
    categorical : {"codes", "onehot"}
        ``"codes"`` gives integer codes for embeddings (see :meth:`encode`);
        ``"onehot"`` makes :meth:`transform` return one-hot columns, for classical heads.

    Attributes
    ----------
    numeric_columns_, categorical_columns_ : list of str
        Column names by kind, in input order.
    categories_ : list of list of str
        Known categories per categorical column (code ``i + 1`` is ``categories_[c][i]``).
    cardinalities_ : list of int
        Number of codes per categorical column, including ``0`` for missing/unseen.
    """

    def __init__(self, numeric: str = "quantile", categorical: str = "codes") -> None:
        self.numeric = numeric
        self.categorical = categorical

    def fit(self, X: Any, y: Any = None) -> TabularEncoder:
        """Learn medians, scaling and category codes from the training rows ``X``."""
        if self.numeric not in ("quantile", "standard"):
            raise ValueError(f"numeric must be 'quantile' or 'standard', got {self.numeric!r}")
        if self.categorical not in ("codes", "onehot"):
            raise ValueError(f"categorical must be 'codes' or 'onehot', got {self.categorical!r}")
        frame = _as_frame(X)
        if len(frame) == 0:
            raise DataError("cannot fit the encoder on a table with no rows")
        self.columns_ = [str(c) for c in frame.columns]
        self.categorical_columns_ = [str(c) for c in frame.columns if _is_categorical(frame[c])]
        self.numeric_columns_ = [c for c in self.columns_ if c not in self.categorical_columns_]
        frame.columns = self.columns_
        numeric = self._numeric_matrix(frame)
        self.medians_ = np.zeros(numeric.shape[1])
        missing = np.isnan(numeric)
        for j in range(numeric.shape[1]):
            observed = numeric[~missing[:, j], j]
            self.medians_[j] = np.median(observed) if observed.size else 0.0
        self.indicator_columns_ = np.flatnonzero(missing.any(axis=0)).tolist()
        filled = np.where(missing, self.medians_, numeric)
        if self.numeric == "standard":
            self.means_ = filled.mean(axis=0)
            scale = filled.std(axis=0)
            self.scales_ = np.where(scale > 0, scale, 1.0)
        else:
            levels = np.linspace(0, 1, min(_N_QUANTILES, len(frame)))
            self.quantiles_ = np.quantile(filled, levels, axis=0).T.copy()
        self.categories_ = [
            sorted({str(v) for v in frame[c].dropna()}) for c in self.categorical_columns_
        ]
        self.cardinalities_ = [len(cats) + 1 for cats in self.categories_]
        self.n_features_in_ = len(self.columns_)
        return self

    def _numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.numeric_columns_:
            return np.zeros((len(frame), 0))
        return np.column_stack([_numeric_values(frame[c], c) for c in self.numeric_columns_])

    def _scale(self, filled: np.ndarray) -> np.ndarray:
        if self.numeric == "standard":
            return (filled - self.means_) / self.scales_
        out = np.empty_like(filled)
        for j, grid in enumerate(self.quantiles_):
            levels = np.linspace(0, 1, grid.size)
            # average the rank from both sides so tied values map to their mid-rank
            up = np.interp(filled[:, j], grid, levels)
            down = 1 - np.interp(-filled[:, j], -grid[::-1], levels)
            out[:, j] = ndtri(np.clip((up + down) / 2, _QUANTILE_CLIP, 1 - _QUANTILE_CLIP))
        return out

    def _checked_frame(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "columns_")
        if isinstance(X, pd.DataFrame):
            frame = X.rename(columns=str)
            missing = [c for c in self.columns_ if c not in frame.columns]
            if missing:
                raise DataError(
                    f"the feature table lacks column(s) {missing} that the model was fitted on"
                )
            return frame[self.columns_]
        frame = _as_frame(X, None)
        if frame.shape[1] != len(self.columns_):
            raise DataError(f"expected {len(self.columns_)} feature columns, got {frame.shape[1]}")
        frame.columns = self.columns_
        return frame

    def encode(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Numeric block (float32, scaled, plus missing indicators) and category codes (int64).

        Parameters
        ----------
        X : DataFrame with the fitted columns, or a 2-d array in the fitted column order.

        Returns
        -------
        numeric : array of shape (n_rows, n_numeric + n_indicators)
        codes : array of shape (n_rows, n_categorical), ``0`` for missing/unseen.
        """
        frame = self._checked_frame(X)
        numeric = self._numeric_matrix(frame)
        missing = np.isnan(numeric)
        scaled = self._scale(np.where(missing, self.medians_, numeric))
        indicators = missing[:, self.indicator_columns_].astype(float)
        codes = np.zeros((len(frame), len(self.categorical_columns_)), dtype=np.int64)
        for j, (name, cats) in enumerate(
            zip(self.categorical_columns_, self.categories_, strict=True)
        ):
            lookup = {value: i + 1 for i, value in enumerate(cats)}
            column = frame[name]
            codes[:, j] = [
                0 if pd.isna(v) else lookup.get(str(v), 0) for v in column.to_numpy(object)
            ]
        block = np.hstack([scaled, indicators]).astype(np.float32)
        return block, codes

    def transform(self, X: Any) -> np.ndarray:
        """One float matrix: the numeric block then codes or one-hot categories."""
        numeric, codes = self.encode(X)
        if self.categorical == "codes":
            return np.hstack([numeric, codes.astype(np.float32)])
        onehots = [
            np.eye(k, dtype=np.float32)[c][:, 1:]
            for c, k in zip(codes.T, self.cardinalities_, strict=True)
        ]
        return np.hstack([numeric, *onehots])
