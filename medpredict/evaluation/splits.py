"""Validation splits that keep each patient's rows on one side.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1] * 10)
>>> folds = internal_folds(y, groups=np.repeat(np.arange(10), 2), n_splits=5, seed=0)
>>> len(folds), all(len(set(tr) & set(te)) == 0 for tr, te in folds)
(5, True)
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from medpredict.data.errors import DataError

Fold = tuple[np.ndarray, np.ndarray]

_ROWS = re.compile(r"\b(rows?) (\d+(?:, \d+)*)")


def in_table_rows(message: str, row_numbers: np.ndarray) -> tuple[str, list[int]]:
    """Rewrite the 1-based row positions in ``message`` as the table rows they stand for.

    A model fitted on a fold sees only that fold's rows, so the rows its errors name
    (``"rows 3, 17"``, as written by :func:`~medpredict.data.errors.describe_rows`) are
    positions in the fold. ``row_numbers`` holds the table row of each fold position.

    Returns
    -------
    The rewritten message and the table rows it names.

    Examples
    --------
    >>> in_table_rows("no value in rows 1, 3", np.array([78, 90, 97]))
    ('no value in table rows 78, 97', [78, 97])
    """
    named: list[int] = []

    def table(match: re.Match[str]) -> str:
        positions = [int(p) for p in match.group(2).split(", ")]
        if min(positions) < 1 or max(positions) > len(row_numbers):
            return match.group(0)
        rows = [int(row_numbers[p - 1]) for p in positions]
        named.extend(rows)
        return f"table {match.group(1)} {', '.join(map(str, rows))}"

    return _ROWS.sub(table, message), named


def assert_patient_disjoint(folds: list[Fold], groups: np.ndarray | None) -> None:
    """Raise if any patient appears in both the training and test side of a fold."""
    if groups is None:
        return
    for k, (train, test) in enumerate(folds):
        shared = set(groups[train]) & set(groups[test])
        if shared:
            raise RuntimeError(f"fold {k}: {len(shared)} patient(s) on both sides of the split")


def internal_folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> list[Fold]:
    """Stratified k-fold, grouped by patient when ``groups`` is given."""
    counts = np.bincount(y)
    if counts.min() < n_splits:
        raise DataError(
            f"the rarest outcome class has {counts.min()} row(s), fewer than the {n_splits} "
            "folds requested; lower validation.folds"
        )
    if groups is not None:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(y)), y, groups))
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(y)), y))
    assert_patient_disjoint(folds, groups)
    return folds


def site_folds(y: np.ndarray, sites: pd.Series) -> list[Fold]:
    """Leave-one-site-out folds."""
    values = sites.to_numpy()
    if len(np.unique(values)) < 2:
        raise DataError("site validation needs at least two sites in site_column")
    return list(LeaveOneGroupOut().split(np.zeros(len(y)), y, values))


def temporal_boundary(times: pd.Series, cutoff: str | None, fraction: float) -> pd.Timestamp:
    """The cut-off itself, or the time leaving the latest ``fraction`` of rows after it."""
    if cutoff is not None:
        return pd.Timestamp(cutoff)
    return times.quantile(1 - fraction)


def temporal_split(times: pd.Series, cutoff: str | None, fraction: float) -> Fold:
    """Development rows (before the cut-off) and later rows for temporal validation."""
    boundary = temporal_boundary(times, cutoff, fraction)
    later = (times >= boundary).to_numpy()
    if later.all() or not later.any():
        raise DataError(
            f"temporal cut-off {boundary} leaves no rows on one side; dates span "
            f"{times.min()} to {times.max()}"
        )
    return np.flatnonzero(~later), np.flatnonzero(later)
