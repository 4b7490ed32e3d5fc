"""Validation splits that keep each patient's rows on one side.

Every fold medpredict makes comes from here: the study's validation folds
(:func:`internal_folds`, :func:`site_folds`, :func:`temporal_split`), the inner folds a
model makes of its own training rows (:func:`inner_folds`), the early-stopping split of
the networks (:func:`inner_split`) and :func:`leave_one_patient_out`. Patient-grouped
splits pass :func:`assert_patient_disjoint`, the one guard against a patient on both
sides, which raises :class:`PatientLeakError`.

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
from sklearn.model_selection import (
    GroupShuffleSplit,
    LeaveOneGroupOut,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from medpredict.data.errors import DataError

Fold = tuple[np.ndarray, np.ndarray]

_ROWS = re.compile(r"\b(rows?) (\d+(?:, \d+)*)")
_MIN_VALIDATION_ROWS = 10
_SHOWN_PATIENTS = 5


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


class PatientLeakError(DataError):
    """A patient's rows sit on both the training and the test side of a split."""


def assert_patient_disjoint(folds: list[Fold], groups: np.ndarray | None) -> None:
    """Raise :class:`PatientLeakError` if a patient is on both sides of any fold.

    Parameters
    ----------
    folds : ``(train, test)`` row positions per fold.
    groups : patient id per row; None (one row per patient) checks nothing.

    Examples
    --------
    >>> groups = np.array(["a", "a", "b", "c"])
    >>> assert_patient_disjoint([(np.array([0, 2]), np.array([1, 3]))], groups)
    Traceback (most recent call last):
    ...
    medpredict.evaluation.splits.PatientLeakError: fold 0: patient(s) ['a'] in both train and test
    """
    if groups is None:
        return
    groups = np.asarray(groups)
    for k, (train, test) in enumerate(folds):
        shared = sorted(set(groups[train].tolist()) & set(groups[test].tolist()))
        if shared:
            more = len(shared) - _SHOWN_PATIENTS
            extra = f" and {more} more" if more > 0 else ""
            raise PatientLeakError(
                f"fold {k}: patient(s) {shared[:_SHOWN_PATIENTS]}{extra} in both train and test"
            )


def _stratified_folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> list[Fold]:
    rows = np.zeros(len(y))
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = list(splitter.split(rows, y))
    else:
        grouped = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = list(grouped.split(rows, y, groups))
    assert_patient_disjoint(folds, groups)
    return folds


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
    return _stratified_folds(y, groups, n_splits, seed)


def inner_folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> list[Fold]:
    """Stratified folds of a model's own training rows, grouped by patient when given.

    Stacking, calibration, late fusion and the trust checks fit on some of these folds
    and score the rest. There are fewer than ``n_splits`` folds when the rarest class
    has fewer rows, or there are fewer patients, than that.

    Parameters
    ----------
    y : class label per row.
    groups : patient id per row, or None.
    n_splits : folds wanted.
    seed : shuffling seed.

    Returns
    -------
    ``(train, test)`` row positions per fold.

    Raises
    ------
    DataError
        If a class has a single row or there is a single patient.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    >>> [test.tolist() for _, test in inner_folds(y, None, n_splits=5, seed=0)]
    [[2, 5, 7], [1, 4, 6], [0, 3]]
    """
    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    n_splits = min(n_splits, smallest)
    if groups is not None:
        n_splits = min(n_splits, np.unique(groups).size)
    if n_splits < 2:
        raise DataError(
            "inner folds need at least two rows of every class and two patients; "
            f"the rarest class has {smallest} row(s)"
        )
    return _stratified_folds(y, groups, n_splits, seed)


def inner_split(
    y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> Fold:
    """Training and early-stopping row positions, drawn from the training data only.

    Stratified by ``y``, or whole patients kept together when ``groups`` is given. When
    the validation part would be smaller than 10 rows, every row trains and the
    validation part is empty (no early stopping).

    Parameters
    ----------
    y : class label (or any stratum) per row.
    groups : patient id per row, or None.
    fraction : share of rows held out.
    seed : seed of the draw.

    Examples
    --------
    >>> train, val = inner_split(np.array([0, 1] * 30), np.repeat(np.arange(20), 3), 0.2, 0)
    >>> val.size, len(set(train // 3) & set(val // 3))
    (12, 0)
    """
    rows = np.arange(y.size)
    if fraction <= 0 or y.size * fraction < _MIN_VALIDATION_ROWS:
        return rows, rows[:0]
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train, val = next(splitter.split(rows, y, groups))
        assert_patient_disjoint([(train, val)], groups)
        return train, val
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    train, val = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def leave_one_patient_out(groups: np.ndarray) -> list[Fold]:
    """One fold per patient: that patient's rows are the test side, everyone else trains.

    Examples
    --------
    >>> groups = np.array(["a", "a", "b", "c"])
    >>> [groups[test].tolist() for _, test in leave_one_patient_out(groups)]
    [['a', 'a'], ['b'], ['c']]
    """
    groups = np.asarray(groups)
    return [
        (np.flatnonzero(groups != patient), np.flatnonzero(groups == patient))
        for patient in np.unique(groups)
    ]


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
